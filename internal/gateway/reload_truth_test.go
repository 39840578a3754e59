package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/metrics"
	"github.com/aideploy/aideploy/internal/units"
)

// runGatewayLogged is runGateway with the gateway's info log kept for the test.
func runGatewayLogged(t *testing.T, cfg Config, opts Options) (*running, *lockedBuffer) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs a whole gateway; skipped under -short")
	}
	logs := &lockedBuffer{}
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stop: cancel, done: make(chan error, 1)}
	started := make(chan struct{})
	opts.Started = func(a, b string) { r.url, r.admin = "http://"+a, "http://"+b; close(started) }
	go func() { r.done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)), opts) }()
	select {
	case <-started:
	case err := <-r.done:
		t.Fatalf("gateway did not start: %v", err)
	}
	t.Cleanup(func() { cancel(); <-r.done })
	return r, logs
}

// waitFor polls cond for up to 10 s; state, if given, says what was seen
// when it gives up.
func waitFor(t *testing.T, what string, cond func() bool, state ...func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			var seen []string
			for _, s := range state {
				seen = append(seen, s())
			}
			t.Fatalf("gave up waiting for %s %s", what, strings.Join(seen, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SIGHUP applies the limits and cache settings it reads, not only pools and
// routes, and the log line names the settings that need a restart.
func TestIntegrationSIGHUPAppliesLimitsAndCacheAndNamesWhatNeedsARestart(t *testing.T) {
	_, up := fake(t, nil)
	cfg := testConfig(up)
	cfg.Limits.Enabled = true
	cfg.Limits.Default.Requests = 1000
	next := testConfig(up)
	next.Limits.Enabled = true
	next.Limits.Default.Requests = 2
	next.Cache.Enabled = false
	next.Listen = "127.0.0.1:9" // the listener stays: a restart applies it
	g, logs := runGatewayLogged(t, cfg, Options{Reload: func() (Config, error) { return next, nil }})
	body := chatAbout("same question")
	for i := range 3 {
		resp, b := post(t, g.url+"/v1/chat/completions", body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d before the reload: %d %s", i, resp.StatusCode, b)
		}
		if i > 0 && resp.Header.Get("X-Cache") != "HIT" {
			t.Fatalf("request %d before the reload: X-Cache %q, want HIT", i, resp.Header.Get("X-Cache"))
		}
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload's log line", func() bool { return strings.Contains(logs.String(), "configuration reloaded") })
	var codes []int
	for range 3 {
		resp, _ := post(t, g.url+"/v1/chat/completions", body)
		codes = append(codes, resp.StatusCode)
		if resp.Header.Get("X-Cache") == "HIT" {
			t.Errorf("a cache turned off by the reload still answered")
		}
	}
	if codes[0] != http.StatusOK || codes[2] != http.StatusTooManyRequests {
		t.Errorf("after lowering the limit to 2 a minute: %v, want 200 first and 429 by the third", codes)
	}
	line := ""
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, "configuration reloaded") {
			line = l
		}
	}
	if !strings.Contains(line, "listen") || !strings.Contains(line, "restart") {
		t.Errorf("the reload's log line %q does not name listen as needing a restart", line)
	}
}

// Exactly the settings a reload cannot apply are named; the ones it applies
// are not.
func TestNeedsRestart(t *testing.T) {
	t.Parallel()
	base := Default()
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"nothing", func(*Config) {}, "[]"},
		{"applied live", func(c *Config) {
			c.Server.MaxConnections, c.Server.BodyTimeout, c.ShutdownTimeout = 10, 1, 1
			c.Limits.Default.Requests, c.Cache.TTL, c.Breaker.Cooldown = 1, 1, 1
		}, "[]"},
		{"listeners", func(c *Config) { c.Listen, c.AdminListen = "127.0.0.1:1", "127.0.0.1:2" }, "[listen adminListen]"},
		{"redis", func(c *Config) { c.RedisURL = "redis://127.0.0.1:6379/0" }, "[redisURL]"},
		{"tls on", func(c *Config) { c.Server.TLS = TLSConfig{CertFile: "c", KeyFile: "k"} }, "[server.tls (turning TLS on or off)]"},
		{"server", func(c *Config) {
			c.Server.DisableH2C, c.Server.MaxHeaderBytes, c.Server.ReadHeaderTimeout, c.Server.IdleTimeout = true, 1, 1, 1
		}, "[server.disableH2C server.maxHeaderBytes server.readHeaderTimeout server.idleTimeout]"},
	} {
		next := Default()
		tc.mod(&next)
		if got := fmt.Sprint(needsRestart(base, next)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A reload keeps the cache and the limiter whose settings did not change (an
// edited route must not empty the L1) and builds new ones for changed
// settings, retiring the old ones only when asked.
func TestReloadRebuildsWhatChanged(t *testing.T) {
	t.Parallel()
	b := newDepsBuilder(nil, metrics.New(), nil)
	cfg := Default()
	cfg.Limits.Enabled = true
	d1 := b.first(cfg)
	d2, retire, _ := b.build(cfg, d1)
	retire()
	if d2.Cache != d1.Cache || d2.Limiter != d1.Limiter {
		t.Fatalf("unchanged settings: the cache or limiter was rebuilt")
	}
	next := cfg
	next.Cache.TTL = units.Duration(time.Minute)
	next.Limits.Default.Requests = 7
	d3, _, drop := b.build(next, d2)
	if d3.Cache == d2.Cache || d3.Limiter == d2.Limiter {
		t.Fatalf("changed TTL and limit: the old cache or limiter was kept")
	}
	// A refused reload drops what it built; the next compares with what serves.
	drop()
	d4, retire, _ := b.build(next, d2)
	defer closeDeps(d4, Deps{})
	if d4.Cache == d2.Cache || d4.Limiter == d2.Limiter {
		t.Fatalf("after a refused reload: the serving cache or limiter was taken as having the new settings")
	}
	retire()
}
