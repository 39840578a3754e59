package preflight

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// realEngine connects to the local Docker engine or fails with what to do.
func realEngine(t *testing.T) DockerAPI {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local Docker engine; skipped under -short")
	}
	cli, err := NewDockerClient()
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		t.Fatalf("the Docker engine is not reachable (%v): start it (systemctl start docker, or dockerd &) or set DOCKER_HOST", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestIntegrationDockerEngine(t *testing.T) {
	cli := realEngine(t)
	info, err := cli.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, hasNvidia := info.Runtimes["nvidia"]

	busy, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	req := Requirements{Image: "aideploy-preflight-absent:never", GPUsPerReplica: 1, Replicas: 1,
		Ports: []int{freePort(t), busyPort}, ModelPath: t.TempDir()}
	// GPU required: the runtime check then fails here instead of skipping for a GPU-less host.
	rep, err := Run(context.Background(), Options{Req: req, Run: Groups{Docker: true}, Require: Groups{Docker: true, GPU: true},
		Docker: func() (DockerAPI, error) { return cli, nil }})
	if err != nil {
		t.Fatal(err)
	}
	engine := findID(rep, "docker.engine")
	if engine.Status != Pass || !strings.Contains(engine.Measured, "API ") {
		t.Errorf("engine: %+v", engine)
	}
	wantRuntime := Fail
	if hasNvidia {
		wantRuntime = Pass
	}
	if got := findID(rep, "docker.gpu-runtime"); got.Status != wantRuntime {
		t.Errorf("gpu runtime: %+v, want %s (engine runtimes %v)", got, wantRuntime, info.Runtimes)
	}
	if got := findID(rep, "docker.image-cuda"); got.Status != Skip || !strings.Contains(got.Measured, "not present locally") {
		t.Errorf("absent image: %+v", got)
	}
	if got := findID(rep, "docker.disk-image"); got.Status == Skip {
		t.Errorf("disk of the local engine not measured: %+v", got)
	}
	if got := findID(rep, "docker.disk-model"); got.Status != Pass {
		t.Errorf("model disk: %+v", got)
	}
	var ports []Result
	for _, r := range rep.Results {
		if r.ID == "docker.port" {
			ports = append(ports, r)
		}
	}
	if len(ports) != 2 || ports[0].Status != Pass || ports[1].Status != Fail {
		t.Errorf("ports: %+v", ports)
	}
}

// TestIntegrationDockerPreflightTiming is the acceptance run on a host without a GPU:
// GPU checks skip with the reason, the real engine is checked, and it takes under 2s.
func TestIntegrationDockerPreflightTiming(t *testing.T) {
	cli := realEngine(t)
	req := Requirements{Image: "aideploy-preflight-absent:never", GPUsPerReplica: 1, Replicas: 2, Ports: []int{freePort(t)}}
	opts := Options{Req: req, Run: Groups{GPU: true, Docker: true, Kubernetes: true},
		Docker: func() (DockerAPI, error) { return cli, nil }}
	start := time.Now()
	rep, err := Run(context.Background(), opts)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("preflight took %s: %s", elapsed, rep.Summary)
	if elapsed > 2*time.Second {
		t.Errorf("preflight took %s, want under 2s", elapsed)
	}
	if findID(rep, "docker.engine").Status != Pass {
		t.Errorf("engine: %+v", findID(rep, "docker.engine"))
	}
	nvmlInit := findID(rep, "nvml.init")
	if nvmlInit.Status == Pass {
		t.Skip("this host has a GPU; the GPU-less acceptance does not apply")
	}
	if nvmlInit.Status != Skip || !strings.Contains(nvmlInit.Measured, "NVML") {
		t.Errorf("nvml: %+v", nvmlInit)
	}
	if rep.Failed(false) {
		t.Errorf("a GPU-less host with a working engine should pass: %+v", rep.Results)
	}
	opts.Require.GPU = true
	rep, err = Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed(false) || findID(rep, "nvml.init").Status != Fail {
		t.Errorf("with the GPU required it must fail: %+v", rep.Results)
	}
}
