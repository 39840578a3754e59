package compose

import (
	"context"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
)

// CountHealthy, which the health step's progress line reads, counts replicas
// that are still loading (the fake model answers 503 for its startup delay)
// as loading and those that answer 2xx as ready.
func TestIntegrationDockerCountHealthy(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	img := fakeModelImage(t, c, "aideploy-test-model:count", map[string]string{"FAKEMODEL_VERSION": "v1", "FAKEMODEL_STARTUP_DELAY": "4s"})
	p := testPlatform(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := rollout.Deployment{Color: rollout.Blue, Revision: 1, Image: img, Replicas: 2}
	if err := p.Create(ctx, d); err != nil {
		t.Fatalf("Create: %v", err)
	}
	n, err := p.CountHealthy(ctx, d)
	if err != nil || n != (rollout.HealthCount{Want: 2, Loading: 2}) {
		t.Errorf("CountHealthy while loading = %+v, %v; want 2 loading", n, err)
	}
	if err := p.WaitHealthy(ctx, d, time.Minute); err != nil {
		t.Fatalf("WaitHealthy: %v", err)
	}
	n, err = p.CountHealthy(ctx, d)
	if err != nil || n != (rollout.HealthCount{Want: 2, Ready: 2}) {
		t.Errorf("CountHealthy once healthy = %+v, %v; want 2 ready", n, err)
	}
}
