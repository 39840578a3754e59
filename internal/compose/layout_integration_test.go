package compose

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/testutil/dockertest"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// gatewayImage builds the aideploy image as `make image` does: the static
// binary and the repository's Dockerfile, FROM scratch.
func gatewayImage(t *testing.T, c *client.Client, tag string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), "aideploy-static")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/aideploy")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the static aideploy: %v\n%s", err, b)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	binData, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, dockerfile}, {"bin/aideploy-static", 0o755, binData}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return dockertest.Build(t, c, tag, &ctxTar)
}

// composeGateway runs the gateway as compose.yaml does: the aideploy image on
// the project network, with the file's gateway section, its ports published
// on loopback. It returns the client address and the admin API.
func composeGateway(t *testing.T, c *client.Client, img, netName, name, configYAML, upstream string) (string, *adminapi.Client) {
	t.Helper()
	cfgFile := filepath.Join(t.TempDir(), "aideploy.yaml")
	if err := os.WriteFile(cfgFile, []byte(configYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	// The image runs as 65532: the folder must let it read the file.
	if err := os.Chmod(filepath.Dir(cfgFile), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const token = "test-token"
	listen, admin := nat.Port("8080/tcp"), nat.Port("8081/tcp")
	resp, err := c.ContainerCreate(ctx, &container.Config{
		Image: img,
		Cmd: []string{"gateway", "serve", "--config", "/etc/aideploy/aideploy.yaml",
			"--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:8081", "--upstream", upstream},
		Env:          []string{adminapi.TokenEnv + "=" + token},
		Labels:       map[string]string{testLabel: "true"},
		ExposedPorts: nat.PortSet{listen: {}, admin: {}},
	}, &container.HostConfig{
		NetworkMode:  container.NetworkMode(netName),
		PortBindings: nat.PortMap{listen: {{HostIP: "127.0.0.1"}}, admin: {{HostIP: "127.0.0.1"}}},
		Binds:        []string{cfgFile + ":/etc/aideploy/aideploy.yaml:ro"},
	}, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {}}}, nil, name)
	if err != nil {
		t.Fatalf("creating the gateway container: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if rc, err := c.ContainerLogs(context.Background(), resp.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "40"}); err == nil {
				b, _ := io.ReadAll(rc)
				rc.Close()
				t.Logf("gateway container log:\n%s", b)
			}
		}
		_ = c.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true})
	})
	if err := c.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting the gateway container: %v", err)
	}
	in, err := c.ContainerInspect(ctx, resp.ID)
	if err != nil {
		t.Fatal(err)
	}
	listenURL, err := hostURL(in, listen)
	if err != nil {
		t.Fatal(err)
	}
	adminURL, err := hostURL(in, admin)
	if err != nil {
		t.Fatal(err)
	}
	adm := &adminapi.Client{BaseURL: adminURL, Token: token, HTTP: &http.Client{Timeout: 5 * time.Minute}}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := adm.Pool(ctx, adminapi.DefaultPool); err == nil {
			return strings.TrimPrefix(listenURL, "http://"), adm
		} else if ctx.Err() != nil {
			t.Fatalf("the gateway container's admin API did not answer: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// removeNetworkAtEnd removes the Docker network name when the test ends,
// after the containers on it (cleanups run last registered first).
func removeNetworkAtEnd(t *testing.T, c *client.Client, name string) {
	t.Helper()
	t.Cleanup(func() {
		if err := c.NetworkRemove(context.Background(), name); err != nil && !strings.Contains(err.Error(), "not found") {
			t.Errorf("removing network %s: %v", name, err)
		}
	})
}
