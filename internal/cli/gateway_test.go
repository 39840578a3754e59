package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/iostreams"
)

func TestGatewayServeFlags(t *testing.T) {
	t.Parallel()
	streams, _, _, _ := iostreams.Test()
	f := NewFactory(streams)
	f.ConfigPath = filepath.Join(t.TempDir(), "missing.yaml")
	var got *gatewayServeOptions
	cmd := newCmdGatewayServe(f, func(_ context.Context, o *gatewayServeOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--upstream", "http://127.0.0.1:8000", "--upstream", "unix:///run/m.sock", "--listen", "127.0.0.1:9", "--redis", "redis://127.0.0.1:6379/0",
		"--tls-cert", "gw.pem", "--tls-key", "gw-key.pem", "--max-connections", "500"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	cfg, err := gatewayConfig(got)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9" || cfg.RedisURL != "redis://127.0.0.1:6379/0" || len(cfg.Pools) != 1 ||
		len(cfg.Pools[0].Targets) != 2 || cfg.Pools[0].Targets[1].URL != "unix:///run/m.sock" || cfg.AdminListen != "127.0.0.1:8081" {
		t.Fatalf("config from flags: %+v", cfg)
	}
	if sc := cfg.Server; sc.TLS.CertFile != "gw.pem" || sc.TLS.KeyFile != "gw-key.pem" || sc.MaxConnections != 500 {
		t.Fatalf("server settings from flags: %+v", sc)
	}
}

func TestGatewayServeConfigErrors(t *testing.T) {
	t.Parallel()
	up := []string{"http://127.0.0.1:8000"}
	tests := []struct {
		name      string
		upstreams []string
		listen    string
		redis     string
		want      string // in the message
	}{
		{"no upstream at all", nil, "", "", "--upstream"},
		{"bad scheme", []string{"ftp://x"}, "", "", "scheme must be http, https or unix"},
		{"no port", up, "127.0.0.1", "", "must be host:port"},
		{"port out of range", up, "127.0.0.1:99999", "", "gateway.listen: (\"127.0.0.1:99999\") has port 99999, out of range 0-65535"},
		{"one target twice", []string{"http://127.0.0.1:8000", "http://127.0.0.1:8000/"}, "", "",
			`gateway.pools[0].targets[1].url: ("http://127.0.0.1:8000/") is listed twice in the pool`},
		{"redis without scheme", up, "", "localhost:6379", `gateway.redisURL: ("localhost:6379") has no scheme; use redis://localhost:6379/0`},
		{"redis with another scheme", up, "", "http://:s3cret@localhost:6379", `gateway.redisURL: ("http://:xxxxx@localhost:6379") invalid URL scheme: http`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			streams, _, _, _ := iostreams.Test()
			f := NewFactory(streams)
			f.ConfigPath = filepath.Join(t.TempDir(), "missing.yaml")
			_, err := gatewayConfig(&gatewayServeOptions{f: f, upstreams: tt.upstreams, listen: tt.listen, redis: tt.redis})
			var ue *UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a usage error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error shows the Redis password: %v", err)
			}
			if n := strings.Count(err.Error(), "gateway.pools:"); n > 1 {
				t.Fatalf("the pools problem is told %d times:\n%v", n, err)
			}
		})
	}
}

func TestGatewayServeReadsTheGatewaySection(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "aideploy.yaml")
	yaml := "apiVersion: aideploy.dev/v1\nname: demo\nimage: example/model:1.0\ngateway:\n  listen: 127.0.0.1:7000\n  pools:\n    - name: default\n      targets:\n        - url: http://127.0.0.1:8000\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	streams, _, _, _ := iostreams.Test()
	f := NewFactory(streams)
	f.ConfigPath = path
	cfg, err := gatewayConfig(&gatewayServeOptions{f: f, adminListen: "127.0.0.1:7001"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7000" || cfg.AdminListen != "127.0.0.1:7001" || cfg.Pools[0].Targets[0].URL != "http://127.0.0.1:8000" {
		t.Fatalf("got %+v", cfg)
	}
}

// A pool made from --upstream checks a path the preset's server has: compose's
// gateway of an Ollama project (which has no /health) would never see a
// healthy target otherwise. Ollama's slots, which the preset sets, are its
// limit: past them Ollama queues without bound, so the gateway's queue takes
// the place of Ollama's, bounded (upstream.SlotQueue: Ollama's own 512, 10 s).
func TestGatewayServeUpstreamChecksThePresetsPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
		slots            int
		queue            upstream.Queue
	}{
		{"ollama", "server: ollama\nreplicas: 2\nmodel:\n  concurrency: 6\n", "/api/version", 6,
			upstream.SlotQueue(6, 2)},
		{"vllm", "server: vllm\nmodel:\n  name: Qwen/Qwen2.5-0.5B-Instruct\n", "/health", 0,
			upstream.Queue{Timeout: upstream.DefaultQueueTimeout}},
		{"custom keeps the gateway's default", "image: example/model:1.0\n", "/health", 0,
			upstream.Queue{Timeout: upstream.DefaultQueueTimeout}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "aideploy.yaml")
			if err := os.WriteFile(path, []byte("apiVersion: aideploy.dev/v1\nname: demo\n"+tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			streams, _, _, _ := iostreams.Test()
			f := NewFactory(streams)
			f.ConfigPath = path
			cfg, err := gatewayConfig(&gatewayServeOptions{f: f, upstreams: []string{"http://demo:11434"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Pools) != 1 || cfg.Pools[0].HealthCheck.Path != tt.want || cfg.Pools[0].MaxInflight != tt.slots || cfg.Pools[0].Queue != tt.queue {
				t.Errorf("pools %+v: want the health path %s, a limit of %d (0: adaptive) and the queue %+v", cfg.Pools, tt.want, tt.slots, tt.queue)
			}
		})
	}
}
