package limit

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/aideploy/aideploy/internal/testutil/redistest"
	"github.com/aideploy/aideploy/internal/units"
)

// replica is one simulated gateway process: its own Redis client, limiter and metrics.
type replica struct {
	l *Limiter
	m *Metrics
}

func newReplicas(t *testing.T, n int, addr string, cfg Config, log *slog.Logger) []replica {
	t.Helper()
	rs := make([]replica, n)
	for i := range rs {
		rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1,
			DialTimeout: 200 * time.Millisecond, PoolSize: 100})
		t.Cleanup(func() { rdb.Close() })
		rs[i].m = NewMetrics(prometheus.NewRegistry())
		rs[i].l = New(cfg, rdb, rs[i].m, log)
		t.Cleanup(rs[i].l.Close)
	}
	return rs
}

func sharedConfig(alg string, requests int64) Config {
	cfg := Default()
	cfg.Enabled, cfg.Backend = true, BackendRedis
	cfg.Default = Rule{Algorithm: alg, Requests: requests, Window: units.Duration(time.Minute)}
	// The scripts take microseconds; the timeout only has to catch a dead Redis, and 300
	// requests at once on a small machine must not trip it.
	cfg.Redis.Timeout = units.Duration(5 * time.Second)
	return cfg
}

// TestIntegrationRedisLimitAcrossReplicas: three gateway processes share one real Redis;
// 300 concurrent requests against a limit of 100 a minute admit exactly 100.
func TestIntegrationRedisLimitAcrossReplicas(t *testing.T) {
	addr, _ := redistest.Start(t)
	for _, alg := range []string{SlidingWindow, TokenBucket} {
		t.Run(alg, func(t *testing.T) {
			rs := newReplicas(t, 3, addr, sharedConfig(alg, 100), testLogger(t))
			var admitted, total atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 300 {
				wg.Go(func() {
					<-start
					d := rs[i%3].l.AllowRequest(context.Background(), "tenant-"+alg, "/v1/chat/completions")
					total.Add(1)
					if d.Allowed {
						admitted.Add(1)
					}
					if d.Backend != BackendRedis {
						t.Errorf("decision on %q, want redis", d.Backend)
					}
				})
			}
			began := time.Now()
			close(start)
			wg.Wait()
			took := time.Since(began)
			// A token bucket earns one request back every 600ms; on a loaded machine (the race
			// detector) the run may last long enough for that to count.
			most := int64(101)
			if alg == TokenBucket {
				most += int64(took / (time.Minute / 100))
			}
			if got := admitted.Load(); got < 100 || got > most {
				t.Errorf("%s: %d of %d requests admitted across 3 replicas in %s, want 100 (at most %d)", alg, got, total.Load(), took, most)
			}
			t.Logf("%s: %d of 300 admitted in %s", alg, admitted.Load(), took)
			var rejected float64
			for _, r := range rs {
				rejected += testutil.ToFloat64(r.m.decisions.WithLabelValues("rejected", KindRequests, BackendRedis))
			}
			if int64(rejected) != 300-admitted.Load() {
				t.Errorf("rejected decisions in metrics = %v, want %d", rejected, 300-admitted.Load())
			}
		})
	}
}

