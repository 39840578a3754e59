package compose

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIntegrationDockerPrewarmCommand runs aideploy prewarm --target docker as
// a process: refused with nothing deployed, then 2 → 3 and back, as JSON.
func TestIntegrationDockerPrewarmCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds aideploy and starts Docker containers; skipped with -short")
	}
	t.Parallel()
	c := dockerClient(t)
	bin := aideployBinary(t)
	img := fakeModelImage(t, c, "aideploy-test-model:pwc-v1", map[string]string{"FAKEMODEL_VERSION": "v1"})
	_, admin := startTestGateway(t)
	dir := t.TempDir()
	service := "pwcsvc"
	cfg := fmt.Sprintf("apiVersion: aideploy.dev/v1\nname: %s\nimage: %s\nport: 8000\nreplicas: 2\n"+
		"resources: {cpu: \"1\", memory: 1Gi, gpus: 0}\nhealth: {path: /health, readyPath: /health}\nautoscaling: {enabled: false}\n", service, img)
	if err := os.WriteFile(filepath.Join(dir, "aideploy.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := New(c, Options{Project: service, Service: service, Gateway: admin, Registries: loopbackRegistries})
	t.Cleanup(func() { _, _ = p.Down(context.Background()) })
	aideploy := func(args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		// The test gateway runs in-process on this host: it reaches replicas on loopback.
		cmd.Env = append(os.Environ(), "AIDEPLOY_GATEWAY_ADMIN="+admin.BaseURL, "AIDEPLOY_ADMIN_TOKEN="+admin.Token, "AIDEPLOY_GATEWAY_ON=host")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("aideploy %s: %v", strings.Join(args, " "), err)
		}
		return string(out), code
	}

	out, code := aideploy("prewarm", "--replicas", "3", "--target", "docker")
	if code != 1 || !strings.Contains(out, "nothing is deployed; run aideploy rollout first") {
		t.Errorf("prewarm with nothing deployed: exit %d, %q; want exit 1 and the advice", code, out)
	}
	if out, code := aideploy("rollout", "--yes", "--watch-window", "1s", "--scale-down-delay", "500ms"); code != 0 {
		t.Fatalf("rollout: exit %d\n%s", code, out)
	}
	var res PrewarmResult
	out, code = aideploy("prewarm", "--replicas", "3", "--target", "docker", "--output", "json")
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("prewarm --output json: exit %d, %v\n%s", code, err, out)
	}
	if res.Original != 2 || res.Replicas != 3 || len(res.Added) != 1 || res.PoolTargets != 3 {
		t.Errorf("prewarm result %+v, want 2 → 3 with 3 pool targets", res)
	}
	t.Logf("prewarm --output json:\n%s", out)
	out, code = aideploy("prewarm", "--restore", "--target", "docker")
	t.Logf("prewarm --restore: %s", out)
	if code != 0 || !strings.Contains(out, service+" restored to 2 replica(s)") {
		t.Errorf("restore: exit %d, %q", code, out)
	}
	out, code = aideploy("prewarm", "--restore", "--target", "docker")
	if code != 0 || !strings.Contains(out, "no prewarmed replicas to remove") {
		t.Errorf("second restore: exit %d, %q", code, out)
	}
	if pool, err := admin.Pool(context.Background(), p.opts.Pool); err != nil || len(pool.Targets) != 2 {
		t.Errorf("pool after restore: %+v, %v; want 2 targets", pool, err)
	}
}
