package k8s_test

import (
	"context"
	"testing"
	"time"
)

// The API server accepts, in a server-side dry run, every object `aideploy
// apply` sends for each of the render package's configurations: the model's
// (Deployment, Services, HPA, PDB, PVC) and the gateway's (Deployment,
// Services, ConfigMap, HPA, PDB, NetworkPolicy, Redis).
func TestIntegrationK8sApplyDryRunEveryObject(t *testing.T) {
	t.Parallel()
	_, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kinds := map[string]int{}
	for _, name := range []string{"cpu", "gpu1", "gpu4-rps", "vllm", "tgi", "ollama"} {
		cfg := golden(t, name)
		objs, err := kc.ServingManifests(ctx, cfg, "aideploy.yaml")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		gw, err := kc.GatewayServingManifests(ctx, cfg, "aideploy.yaml")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		changes, err := kc.Apply(ctx, append(objs, gw...), true)
		if err != nil {
			t.Errorf("%s: server dry run: %v", name, err)
			continue
		}
		if len(changes) != len(objs)+len(gw) {
			t.Errorf("%s: %d objects dry-ran, want %d", name, len(changes), len(objs)+len(gw))
		}
		for _, c := range changes {
			kinds[c.Kind]++
		}
	}
	for _, kind := range []string{"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "StatefulSet", "PersistentVolumeClaim"} {
		if kinds[kind] == 0 {
			t.Errorf("no %s among the dry-ran objects (%v)", kind, kinds)
		}
	}
}
