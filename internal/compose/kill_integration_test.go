package compose

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
)

// aideployBinary builds the aideploy command for tests that run it as a process.
func aideployBinary(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "aideploy")
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/aideploy")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building aideploy: %v\n%s", err, b)
	}
	return out
}

// TestIntegrationDockerKill9AtEveryStep kills aideploy with SIGKILL as each
// step of a rollout starts, runs it again, and checks that it converges:
// exit 0, exactly one revision running and in the gateway pool, no pending
// journal, no leaked containers, the lock free.
func TestIntegrationDockerKill9AtEveryStep(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	bin := aideployBinary(t)
	images := []string{
		fakeModelImage(t, c, "aideploy-test-model:k9-v1", map[string]string{"FAKEMODEL_VERSION": "v1"}),
		fakeModelImage(t, c, "aideploy-test-model:k9-v2", map[string]string{"FAKEMODEL_VERSION": "v2", "FAKEMODEL_STARTUP_DELAY": "1s"}),
	}
	addr, admin := startTestGateway(t)
	_ = addr
	dir := t.TempDir()
	service := "k9svc"
	cfg := fmt.Sprintf("apiVersion: aideploy.dev/v1\nname: %s\nimage: %s\nport: 8000\nreplicas: 1\n"+
		"resources: {cpu: \"1\", memory: 1Gi, gpus: 0}\nhealth: {path: /health, readyPath: /health}\nautoscaling: {enabled: false}\n", service, images[0])
	if err := os.WriteFile(filepath.Join(dir, "aideploy.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := New(c, Options{Project: service, Service: service, Gateway: admin, Registries: loopbackRegistries})
	t.Cleanup(func() { _, _ = p.Down(context.Background()) })

	aideploy := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, append(args, "--watch-window", "2s", "--scale-down-delay", "500ms", "--output", "json", "--yes")...)
		cmd.Dir = dir
		// The test gateway runs in-process on this host: it reaches replicas on loopback.
		cmd.Env = append(os.Environ(), "AIDEPLOY_GATEWAY_ADMIN="+admin.BaseURL, "AIDEPLOY_ADMIN_TOKEN="+admin.Token, "AIDEPLOY_GATEWAY_ON=host")
		return cmd
	}
	run := func(image string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := aideploy(ctx, "rollout", "--image", image).CombinedOutput()
		if err != nil {
			t.Fatalf("aideploy rollout --image %s: %v\n%s", image, err, out)
		}
	}
	converged := func(image string) {
		t.Helper()
		ctx := context.Background()
		st, err := p.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if pj := st.Pending(); pj != nil {
			t.Errorf("journal %s still pending at %s", pj.ID, pj.Step)
		}
		a := st.Active()
		if a == nil || a.Image != image {
			t.Fatalf("active = %v, want %s", a, image)
		}
		var running []int
		for _, in := range st.Instances {
			if in.Running > 0 {
				running = append(running, in.Revision)
			}
		}
		if len(running) != 1 || running[0] != a.Revision {
			t.Errorf("running revisions %v, want only %d", running, a.Revision)
		}
		if len(st.Instances) > 2 {
			t.Errorf("%d revisions have containers, want at most keepRevisions (2): %+v", len(st.Instances), st.Instances)
		}
		eps, err := p.Endpoints(ctx, *a)
		if err != nil {
			t.Fatal(err)
		}
		pool, err := admin.Pool(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		if len(pool.Targets) != len(eps) || len(eps) == 0 || pool.Targets[0].URL != eps[0].URL {
			t.Errorf("gateway pool %+v, want the active replicas %+v", pool.Targets, eps)
		}
		if h, _, _ := p.LockHolder(ctx); h != nil {
			t.Errorf("lock still held by %s", h)
		}
	}

	run(images[0])
	converged(images[0])
	cur := 0
	for _, step := range []rollout.Step{rollout.StepCheck, rollout.StepCreate, rollout.StepHealthy, rollout.StepWarmup,
		rollout.StepSwitch, rollout.StepWatch, rollout.StepDrain, rollout.StepRetire} {
		next := 1 - cur
		ok := t.Run(string(step), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := aideploy(ctx, "rollout", "--image", images[next])
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killed := false
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var ev rollout.Event
				if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Step == step && ev.Kind == rollout.EventStart {
					_ = cmd.Process.Signal(syscall.SIGKILL)
					killed = true
					break
				}
			}
			_ = cmd.Wait()
			if !killed {
				t.Fatalf("the rollout never started step %s", step)
			}
			start := time.Now()
			run(images[next])
			t.Logf("killed at %s; the next run converged in %s", step, time.Since(start).Round(100*time.Millisecond))
			converged(images[next])
			if left := leftovers(t, c, p); len(left) > 2 {
				t.Errorf("containers left: %v", strings.Join(left, ", "))
			}
		})
		if !ok {
			break
		}
		cur = next
	}
}
