package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway/limit"
	"github.com/aideploy/aideploy/internal/gateway/openai"
	"github.com/aideploy/aideploy/internal/units"
)

func limited(t *testing.T, lc limit.Config) (*limit.Limiter, func(*Deps)) {
	t.Helper()
	lc.Enabled = true
	l := limit.New(lc, nil, nil, nil)
	t.Cleanup(l.Close)
	return l, func(d *Deps) { d.Limiter = l }
}

// requestLimited starts a gateway before a fake model that admits n
// requests a minute per tenant; edit changes the configuration first.
func requestLimited(t *testing.T, n int64, withCache bool, edit func(*Config)) (gw string) {
	t.Helper()
	_, up := fake(t, nil)
	lc := limit.Default()
	lc.Default = limit.Rule{Algorithm: limit.SlidingWindow, Requests: n, Window: units.Duration(time.Minute)}
	_, mod := limited(t, lc)
	cfg := testConfig(up)
	edit(&cfg)
	_, gw = startGateway(t, cfg, withCache, mod)
	return gw
}

func TestLimitRejectsWith429AndHeaders(t *testing.T) {
	t.Parallel()
	gw := requestLimited(t, 3, false, func(cfg *Config) { cfg.Cache.Enabled = false })
	for i := range 3 {
		resp, _ := post(t, gw+"/v1/chat/completions", chatBody)
		if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "3" || resp.Header.Get("RateLimit-Remaining") != string(rune('2'-i)) {
			t.Fatalf("request %d: %d %v", i, resp.StatusCode, resp.Header)
		}
	}
	resp, body := post(t, gw+"/v1/chat/completions", chatBody)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "rate_limit_exceeded") {
		t.Fatalf("4th request: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}

func TestLimitSettlesTokensFromStreamedUsage(t *testing.T) {
	t.Parallel()
	_, up := fake(t, func(o *fakemodel.Options) { o.Tokens = 5 })
	lc := limit.Default()
	lc.Default = limit.Rule{TokensPerMinute: 6000}
	start := time.Now()
	l, mod := limited(t, lc)
	cfg := testConfig(up)
	cfg.Cache.Enabled = false
	_, gw := startGateway(t, cfg, false, mod)
	// The client does not ask for usage: the gateway does, settles from it,
	// and leaves the usage chunk out of the client's stream.
	body := `{"model":"m","stream":true,"max_tokens":2000,"messages":[{"role":"user","content":"hi"}]}`
	resp, got := post(t, gw+"/v1/chat/completions", body)
	if _, ok := usageOfStream(got); resp.StatusCode != 200 || ok || !strings.Contains(got, "[DONE]") {
		t.Fatalf("stream: %d %q", resp.StatusCode, got)
	}
	u := openai.Usage{TotalTokens: 1 + 5} // the fake model's count: one prompt word, five tokens
	_, d := l.Reserve(context.Background(), anonymous, openai.RouteChat, 0)
	// 2000 were reserved up front; after settling only the real usage is spent.
	// The budget refills at 100 tokens a second while the test runs.
	refill := int64(time.Since(start).Seconds()*100) + 1
	if spent := 6000 - d.Remaining; spent > u.TotalTokens || spent < u.TotalTokens-refill {
		t.Fatalf("budget spent %d, the stream used %d tokens (refill up to %d)", spent, u.TotalTokens, refill)
	}
}

func usageOfStream(s string) (openai.Usage, bool) {
	for _, line := range strings.Split(s, "\n") {
		if u, ok := openai.UsageOf([]byte(strings.TrimPrefix(line, "data: "))); ok {
			return u, true
		}
	}
	return openai.Usage{}, false
}

// The order of the steps decides whether answers from the cache count
// against a limit: with the cache first (the default) only requests that
// reach the model do; with the limiter first every request does.
func TestOrderDecidesWhetherCacheHitsCount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		order  []string
		codes  []int // the same question asked four times
		second int   // then a second question
	}{
		{[]string{"cache", "limit", "upstream"}, []int{200, 200, 200, 200}, 200},
		{[]string{"limit", "cache", "upstream"}, []int{200, 200, 429, 429}, 429},
	} {
		t.Run(strings.Join(tc.order, ","), func(t *testing.T) {
			t.Parallel()
			gw := requestLimited(t, 2, true, func(cfg *Config) { cfg.Order = tc.order })
			for i, want := range tc.codes {
				resp, body := post(t, gw+"/v1/chat/completions", chatBody)
				if resp.StatusCode != want {
					t.Fatalf("request %d: %d (want %d), X-Cache %q: %s", i+1, resp.StatusCode, want, resp.Header.Get("X-Cache"), body)
				}
			}
			// A new question reaches the limit in both orders.
			other := strings.Replace(chatBody, `"messages"`, `"user":"other","messages"`, 1)
			if resp, _ := post(t, gw+"/v1/chat/completions", other); resp.StatusCode != tc.second {
				t.Fatalf("a second question: %d, want %d", resp.StatusCode, tc.second)
			}
			if resp, _ := post(t, gw+"/v1/chat/completions", strings.Replace(other, "other", "third", 1)); resp.StatusCode != 429 {
				t.Fatalf("a third question: %d, want 429: the limit of 2 is spent", resp.StatusCode)
			}
		})
	}
}