// TestIntegrationRedisKilledDuringLoad kills Redis under load: no decision fails, the
// replicas fall back to local limits at localShare, say so, and return to Redis after it restarts.
func TestIntegrationRedisKilledDuringLoad(t *testing.T) {
	srv := redistest.New(t)
	cfg := sharedConfig(SlidingWindow, 100)
	// A killed Redis refuses connections at once; the timeout is for a hung one.
	cfg.Redis.RetryAfter = units.Duration(100 * time.Millisecond)
	cfg.LocalShare = 0.5
	var logs syncBuffer
	rs := newReplicas(t, 3, srv.Addr, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()

	load := func(tenant string, n int) (admitted int64, backends map[string]int) {
		var mu sync.Mutex
		backends = map[string]int{}
		var wg sync.WaitGroup
		var ok atomic.Int64
		for i := range n {
			wg.Go(func() {
				d := rs[i%3].l.AllowRequest(ctx, tenant, "/v1/chat/completions")
				if d.Allowed {
					ok.Add(1)
				}
				mu.Lock()
				backends[d.Backend]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return ok.Load(), backends
	}

	if ok, b := load("before", 60); ok != 60 || b[BackendRedis] != 60 {
		t.Fatalf("before the kill: %d admitted on %v, want 60 on redis", ok, b)
	}
	// Kill Redis while requests are in flight.
	var wg sync.WaitGroup
	wg.Go(func() { load("during", 300) })
	time.Sleep(time.Millisecond)
	srv.Kill()
	wg.Wait()

	ok, b := load("after", 300)
	if b[BackendFallback] != 300 {
		t.Errorf("with Redis down: decisions on %v, want all 300 on %s", b, BackendFallback)
	}
	// Each replica enforces half of 100 on its own.
	if ok != 150 {
		t.Errorf("with Redis down: %d admitted by 3 replicas, want 3 × 50", ok)
	}
	for i, r := range rs {
		if got := testutil.ToFloat64(r.m.fallback); got != 1 {
			t.Errorf("replica %d: fallback gauge = %v, want 1", i, got)
		}
		if got := testutil.ToFloat64(r.m.redisErrors); got < 1 {
			t.Errorf("replica %d: redis errors = %v, want some", i, got)
		}
	}
	if !strings.Contains(logs.String(), "fall back to local") {
		t.Errorf("no log line about the fallback:\n%s", logs.String())
	}

	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(150 * time.Millisecond)
		if _, b := load("restored", 3); b[BackendRedis] == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not return to Redis after it restarted")
		}
	}
	for i, r := range rs {
		if got := testutil.ToFloat64(r.m.fallback); got != 0 {
			t.Errorf("replica %d: fallback gauge = %v after Redis came back, want 0", i, got)
		}
	}
	if !strings.Contains(logs.String(), "shared through Redis again") {
		t.Errorf("no log line about the recovery:\n%s", logs.String())
	}
}

// TestIntegrationRedisTokenBudgetAcrossReplicas settles a reservation on one replica and
// sees the refund and the debt on another.
func TestIntegrationRedisTokenBudgetAcrossReplicas(t *testing.T) {
	addr, _ := redistest.Start(t)
	cfg := sharedConfig(SlidingWindow, 0)
	cfg.Default.TokensPerMinute = 1000
	rs := newReplicas(t, 2, addr, cfg, testLogger(t))
	a, b := rs[0].l, rs[1].l
	ctx := context.Background()

	res, d := a.Reserve(ctx, "t", "/v1/chat/completions", 600)
	if !d.Allowed || d.Backend != BackendRedis || d.Remaining != 400 {
		t.Fatalf("reserve on A: %+v", d)
	}
	if _, d := b.Reserve(ctx, "t", "/v1/chat/completions", 600); d.Allowed || d.Remaining != 400 {
		t.Fatalf("reserve on B beyond the shared budget: %+v, want rejected with 400 left", d)
	}
	a.Settle(ctx, res, 150) // a stream that used 150 of its 600
	res2, d := b.Reserve(ctx, "t", "/v1/chat/completions", 600)
	if !d.Allowed || d.Remaining < 249 || d.Remaining > 251 {
		t.Fatalf("reserve on B after A's refund: %+v, want allowed with about 250 left", d)
	}
	b.Settle(ctx, res2, 1200) // used more than reserved: a debt of 600
	if _, d := a.Reserve(ctx, "t", "/v1/chat/completions", 1); d.Allowed {
		t.Fatalf("reserve on A after B's debt: %+v, want rejected", d)
	} else if d.RetryAfter < 20*time.Second {
		t.Errorf("retry after B's debt = %s, want at least the 21s it takes to earn it back", d.RetryAfter)
	}
	for i, r := range rs {
		if got := testutil.ToFloat64(r.m.redisErrors); got != 0 {
			t.Errorf("replica %d: %v redis errors", i, got)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
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
