package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/gateway/limit"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/units"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// colours puts blue and green in the default pool as two groups with split
// (nil: none), through the admin API's swap as a rollout does.
func colours(t *testing.T, srv *Server, blue, green string, split *adminapi.Split) *upstream.Pool {
	t.Helper()
	p := srv.Gateway().Pools()["default"]
	_, err := p.Replace(t.Context(), adminapi.ReplaceTargets{Targets: []adminapi.Target{
		{URL: blue, Group: "blue"}, {URL: green, Group: "green"},
	}, Split: split})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func groupFigures(p *upstream.Pool) map[string]adminapi.GroupStats {
	out := map[string]adminapi.GroupStats{}
	for _, g := range p.Stats(time.Minute).ByGroup {
		k := g.Group
		if g.Shadow {
			k += "/shadow"
		}
		out[k] = g
	}
	return out
}

// Shadow acceptance: clients get only the serving version's answers, the
// shadow's figures are in the stats, and mirrored requests neither count
// against the tenant's limit nor read or write the cache. The gateway runs
// with its defaults (cache on, limit step in the chain).
func TestShadowAnswersNoClientAndTouchesNeitherCacheNorLimits(t *testing.T) {
	t.Parallel()
	_, blue := fake(t, func(o *fakemodel.Options) { o.Version = "blue-v1" })
	greenFM, green := fake(t, func(o *fakemodel.Options) {
		o.Version = "green-v2"
		o.Tokens, o.FinishReason = 4, "length"
	})
	const allowed = 100
	lc := limit.Default()
	lc.Default = limit.Rule{Algorithm: limit.SlidingWindow, Requests: allowed, Window: units.Duration(time.Minute)}
	_, mod := limited(t, lc)
	srv, gw := startGateway(t, testConfig(blue), true, mod)
	p := colours(t, srv, blue, green, nil)
	if _, err := p.SetShadow(adminapi.Shadow{Group: "green", Percent: 100}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	bodies := map[int]string{}
	for i := range n {
		body := strings.Replace(chatBody, `"hi"`, fmt.Sprintf(`"question %d"`, i), 1)
		if i%2 == 1 {
			body = strings.Replace(streamBody, `"hi"`, fmt.Sprintf(`"question %d"`, i), 1)
		}
		resp, got := post(t, gw+"/v1/chat/completions", body)
		if resp.StatusCode != 200 || resp.Header.Get("X-Model-Version") != "blue-v1" || strings.Contains(got, "green-v2") {
			t.Fatalf("request %d: %d version %q: %s", i, resp.StatusCode, resp.Header.Get("X-Model-Version"), got)
		}
		if resp.Header.Get("X-Cache") != "MISS" {
			t.Fatalf("request %d: X-Cache %q", i, resp.Header.Get("X-Cache"))
		}
		if rem := resp.Header.Get("RateLimit-Remaining"); rem != strconv.Itoa(allowed-1-i) {
			t.Fatalf("request %d: RateLimit-Remaining %s, want %d: mirrors counted against the tenant", i, rem, allowed-1-i)
		}
		bodies[i] = got
	}
	// The figures in the message tell a dropped mirror (the shadow target
	// unhealthy or full) from a slow one, should the wait ever give up.
	var sh adminapi.GroupStats
	waitFor(t, "the mirrors to end", func() bool {
		sh = groupFigures(p)["green/shadow"]
		return sh.Requests == n && greenFM.Stats().Inflight == 0
	}, func() string {
		return fmt.Sprintf("shadow figures %+v; the shadow model's %+v; targets %+v", sh, greenFM.Stats(), p.Snapshot().Targets)
	})
	if got := greenFM.Stats().Requests; got != n {
		t.Fatalf("the shadow saw %d requests, want %d", got, n)
	}
	// The cache holds the serving answers only, and a hit is not mirrored.
	resp, got := post(t, gw+"/v1/chat/completions", strings.Replace(chatBody, `"hi"`, `"question 0"`, 1))
	if resp.Header.Get("X-Cache") != "HIT" || got != bodies[0] {
		t.Fatalf("repeat: X-Cache %q, body %s, want the first answer %s", resp.Header.Get("X-Cache"), got, bodies[0])
	}
	// After every mirror ended, the tenant's count is the client's requests alone.
	resp, _ = post(t, gw+"/v1/chat/completions", strings.Replace(chatBody, `"hi"`, `"last"`, 1))
	if rem := resp.Header.Get("RateLimit-Remaining"); rem != strconv.Itoa(allowed-1-n) {
		t.Fatalf("RateLimit-Remaining %s after %d client requests, want %d", rem, n+1, allowed-1-n)
	}
	waitFor(t, "the last mirror", func() bool { return groupFigures(p)["green/shadow"].Requests == n+1 })
	f := groupFigures(p)
	sh, serving := f["green/shadow"], f["blue"]
	if serving.Requests != n+1 || f["green"].Requests != 0 {
		t.Fatalf("serving figures: %+v", f)
	}
	if sh.Errors != 0 || sh.OutputTokensMean != 4 || sh.FinishReasons["length"] != n+1 || serving.FinishReasons["length"] != n+1 {
		t.Fatalf("shadow figures: %+v (serving %+v)", sh, serving)
	}
	if st := p.Stats(time.Minute); st.Requests != n+1 {
		t.Fatalf("pool requests %d, want the %d client requests alone", st.Requests, n+1)
	}
}

// The per-group figures tell a regression without errors: green answers half
// as long, stops at length, and starts slower.
func TestGroupFiguresTellARegressionWithoutErrors(t *testing.T) {
	t.Parallel()
	_, blue := fake(t, func(o *fakemodel.Options) { o.Tokens = 16 })
	_, green := fake(t, func(o *fakemodel.Options) {
		o.Tokens, o.FinishReason = 8, "length"
		o.FirstTokenDelay = 60 * time.Millisecond
	})
	cfg := testConfig(blue)
	cfg.Cache.Enabled = false
	srv, gw := startGateway(t, cfg, false)
	p := colours(t, srv, blue, green, &adminapi.Split{Percent: map[string]int{"blue": 50, "green": 50}, Sticky: "header:X-Session-Id"})
	const plain = `{"model":"fake-model","messages":[{"role":"user","content":"one two three"}]}`
	const stream = `{"model":"fake-model","messages":[{"role":"user","content":"one two three"}],"stream":true}`
	for i := range 40 {
		body := plain
		if i%2 == 0 {
			body = stream
		}
		resp, got := post(t, gw+"/v1/chat/completions", body, "X-Session-Id", fmt.Sprint("conv-", i%10))
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, got)
		}
	}
	f := groupFigures(p)
	b, g := f["blue"], f["green"]
	if b.Requests+g.Requests != 40 || b.Requests == 0 || g.Requests == 0 || b.Errors+g.Errors != 0 {
		t.Fatalf("figures: %+v", f)
	}
	if b.OutputTokensMean != 16 || g.OutputTokensMean != 8 || b.OutputTokensP50 != 16 || g.OutputTokensP50 != 8 {
		t.Fatalf("output length: blue %+v green %+v", b, g)
	}
	if b.FinishReasons["stop"] != b.Requests || g.FinishReasons["length"] != g.Requests {
		t.Fatalf("finish reasons: blue %v green %v", b.FinishReasons, g.FinishReasons)
	}
	if g.TTFTP95Seconds < 0.06 || b.TTFTP95Seconds >= 0.06 {
		t.Fatalf("ttft p95: blue %v green %v", b.TTFTP95Seconds, g.TTFTP95Seconds)
	}
	if b.TokensPerSecond <= g.TokensPerSecond {
		t.Fatalf("tokens/s: blue %v green %v", b.TokensPerSecond, g.TokensPerSecond)
	}
}

