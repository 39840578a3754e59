package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway/limit"
	"github.com/aideploy/aideploy/internal/gateway/openai"
	"github.com/aideploy/aideploy/internal/testutil/redistest"
	"github.com/aideploy/aideploy/internal/units"
	"github.com/redis/go-redis/v9"
)

func TestIntegrationLimitSharedByThreeGateways(t *testing.T) {
	rs := redistest.New(t)
	_, up := fake(t, nil)
	cfg := testConfig(up)
	cfg.RedisURL = "redis://" + rs.Addr + "/0"
	cfg.Cache.Enabled = false
	// 30 clients at once against one target: the overload limit (8 in
	// flight and a short queue per gateway at first) is not what this tests.
	cfg.Pools[0].MaxInflight = -1
	cfg.Limits.Enabled = true
	cfg.Limits.Redis.Timeout = units.Duration(2 * time.Second)
	cfg.Limits.Default = limit.Rule{Algorithm: limit.SlidingWindow, Requests: 100, Window: units.Duration(time.Minute)}
	gws := []*running{runGateway(t, cfg, Options{}), runGateway(t, cfg, Options{}), runGateway(t, cfg, Options{})}
	var admitted, rejected, other atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	sem := make(chan struct{}, 30) // 30 clients at a time: a loaded test machine must not push decisions to the fallback
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			resp, err := client.Post(gws[i%3].url+"/v1/chat/completions", "application/json", strings.NewReader(uniqueBody(i)))
			if err != nil {
				other.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				admitted.Add(1)
			case 429:
				rejected.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Logf("3 gateways, 300 requests, limit 100/min: %d admitted, %d rejected, %d other", admitted.Load(), rejected.Load(), other.Load())
	if a := admitted.Load(); a < 100 || a > 101 || other.Load() != 0 {
		t.Fatalf("admitted %d (want 100, at most 101), other %d", a, other.Load())
	}
}

func TestIntegrationTokenBudgetSettledFromStreamThroughRedis(t *testing.T) {
	rs := redistest.New(t)
	_, up := fake(t, func(o *fakemodel.Options) { o.Tokens = 7 })
	cfg := testConfig(up)
	cfg.RedisURL = "redis://" + rs.Addr + "/0"
	cfg.Cache.Enabled = false
	cfg.Limits.Enabled = true
	cfg.Limits.Redis.Timeout = units.Duration(time.Second)
	cfg.Limits.Default = limit.Rule{TokensPerMinute: 6000}
	g := runGateway(t, cfg, Options{})
	start := time.Now()
	// The first client asks for the usage chunk and sees it; the others do
	// not, see none, and are counted all the same (the gateway asks the model).
	_, body := post(t, g.url+"/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`)
	u, ok := usageOfStream(body)
	if !ok {
		t.Fatalf("no usage in a stream that asked for it: %q", body)
	}
	for range 2 {
		_, body := post(t, g.url+"/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`)
		if _, ok := usageOfStream(body); ok || !strings.Contains(body, "[DONE]") {
			t.Fatalf("a client that did not ask for usage got it, or no end: %q", body)
		}
	}
	used := 3 * u.TotalTokens
	// Another replica's view of the same budget, straight from Redis.
	lc := limitsConfig(cfg)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	l := limit.New(lc, rdb, nil, nil)
	defer l.Close()
	_, d := l.Reserve(context.Background(), anonymous, openai.RouteChat, 0)
	if d.Backend != limit.BackendRedis {
		t.Fatalf("decision came from %q, want redis", d.Backend)
	}
	// The budget refills at 100 tokens a second while the test runs.
	refill := int64(time.Since(start).Seconds()*100) + 1
	if spent := 6000 - d.Remaining; spent > used || spent < used-refill {
		t.Fatalf("shared budget spent %d; three streams used %d (refill up to %d; 15000 were reserved)", spent, used, refill)
	}
}
