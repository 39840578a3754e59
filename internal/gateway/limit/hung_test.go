package limit

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/aideploy/aideploy/internal/testutil/redistest"
	"github.com/aideploy/aideploy/internal/units"
)

func TestHungRedisCostsOneTimeout(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Hung(t), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	cfg := rule(TokenBucket, 10, time.Minute)
	cfg.Enabled, cfg.Backend, cfg.LocalShare = true, BackendRedis, 0.5
	cfg.Redis.Timeout = units.Duration(50 * time.Millisecond)
	cfg.Redis.RetryAfter = units.Duration(time.Minute)
	m := NewMetrics(prometheus.NewRegistry())
	l := New(cfg, rdb, m, testLogger(t))
	t.Cleanup(l.Close)

	start := time.Now()
	ok := 0
	for range 20 {
		d := l.AllowRequest(context.Background(), "a", "/")
		if d.Backend != BackendFallback {
			t.Fatalf("decision on %q with a hung Redis, want %s", d.Backend, BackendFallback)
		}
		if d.Allowed {
			ok++
		}
	}
	if took := time.Since(start); took > 2*time.Second { // the error count below is the exact check
		t.Errorf("20 decisions took %s: only the first should wait for the 50ms timeout", took)
	}
	if ok != 5 {
		t.Errorf("%d admitted in fallback, want 5 = 0.5 × 10", ok)
	}
	if got := testutil.ToFloat64(m.redisErrors); got != 1 {
		t.Errorf("redis errors = %v, want 1 (then Redis is left alone for retryAfter)", got)
	}
	if got := testutil.ToFloat64(m.fallbackDecisions); got != 20 {
		t.Errorf("fallback decisions = %v, want 20", got)
	}
}