// A new version whose server went away: requests that could not connect go
// to the previous version, and once it is ejected they go there at once.
// None is answered with an error.
func TestFallbackWhenTheNewVersionRefusesConnections(t *testing.T) {
	t.Parallel()
	_, blue := fake(t, func(o *fakemodel.Options) { o.Version = "blue-v1" })
	gs := httptest.NewServer(fakemodel.NewHandler(fakemodel.DefaultOptions()))
	cfg := testConfig(blue)
	cfg.Cache.Enabled = false
	srv, gw := startGateway(t, cfg, false)
	p := colours(t, srv, blue, gs.URL, &adminapi.Split{Percent: map[string]int{"green": 100}, Fallback: "blue"})
	gs.Close() // green crashed right after the switch
	for i := range 30 {
		resp, got := post(t, gw+"/v1/chat/completions", chatBody)
		if resp.StatusCode != 200 || resp.Header.Get("X-Model-Version") != "blue-v1" {
			t.Fatalf("request %d: %d %q %s", i, resp.StatusCode, resp.Header.Get("X-Model-Version"), got)
		}
	}
	f := groupFigures(p)
	if f["blue"].Requests != 30 || f["green"].FellBack != 30 {
		t.Fatalf("figures: %+v", f)
	}
	if n := testutil.ToFloat64(srv.Gateway().m.Fallbacks.WithLabelValues("default")); n != 30 {
		t.Fatalf("ai_gateway_upstream_fallbacks_total = %v, want 30", n)
	}
}

