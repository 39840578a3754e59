package limit

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/aideploy/aideploy/internal/units"
)

// t0 is aligned to the minute so that fixed windows start there.
var t0 = time.Unix(1_700_000_000, 0).Truncate(time.Minute)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// env is a limiter on one backend with a clock the test moves.
type env struct {
	l       *Limiter
	m       *Metrics
	advance func(time.Duration)
}

func newEnv(t *testing.T, cfg Config, backend string) env {
	t.Helper()
	cfg.Enabled = true
	cfg.Backend = backend
	cfg.Redis.Timeout = units.Duration(5 * time.Second) // miniredis runs Lua slowly on a busy machine
	m := NewMetrics(prometheus.NewRegistry())
	clk := &clock{t: t0}
	e := env{m: m}
	var rdb redis.UniversalClient
	var mr *miniredis.Miniredis
	if backend == BackendRedis {
		mr = miniredis.RunT(t)
		mr.SetTime(t0)
		c := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { c.Close() })
		rdb = c
	}
	e.l = New(cfg, rdb, m, testLogger(t))
	e.l.now = clk.Now
	t.Cleanup(e.l.Close)
	e.advance = func(d time.Duration) {
		clk.mu.Lock()
		clk.t = clk.t.Add(d)
		clk.mu.Unlock()
		if mr != nil {
			mr.SetTime(clk.Now())
			mr.FastForward(d)
		}
	}
	return e
}

// testLogger sends the limiter's log lines to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func rule(alg string, requests int64, window time.Duration) Config {
	cfg := Default()
	cfg.Default = Rule{Algorithm: alg, Requests: requests, Window: units.Duration(window)}
	return cfg
}

// admit sends n requests and returns how many were allowed, and the last decision.
func admit(e env, tenant, route string, n int) (int, Decision) {
	ok := 0
	var d Decision
	for range n {
		d = e.l.AllowRequest(context.Background(), tenant, route)
		if d.Allowed {
			ok++
		}
	}
	return ok, d
}

var backends = []string{BackendLocal, BackendRedis}

func TestRequestLimits(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		for _, alg := range []string{TokenBucket, SlidingWindow} {
			t.Run(backend+"/"+alg, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, rule(alg, 5, time.Minute), backend)
				for i := range 5 {
					d := e.l.AllowRequest(context.Background(), "a", "/v1/x")
					if !d.Allowed || d.Remaining != int64(4-i) || d.Limit != 5 || d.Backend != backend || d.Kind != KindRequests {
						t.Fatalf("request %d: %+v, want allowed with %d remaining of 5 on %s", i, d, 4-i, backend)
					}
				}
				ok, d := admit(e, "a", "/v1/x", 3)
				// The local sliding counter may ask to wait into the next window.
				if ok != 0 || d.RetryAfter <= 0 || d.RetryAfter > 2*time.Minute || d.Remaining != 0 {
					t.Fatalf("past the limit: %d admitted, last %+v; want none, with a retry within two windows", ok, d)
				}
				if ok, _ := admit(e, "b", "/v1/x", 5); ok != 5 {
					t.Errorf("another tenant got %d of 5: tenants must not share a limit", ok)
				}
				// RetryAfter is neither early nor late by more than the clock's step.
				e.advance(d.RetryAfter - 10*time.Millisecond)
				if ok, _ := admit(e, "a", "/v1/x", 1); ok != 0 {
					t.Errorf("10ms before RetryAfter (%s) a request was admitted", d.RetryAfter)
				}
				e.advance(10 * time.Millisecond)
				if ok, _ := admit(e, "a", "/v1/x", 1); ok != 1 {
					t.Errorf("after RetryAfter (%s) the request was still rejected", d.RetryAfter)
				}
				if got := testutil.ToFloat64(e.m.decisions.WithLabelValues("rejected", KindRequests, backend)); got != 4 {
					t.Errorf("rejected decisions = %v, want 4", got)
				}
			})
		}
	}
}

// TestRejectedDoNotCount rejects many requests and checks the next window is not charged.
func TestRejectedDoNotCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		backend, alg string
		reject, wait time.Duration // from the first 5 admissions
		want         int
	}{
		// Local sliding counter at 1.5 windows: 5 × 0.5 of the last window remain, so 2 fit.
		{BackendLocal, SlidingWindow, 30 * time.Second, 90 * time.Second, 2},
		// The Redis log forgets the first 5 after one window; rejections logged at 30s would remain.
		{BackendRedis, SlidingWindow, 30 * time.Second, 61 * time.Second, 5},
		// A bucket refills in one window; rejections taken as debt would delay that.
		{BackendLocal, TokenBucket, time.Second, 60 * time.Second, 5},
		{BackendRedis, TokenBucket, time.Second, 60 * time.Second, 5},
	}
	for _, tt := range tests {
		t.Run(tt.backend+"/"+tt.alg, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, rule(tt.alg, 5, time.Minute), tt.backend)
			if ok, _ := admit(e, "a", "/", 5); ok != 5 {
				t.Fatalf("admitted %d of the first 5", ok)
			}
			e.advance(tt.reject)
			if ok, _ := admit(e, "a", "/", 50); ok != 0 {
				t.Fatalf("admitted %d past the limit", ok)
			}
			e.advance(tt.wait - tt.reject)
			if ok, _ := admit(e, "a", "/", 10); ok != tt.want {
				t.Errorf("after %s: %d admitted, want %d (rejections must not count)", tt.wait, ok, tt.want)
			}
		})
	}
}

