package compose

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// testLabel marks every container and image the tests create, for cleanup.
const testLabel = "aideploy.test"

// fakeModelBinary builds the fake model server as a static binary once per test binary.
func fakeModelBinary(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("AIDEPLOY_TEST_BIN_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "aideploy-test-bin")
	}
	out := filepath.Join(dir, "fakemodel")
	if fi, err := os.Stat(out); err == nil && time.Since(fi.ModTime()) < time.Hour {
		return out
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/fakemodel")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the fake model: %v\n%s", err, b)
	}
	return out
}

// dockerClient connects to the local engine or fails the test with what to do.
func dockerClient(t testing.TB) *client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Docker engine; skipped under -short")
	}
	c, err := NewDockerClient()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("the Docker engine does not answer: %v; install and start it (apt-get install docker.io; dockerd &)", err)
	}
	return c
}

// fakeModelImage builds a FROM scratch image of the fake model with env baked in,
// removed when the test ends.
// imageMu keeps image removal apart from builds: removing an image also
// removes its untagged parents, the cached steps every test image shares, and
// a build that is reusing one of them then fails with "failed to get digest".
var imageMu sync.RWMutex

func fakeModelImage(t testing.TB, c *client.Client, tag string, env map[string]string) string {
	t.Helper()
	bin, err := os.ReadFile(fakeModelBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	var df strings.Builder
	df.WriteString("FROM scratch\nCOPY fakemodel /fakemodel\nEXPOSE 8000\n")
	// A label per tag keeps image IDs apart, so one test's cleanup never removes another's containers.
	fmt.Fprintf(&df, "LABEL %s.tag=%q\n", testLabel, tag)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&df, "ENV %s=%q\n", k, env[k])
	}
	df.WriteString(`ENTRYPOINT ["/fakemodel"]` + "\n")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(df.String())}, {"fakemodel", 0o755, bin}} {
		_ = tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))})
		_, _ = tw.Write(f.data)
	}
	_ = tw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	imageMu.RLock()
	resp, err := c.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true,
		Labels: map[string]string{testLabel: "true"}})
	var out []byte
	if err == nil {
		out, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	imageMu.RUnlock()
	if err != nil {
		t.Fatalf("building image %s: %v", tag, err)
	}
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("building image %s: %s", tag, out)
	}
	t.Cleanup(func() {
		// Containers made from the image go first, or the image would stay behind untagged.
		ctx := context.Background()
		cs, _ := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("ancestor", tag))})
		for _, x := range cs {
			_ = c.ContainerRemove(ctx, x.ID, container.RemoveOptions{Force: true})
		}
		imageMu.Lock()
		defer imageMu.Unlock()
		_, _ = c.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return tag
}

// testPlatform returns a platform for a fresh service name, and removes all its containers afterwards.
func testPlatform(t testing.TB, c *client.Client, change func(*Options)) *Platform {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", " ", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	cfg := rollout.Default()
	cfg.HealthCheck.Interval = units.Duration(200 * time.Millisecond)
	cfg.HealthCheck.Timeout = units.Duration(2 * time.Second)
	var spec types.ServiceConfig
	spec.Labels = types.Labels{testLabel: "true"}
	opts := Options{Project: "aidtest", Service: strings.Trim(name, "-"), Spec: spec, Rollout: cfg, Registries: loopbackRegistries}
	if change != nil {
		change(&opts)
	}
	p := New(c, opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := p.Down(ctx); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	return p
}

// leftovers lists containers of p's service that still exist.
func leftovers(t testing.TB, c *client.Client, p *Platform) []string {
	t.Helper()
	cs, err := c.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", LabelService+"="+p.opts.Service), filters.Arg("label", LabelKind+"="+kindReplica))})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range cs {
		out = append(out, x.Names[0][1:]+" "+x.State)
	}
	sort.Strings(out)
	return out
}

// loopbackRegistries lets tests pull only from registries they run on
// loopback: a test image that is missing (removed by a run beside this one)
// fails the test instead of sending a request to the internet.
func loopbackRegistries(host string) error {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("tests pull only from loopback registries")
}