// A new version that answers 500: the breaker opens after its threshold and
// from then on every request goes to the previous version.
func TestFallbackWhenTheNewVersionAnswers500(t *testing.T) {
	t.Parallel()
	_, blue := fake(t, func(o *fakemodel.Options) { o.Version = "blue-v1" })
	_, green := fake(t, func(o *fakemodel.Options) { o.FailureRate = 1 })
	cfg := testConfig(blue)
	cfg.Cache.Enabled = false
	srv, gw := startGateway(t, cfg, false)
	colours(t, srv, blue, green, &adminapi.Split{Percent: map[string]int{"green": 100}, Fallback: "blue"})
	failed := 0
	for i := range 30 {
		resp, _ := post(t, gw+"/v1/chat/completions", chatBody)
		switch {
		case resp.StatusCode == 500 && failed == i:
			failed++ // before the breaker opened
		case resp.StatusCode != 200:
			t.Fatalf("request %d: %d after %d failures", i, resp.StatusCode, failed)
		}
	}
	if want := int(cfg.Breaker.ConsecutiveFailures); failed != want {
		t.Fatalf("%d requests failed, want the breaker's %d", failed, want)
	}
}

// A new version behind a port that still accepts connections and closes them
// without an answer (a proxy in front of a dead container): the inference
// request was never answered and goes to the previous version.
func TestFallbackWhenTheNewVersionClosesWithoutAnAnswer(t *testing.T) {
	t.Parallel()
	_, blue := fake(t, func(o *fakemodel.Options) { o.Version = "blue-v1" })
	var hangUp atomic.Bool
	model := fakemodel.NewHandler(fakemodel.DefaultOptions())
	gs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hangUp.Load() {
			model.ServeHTTP(w, r)
			return
		}
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	}))
	defer gs.Close()
	cfg := testConfig(blue)
	cfg.Cache.Enabled = false
	srv, gw := startGateway(t, cfg, false)
	p := colours(t, srv, blue, gs.URL, &adminapi.Split{Percent: map[string]int{"green": 100}, Fallback: "blue"})
	hangUp.Store(true) // from now on green hangs up on every request it reads
	for i := range 10 {
		resp, got := post(t, gw+"/v1/chat/completions", chatBody)
		if resp.StatusCode != 200 || resp.Header.Get("X-Model-Version") != "blue-v1" {
			t.Fatalf("request %d: %d %q %s", i, resp.StatusCode, resp.Header.Get("X-Model-Version"), got)
		}
	}
	if f := groupFigures(p); f["blue"].Requests != 10 || f["green"].FellBack != 10 {
		t.Fatalf("figures: %+v", f)
	}
	if n := testutil.ToFloat64(srv.Gateway().m.Fallbacks.WithLabelValues("default")); n != 10 {
		t.Fatalf("ai_gateway_upstream_fallbacks_total = %v, want 10", n)
	}
}