func TestRuleResolution(t *testing.T) {
	t.Parallel()
	cfg := rule(SlidingWindow, 3, time.Minute)
	cfg.Tenants = map[string]Rule{"big": {Algorithm: SlidingWindow, Requests: 10, Window: units.Duration(time.Minute)}}
	cfg.Routes = []RouteRule{{Route: "/v1/embeddings", Rule: Rule{Algorithm: TokenBucket, Requests: 6, Window: units.Duration(time.Minute)}}}
	e := newEnv(t, cfg, BackendLocal)
	tests := []struct {
		tenant, route string
		want          int
	}{
		{"small", "/v1/chat/completions", 3},
		{"small", "/v1/completions", 0}, // same tenant counter as above
		{"big", "/v1/chat/completions", 10},
		{"small", "/v1/embeddings", 6}, // the route's own counter
		{"big", "/v1/embeddings", 6},
	}
	for _, tt := range tests {
		if ok, _ := admit(e, tt.tenant, tt.route, 20); ok != tt.want {
			t.Errorf("%s on %s: %d admitted, want %d", tt.tenant, tt.route, ok, tt.want)
		}
	}
}

func TestDisabledOrNoRule(t *testing.T) {
	t.Parallel()
	cfg := rule(SlidingWindow, 1, time.Minute)
	cfg.Enabled = false
	l := New(cfg, nil, nil, nil)
	t.Cleanup(l.Close)
	for range 3 {
		if d := l.AllowRequest(context.Background(), "a", "/"); !d.Allowed || d.Limit != 0 || d.Backend != "" {
			t.Fatalf("disabled limiter: %+v, want allowed with no limit", d)
		}
	}
	res, d := l.Reserve(context.Background(), "a", "/", 1e6)
	if !d.Allowed || res.key != "" {
		t.Fatalf("disabled token budget: %+v %+v", res, d)
	}
	l.Settle(context.Background(), res, 5)
}

func TestTokenBudgetSettle(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			cfg.Default = Rule{TokensPerMinute: 1000}
			e := newEnv(t, cfg, backend)
			ctx := context.Background()
			r1, d := e.l.Reserve(ctx, "a", "/", 600)
			if !d.Allowed || d.Remaining != 400 || d.Limit != 1000 || d.Kind != KindTokens {
				t.Fatalf("first reservation: %+v, want allowed with 400 of 1000 left", d)
			}
			if _, d := e.l.Reserve(ctx, "a", "/", 600); d.Allowed || d.Remaining != 400 || d.RetryAfter < 11*time.Second || d.RetryAfter > 13*time.Second {
				t.Fatalf("second reservation: %+v, want rejected, 400 left, retry in 12s", d)
			}
			e.l.Settle(ctx, r1, 100) // used 100 of 600: refund 500
			r2, d := e.l.Reserve(ctx, "a", "/", 600)
			if !d.Allowed || d.Remaining != 300 {
				t.Fatalf("after the refund: %+v, want allowed with 300 left", d)
			}
			e.l.Settle(ctx, r2, 900) // used 300 more than reserved: debt
			if _, d := e.l.Reserve(ctx, "a", "/", 1); d.Allowed {
				t.Fatalf("after the debt: %+v, want rejected", d)
			}
			e.advance(time.Minute) // the whole budget back
			if _, d := e.l.Reserve(ctx, "a", "/", 1000); !d.Allowed {
				t.Fatalf("a minute later: %+v, want the whole budget", d)
			}
		})
	}
}

func TestReservationLargerThanBudget(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			cfg.Default = Rule{TokensPerMinute: 100}
			e := newEnv(t, cfg, backend)
			ctx := context.Background()
			if _, d := e.l.Reserve(ctx, "a", "/", 500); !d.Allowed {
				t.Fatalf("an oversized reservation on a full budget: %+v, want allowed", d)
			}
			e.advance(2 * time.Minute)
			if _, d := e.l.Reserve(ctx, "a", "/", 500); d.Allowed || d.RetryAfter < 2*time.Minute {
				t.Fatalf("an oversized reservation in debt: %+v, want rejected until the debt is paid", d)
			}
		})
	}
}

func TestNoRedisClientFallsBackVisibly(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	cfg := rule(SlidingWindow, 10, time.Minute)
	cfg.Enabled, cfg.Backend, cfg.LocalShare = true, BackendRedis, 0.3
	m := NewMetrics(prometheus.NewRegistry())
	l := New(cfg, nil, m, slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(l.Close)
	ok := 0
	var d Decision
	for range 20 {
		if d = l.AllowRequest(context.Background(), "a", "/"); d.Allowed {
			ok++
		}
	}
	if ok != 3 || d.Backend != BackendFallback || d.Limit != 3 {
		t.Errorf("fallback admitted %d (last %+v), want 3 = 0.3 × 10 on local-fallback", ok, d)
	}
	if got := testutil.ToFloat64(m.fallback); got != 1 {
		t.Errorf("fallback gauge = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "fall back to local") {
		t.Errorf("no log line about the fallback: %q", logs.String())
	}
}
