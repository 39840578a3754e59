package compose

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/testutil/registrytest"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
)

// pushed builds a fake-model image named for the registry at host, pushes it
// there with auth, and removes it from this Docker host, so that only a pull
// can bring it back.
func pushed(t *testing.T, c *client.Client, host, name string, auth registry.AuthConfig) string {
	t.Helper()
	ref := fakeModelImage(t, c, host+"/"+name, map[string]string{"FAKEMODEL_VERSION": "pulled"})
	enc, err := registry.EncodeAuthConfig(auth)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rc, err := c.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: enc})
	if err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	out, _ := io.ReadAll(rc)
	rc.Close()
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("pushing %s: %s", ref, out)
	}
	// Under imageMu: pruning while a parallel test builds breaks its build.
	imageMu.Lock()
	_, err = c.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
	imageMu.Unlock()
	if err != nil {
		t.Fatalf("removing %s after the push: %v", ref, err)
	}
	if _, err := c.ImageInspect(ctx, ref); err == nil {
		t.Fatalf("%s is still on this Docker host after its removal", ref)
	}
	return ref
}

// dockerConfig writes a Docker config folder holding auths, as docker login does.
func dockerConfig(t *testing.T, auths map[string][2]string) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(`{"auths":{`)
	first := true
	for host, up := range auths {
		if !first {
			b.WriteString(",")
		}
		first = false
		b.WriteString(`"` + host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte(up[0]+":"+up[1])) + `"}`)
	}
	b.WriteString("}}")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// syncBuffer collects progress written while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestIntegrationDockerRolloutPullsFromRegistry(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	c := dockerClient(t)
	img := pushed(t, c, reg.Host, "aideploy-test-model:pull", registry.AuthConfig{})

	e := newEnv(t, nil)
	var progress syncBuffer
	var notes syncBuffer
	e.p.opts.Progress = &progress
	e.p.opts.RegistryAuth = func(host string) (registry.AuthConfig, error) {
		return authFromConfigDir(dockerConfig(t, nil), host)
	}
	e.p.opts.Logf = func(format string, args ...any) { _, _ = io.WriteString(&notes, format+"\n") }
	if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: img, Replicas: 1}); err != nil {
		t.Fatalf("rollout of %s, which only the registry has: %v", img, err)
	}
	if got := e.serving(); len(got) != 1 || got[0] != 1 {
		t.Errorf("serving revisions %v, want [1]", got)
	}
	if _, err := c.ImageInspect(context.Background(), img); err != nil {
		t.Errorf("%s is not on this Docker host after the rollout: %v", img, err)
	}
	out := progress.String()
	// Layers may read "Already exists": images of parallel tests share the fake model's layer.
	if !strings.Contains(out, "Pulling from aideploy-test-model") || !strings.Contains(out, "Downloaded newer image for "+img) {
		t.Errorf("pull progress lacks the engine's status lines:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("pull progress for a non-terminal holds cursor escapes:\n%q", out)
	}
	if !strings.Contains(notes.String(), "pulling %s") {
		t.Errorf("no progress note announced the pull: %q", notes.String())
	}
}

func TestIntegrationDockerPullWithDockerConfigAuth(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{Users: map[string]string{"ci": "s3cret"}})
	c := dockerClient(t)
	img := pushed(t, c, reg.Host, "aideploy-test-model:auth", registry.AuthConfig{Username: "ci", Password: "s3cret", ServerAddress: reg.Host})

	tests := []struct {
		name  string
		auths map[string][2]string
		want  []string // "" in want means accepted
	}{
		{"no credentials", nil, []string{img, reg.Host, "the registry answered", "docker login " + reg.Host}},
		{"wrong password", map[string][2]string{reg.Host: {"ci", "wrong"}}, []string{img, reg.Host, "docker login " + reg.Host}},
		{"credentials from the Docker config", map[string][2]string{reg.Host: {"ci", "s3cret"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Sequential: the last case pulls the image the others must not find.
			dir := dockerConfig(t, tt.auths)
			p := testPlatform(t, c, func(o *Options) {
				o.RegistryAuth = func(host string) (registry.AuthConfig, error) { return authFromConfigDir(dir, host) }
			})
			err := p.Check(context.Background(), rollout.Deployment{Color: rollout.Green, Revision: 1, Image: img, Replicas: 1}, nil)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check with the right credentials: %v", err)
				}
				if _, err := c.ImageInspect(context.Background(), img); err != nil {
					t.Errorf("%s is not on this Docker host after the pull: %v", img, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check pulled %s without valid credentials", img)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestIntegrationDockerPullMisbehavingRegistry points the engine at peers that
// are not registries: each error must name the image, the registry and the
// answer, never hang or report success.
func TestIntegrationDockerPullMisbehavingRegistry(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "\x00\x01 this is not a registry {")
	}))
	t.Cleanup(garbage.Close)
	unauthorized := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="nobody gets in"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	}))
	t.Cleanup(unauthorized.Close)
	// A peer that accepts and hangs up at once. (A closed port is no test
	// here: a parallel test may take it; TestIntegrationDockerCheck uses port 1.)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()

	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	tests := []struct {
		name string
		host string
		want string
	}{
		{"garbage answers", host(garbage), "serves the registry API"},
		{"always 401", host(unauthorized), "docker login " + host(unauthorized)},
		{"hangs up", l.Addr().String(), "is reachable from the Docker host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img := tt.host + "/aideploy-test-model:absent"
			p := testPlatform(t, c, func(o *Options) {
				o.RegistryAuth = func(string) (registry.AuthConfig, error) { return registry.AuthConfig{}, nil }
			})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			err := p.Check(ctx, rollout.Deployment{Color: rollout.Green, Revision: 1, Image: img, Replicas: 1}, nil)
			if err == nil {
				t.Fatalf("Check accepted %s from a peer that is not a registry", img)
			}
			for _, w := range []string{img, "pulling image", "the registry answered", tt.want} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			t.Logf("%s: %v", tt.name, err)
		})
	}
}

// TestIntegrationDockerPullProgressOnTerminal: on a terminal the engine's
// progress redraws in place, as docker pull shows it.
func TestIntegrationDockerPullProgressOnTerminal(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	c := dockerClient(t)
	img := pushed(t, c, reg.Host, "aideploy-test-model:tty", registry.AuthConfig{})
	var progress syncBuffer
	p := testPlatform(t, c, func(o *Options) {
		o.Progress, o.ProgressTTY = &progress, true
		o.RegistryAuth = func(string) (registry.AuthConfig, error) { return registry.AuthConfig{}, nil }
	})
	if err := p.Check(context.Background(), rollout.Deployment{Color: rollout.Green, Revision: 1, Image: img, Replicas: 1}, nil); err != nil {
		t.Fatalf("Check: %v", err)
	}
	out := progress.String()
	if !strings.Contains(out, "Downloaded newer image for "+img) || !strings.Contains(out, "\x1b[") {
		t.Errorf("terminal progress lacks the status line or the cursor moves that redraw layer lines:\n%q", out)
	}
}
