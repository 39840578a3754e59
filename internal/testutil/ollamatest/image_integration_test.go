package ollamatest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/testutil/ollamatest"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// TestIntegrationOllamaImageFromScratch runs the static Ollama in a FROM
// scratch container with a read-only root, as a hardened deployment would,
// and asks it for real tokens through a loopback-published port.
func TestIntegrationOllamaImageFromScratch(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs the Docker engine; skipped under -short")
	}
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("connecting to Docker: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	img := ollamatest.Image(t, c, "aideploy-test-ollama:scratch")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	port := nat.Port(strconv.Itoa(ollamatest.ImagePort) + "/tcp")
	created, err := c.ContainerCreate(ctx,
		&container.Config{Image: img, ExposedPorts: nat.PortSet{port: {}}, User: "65534:65534"},
		&container.HostConfig{
			ReadonlyRootfs: true,
			Tmpfs:          map[string]string{ollamatest.ImageHome + "/.ollama": "rw,size=16m,uid=65534,gid=65534"},
			PortBindings:   nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: ""}}},
		}, nil, nil, "")
	if err != nil {
		t.Fatalf("creating the container: %v", err)
	}
	t.Cleanup(func() {
		_ = c.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := c.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting the container: %v", err)
	}
	in, err := c.ContainerInspect(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	bound := in.NetworkSettings.Ports[port]
	if len(bound) == 0 {
		t.Fatalf("port %s is not published: %+v", port, in.NetworkSettings.Ports)
	}
	base := fmt.Sprintf("http://127.0.0.1:%s", bound[0].HostPort)
	if err := waitVersion(ctx, base); err != nil {
		t.Fatalf("%v; container log:\n%s", err, containerLog(c, created.ID))
	}
	resp := post(ctx, t, base+"/v1/chat/completions", chat(false, 8, nil))
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || out.Usage.CompletionTokens == 0 {
		t.Fatalf("completion from the container: %s: %s\ncontainer log:\n%s", resp.Status, body, containerLog(c, created.ID))
	}
}

// waitVersion polls /api/version until Ollama answers or ctx ends.
func waitVersion(ctx context.Context, base string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/version", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Ollama in the container did not answer %s/api/version: %v", base, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func containerLog(c *client.Client, id string) string {
	rc, err := c.ContainerLogs(context.Background(), id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}
