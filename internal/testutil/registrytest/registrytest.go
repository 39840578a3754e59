package registrytest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/testutil/ollamatest"
	"golang.org/x/crypto/bcrypt"
)

// Registry is a registry process owned by one test.
type Registry struct {
	// Host is 127.0.0.1:PORT, the registry part of image names pushed to it:
	// the Docker engine treats loopback registries as insecure-allowed, so
	// it speaks plain HTTP to them without daemon configuration.
	Host string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  bytes.Buffer
}

// Options configure a registry.
type Options struct {
	// Users, when set, turns on basic auth (htpasswd) with these passwords.
	Users map[string]string
}

// Start runs a fresh registry with its storage in a temporary folder. Under
// -short it skips the test; without the binary it fails with how to build it.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	bin := ollamatest.Tool(t, "registry")
	dir := t.TempDir()
	var lastErr error
	for range 5 {
		host, err := freeAddr()
		if err != nil {
			t.Fatalf("finding a free loopback port: %v", err)
		}
		cfg, err := writeConfig(dir, host, opts)
		if err != nil {
			t.Fatalf("writing the registry config: %v", err)
		}
		r := &Registry{Host: host}
		if lastErr = r.launch(bin, cfg); lastErr == nil {
			t.Cleanup(r.Stop)
			return r
		}
	}
	t.Fatalf("starting the registry: %v", lastErr)
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func writeConfig(dir, host string, opts Options) (string, error) {
	var auth string
	if len(opts.Users) > 0 {
		var pw strings.Builder
		for user, pass := range opts.Users {
			// The lowest cost bcrypt allows: the test needs the format, not the strength.
			h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&pw, "%s:%s\n", user, h)
		}
		file := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(file, []byte(pw.String()), 0o600); err != nil {
			return "", err
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: aideploy-test\n    path: %s\n", strconv.Quote(file))
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, strconv.Quote(filepath.Join(dir, "data")), host, auth)
	file := filepath.Join(dir, "config.yml")
	return file, os.WriteFile(file, []byte(cfg), 0o600)
}

func (r *Registry) launch(bin, cfg string) error {
	cmd := exec.Command(bin, "serve", cfg)
	// No trace exporter: the registry would otherwise try to ship spans to a collector.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	cmd.Stdout, cmd.Stderr = &r.log, &r.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			// 401 is an answer too: the registry is up and asks for credentials.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("registry exited at start: %s", r.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Stop()
			return fmt.Errorf("registry did not answer /v2/ on %s within 30s: %s", r.Host, r.log.String())
		}
	}
}

// Stop kills the registry by its PID and waits for it to exit.
func (r *Registry) Stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}
