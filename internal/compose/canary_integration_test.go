package compose

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/testutil/loadslot"
	"github.com/aideploy/aideploy/internal/units"
)

// canarySettings has three short steps read twice a second, so a canary
// under test load finishes in seconds; the analysis defaults stand.
func canarySettings(strategy string) func(*rollout.Config) {
	return func(c *rollout.Config) {
		c.Strategy = strategy
		c.Canary.Steps = []rollout.CanaryStep{{Weight: 5, For: units.Duration(5 * time.Second)},
			{Weight: 25, For: units.Duration(3 * time.Second)}, {Weight: 50, For: units.Duration(3 * time.Second)}}
		c.Canary.Analysis.MinSamples = 20
		c.Canary.Analysis.Interval = units.Duration(500 * time.Millisecond)
		c.Canary.Analysis.MaxWait = units.Duration(3 * time.Second)
		c.Shadow = rollout.ShadowConfig{Percent: 50, For: units.Duration(4 * time.Second)}
	}
}

// The API keys of the load's tenant and of the shadow test's probe.
const loadKey, probeKey = "sk-test-load", "sk-test-probe"

// chatLoad sends chat completions (half streamed) at rate per second through
// the gateway, asking for up to 64 tokens, and keeps every answer.
type chatLoad struct {
	mu      sync.Mutex
	answers []answer
	stop    context.CancelFunc
	done    chan struct{}
	sent    atomic.Int64
}

func startChatLoad(t testing.TB, addr string, rate int) *chatLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &chatLoad{stop: cancel, done: make(chan struct{})}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		// Open loop at the rate on average: a tick this busy machine delivered
		// late (a ticker drops them) sends every request that fell due since.
		start := time.Now()
		for i := 0; i < 120*rate; { // bounded: two minutes of load at most
			select {
			case <-ctx.Done():
				wg.Wait()
				return
			case <-tick.C:
			}
			due := min(int(time.Since(start).Seconds()*float64(rate))+1, 120*rate)
			for ; i < due; i++ {
				wg.Add(1)
				l.sent.Add(1)
				go func(stream bool) {
					defer wg.Done()
					a := chat(client, "http://"+addr, stream)
					l.mu.Lock()
					l.answers = append(l.answers, a)
					l.mu.Unlock()
				}(i%2 == 0)
			}
		}
		wg.Wait()
	}()
	t.Cleanup(func() { l.finish() })
	return l
}

// answeredBy counts the answers so far from version v.
func (l *chatLoad) answeredBy(v string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.answers {
		if a.version == v {
			n++
		}
	}
	return n
}

func (l *chatLoad) finish() []answer {
	l.stop()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]answer(nil), l.answers...)
}

func chat(c *http.Client, base string, stream bool) (a answer) {
	body := fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":"hi %d"}],"max_tokens":64,"stream":%v}`, time.Now().UnixNano(), stream)
	a = answer{start: time.Now(), stream: stream}
	defer func() { a.end = time.Now() }()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		a.err = err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+loadKey) // ignored by a gateway without keys
	resp, err := c.Do(req)
	if err != nil {
		a.err = err.Error()
		return a
	}
	defer resp.Body.Close()
	a.status, a.version = resp.StatusCode, resp.Header.Get("X-Model-Version")
	if !stream {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			a.err = err.Error()
		}
		return a
	}
	sc := bufio.NewScanner(resp.Body)
	done := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"error"`) {
			a.err = "stream error: " + sc.Text()
		}
		done = done || sc.Text() == "data: [DONE]"
	}
	if !done && a.err == "" && resp.StatusCode == 200 {
		a.err = "stream cut before [DONE]"
	}
	return a
}

// loadRate is the answers per second between the first start and the last end.
func loadRate(as []answer) float64 {
	if len(as) == 0 {
		return 0
	}
	first, last := as[0].start, as[0].end
	for _, a := range as {
		if a.start.Before(first) {
			first = a.start
		}
		if a.end.After(last) {
			last = a.end
		}
	}
	return float64(len(as)) / last.Sub(first).Seconds()
}

// degraded reads the gateway's answers given without an upstream, by reason
// (ai_gateway_degraded_total), and the targets' limits, to tell why a request
// was refused.
func (e *env) degraded() string {
	e.t.Helper()
	out := e.metrics("ai_gateway_degraded_total", "ai_gateway_upstream_fallbacks_total")
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// metrics returns the gateway's series whose lines start with one of prefixes.
func (e *env) metrics(prefixes ...string) []string {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.admin.BaseURL+"/metrics", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.admin.HTTP.Do(req)
	if err != nil {
		return []string{"metrics: " + err.Error()}
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for _, p := range prefixes {
			if l := sc.Text(); strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// poolWatch samples the gateway pool's targets every 100 ms while a case runs:
// how often every target of a colour was at its limit and the longest queue,
// which tell a saturated gateway from a slow model when a request is refused.
type poolWatch struct {
	stop                 context.CancelFunc
	done                 chan struct{}
	samples, full, peakQ int64
	lowestLimit          int64
}

func (e *env) watchPool() *poolWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &poolWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if p, err := e.admin.Pool(ctx, "default"); err == nil {
				w.samples++
				w.peakQ = max(w.peakQ, p.Queued)
				atLimit := map[string]bool{}
				for _, t := range p.Targets {
					if t.Limit > 0 && (w.lowestLimit == 0 || t.Limit < w.lowestLimit) {
						w.lowestLimit = t.Limit
					}
					full, seen := atLimit[t.Group]
					atLimit[t.Group] = (full || !seen) && t.Limit > 0 && t.Inflight >= t.Limit
				}
				for _, full := range atLimit {
					if full {
						w.full++
						break
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *poolWatch) String() string {
	w.stop()
	<-w.done
	return fmt.Sprintf("a colour's targets all at their limit in %d of %d samples, longest queue %d, lowest limit %d", w.full, w.samples, w.peakQ, w.lowestLimit)
}

// event waits until an event's message contains msg, or fails the test after limit.
func (e *env) event(msg string, limit time.Duration) rollout.Event {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		e.mu.Lock()
		for _, ev := range e.events {
			if strings.Contains(ev.Message, msg) {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		if time.Now().After(deadline) {
			e.t.Fatalf("no event %q within %s", msg, limit)
		}
		<-tick.C
	}
}

// TestIntegrationDockerCanary runs the canary on the real engine, through the
// real gateway, under at least 100 requests a second (105 sent a second, one
// stream in two; the rate logged is from the first request to the last
// answer): a
// good version is promoted through every step without a failed request, a
// version twice as slow to its first token and one that answers half as long
// are aborted at the first step with the metric named.
func TestIntegrationDockerCanary(t *testing.T) {
	t.Parallel()
	loadslot.Take(t)
	c := dockerClient(t)
	base := map[string]string{"FAKEMODEL_TOKENS": "8", "FAKEMODEL_TOKEN_DELAY": "5ms", "FAKEMODEL_FIRST_TOKEN_DELAY": "100ms"}
	v1 := fakeModelImage(t, c, "aideploy-test-model:cn-v1", merge(base, "FAKEMODEL_VERSION", "v1"))
	tests := []struct {
		name string
		env  map[string]string
		want []string // in the failure; none: promoted
	}{
		{"good version promoted", merge(base, "FAKEMODEL_VERSION", "v2"), nil},
		{"first token twice as slow", merge(base, "FAKEMODEL_VERSION", "v2", "FAKEMODEL_FIRST_TOKEN_DELAY", "200ms"),
			[]string{"canary step 1/3 (5%): analysis failed: ttftP95"}},
		{"answers half as long", merge(base, "FAKEMODEL_VERSION", "v2", "FAKEMODEL_TOKENS", "4", "FAKEMODEL_FINISH_REASON", "length"),
			[]string{"canary step 1/3 (5%): analysis failed:", "outputTokensP50", "finishLengthShare 100.0%"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnvWith(t, nil, func(c *rollout.Config) {
				canarySettings(rollout.StrategyCanary)(c)
				// Per-token time and rate at 5 ms a token are mostly this shared
				// machine's scheduling noise; the cases here judge TTFT and length.
				c.Canary.Analysis.Thresholds.TPOTP95Ratio, c.Canary.Analysis.Thresholds.TokensPerSecondRatio = 3, 0.3
			})
			v2 := fakeModelImage(t, c, fmt.Sprintf("aideploy-test-model:cn-v2%c", 'a'+i), tt.env)
			if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v1, Replicas: 3}); err != nil {
				t.Fatalf("first deploy: %v", err)
			}
			w := e.watchPool()
			l := startChatLoad(t, e.addr, 105)
			start := time.Now()
			_, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v2})
			took := time.Since(start)
			as := l.finish()
			rate := loadRate(as)
			if bad := failed(as); len(bad) > 0 {
				t.Errorf("%d of %d requests failed, first: %+v", len(bad), len(as), bad[0])
			}
			byVersion := map[string]int{}
			for _, a := range as {
				byVersion[a.version]++
			}
			t.Logf("%d requests at %.0f/s over %s; answered by %v; gateway degraded answers: %s; %s", len(as), rate, took.Round(100*time.Millisecond), byVersion, e.degraded(), w)
			if rate < 100 {
				t.Logf("note: the load reached only %.0f requests a second on this machine", rate)
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("rollout: %v", err)
				}
				e.event("canary step 3/3 (50%) passed", 0)
				if got := e.serving(); len(got) != 1 || got[0] != 2 {
					t.Errorf("serving revisions %v, want [2]", got)
				}
				if byVersion["v2"] == 0 || byVersion["v1"] == 0 {
					t.Errorf("answers by version %v: both versions should have answered during the canary", byVersion)
				}
				return
			}
			var f *rollout.Failure
			if !errors.As(err, &f) || f.Step != rollout.StepCanary || !f.RolledBack {
				t.Fatalf("rollout = %v, want a failure at step canary, rolled back", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("failure lacks %q:\n%v", w, err)
				}
			}
			if got := e.serving(); len(got) != 1 || got[0] != 1 {
				t.Errorf("serving revisions %v after the abort, want [1]", got)
			}
		})
	}
}

// TestIntegrationDockerCanaryNoData: at one request a second the verdict stays
// inconclusive, the step holds and nothing is rolled back; an operator's abort
// then moves every request back (the time it takes is logged for the bench).
func TestIntegrationDockerCanaryNoData(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	e := newEnvWith(t, nil, canarySettings(rollout.StrategyCanary))
	v1 := fakeModelImage(t, c, "aideploy-test-model:cq-v1", map[string]string{"FAKEMODEL_VERSION": "v1"})
	v2 := fakeModelImage(t, c, "aideploy-test-model:cq-v2", map[string]string{"FAKEMODEL_VERSION": "v2"})
	if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v1}); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	l := startChatLoad(t, e.addr, 1)
	done := make(chan error, 1)
	go func() {
		_, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v2})
		done <- err
	}()
	held := e.event("holds at 5%", 90*time.Second)
	if !strings.Contains(held.Message, "inconclusive") {
		t.Errorf("hold message %q does not say inconclusive", held.Message)
	}
	st, err := e.p.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p := st.Pending(); p == nil || p.Progress == nil || !p.Progress.Paused || p.Progress.Weight != 5 {
		t.Fatalf("journal while held: %+v", st.Pending())
	}
	if got := e.serving(); len(got) != 2 {
		t.Errorf("serving revisions %v while held, want both", got)
	}
	host, _ := os.Hostname()
	sent := time.Now()
	if err := e.p.SendCommand(context.Background(), rollout.Command{Verb: rollout.VerbAbort, By: "test@" + host, At: sent}); err != nil {
		t.Fatal(err)
	}
	back := e.event("all requests back on blue r1", 30*time.Second)
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "aborted by test@") {
		t.Errorf("rollout = %v, want an abort", err)
	}
	as := l.finish()
	if bad := failed(as); len(bad) > 0 {
		t.Errorf("%d of %d requests failed, first: %+v", len(bad), len(as), bad[0])
	}
	t.Logf("abort: all requests back on v1 %s after the command was left (a figure for make bench)", back.Time.Sub(sent).Round(time.Millisecond))
	if got := e.serving(); len(got) != 1 || got[0] != 1 {
		t.Errorf("serving revisions %v after the abort, want [1]", got)
	}
}

// TestIntegrationDockerShadow: clients see only the serving version's answers
// while the new one answers a mirrored half whose figures the gateway reports.
func TestIntegrationDockerShadow(t *testing.T) {
	t.Parallel()
	loadslot.Take(t)
	c := dockerClient(t)
	// The gateway's own chain, cache and limits before the model, as it
	// ships, with limits and API keys turned on (both are off by default):
	// the load is one tenant, the probe of the cache and limits another.
	e := newEnvWith(t, func(c *gateway.Config) {
		d := gateway.Default()
		c.Order, c.Cache, c.Limits = d.Order, d.Cache, d.Limits
		c.Limits.Enabled, c.Limits.Default.Requests = true, 1_000_000
		c.Auth = gateway.Auth{Enabled: true, Keys: []gateway.Key{
			{Name: "load", SHA256: fmt.Sprintf("%x", sha256.Sum256([]byte(loadKey)))},
			{Name: "probe", SHA256: fmt.Sprintf("%x", sha256.Sum256([]byte(probeKey)))}}}
	}, func(c *rollout.Config) {
		canarySettings(rollout.StrategyShadow)(c)
		// This test is about isolation and figures, not the verdict: identical
		// versions on this shared machine differ by scheduling noise alone.
		th := &c.Canary.Analysis.Thresholds
		th.TTFTP95Ratio, th.TPOTP95Ratio, th.TokensPerSecondRatio = 3, 3, 0.3
	})
	// A model's pace (100 ms to the first token, 5 ms a token): at the fake
	// model's default of none, the first token's few milliseconds are this
	// machine's scheduling alone, and identical versions read 9 ms against 27.
	base := map[string]string{"FAKEMODEL_TOKENS": "24", "FAKEMODEL_TOKEN_DELAY": "5ms", "FAKEMODEL_FIRST_TOKEN_DELAY": "100ms"}
	v1 := fakeModelImage(t, c, "aideploy-test-model:sh-v1", merge(base, "FAKEMODEL_VERSION", "v1"))
	v2 := fakeModelImage(t, c, "aideploy-test-model:sh-v2", merge(base, "FAKEMODEL_VERSION", "v2"))
	if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v1, Replicas: 2}); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	l := startChatLoad(t, e.addr, 60)
	done := make(chan error, 1)
	go func() {
		_, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v2})
		done <- err
	}()
	e.event("shadow (50% mirrored): 50% of requests mirrored", 90*time.Second)
	var mirrored rollout.GroupStats
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for ; mirrored.Requests == 0 && time.Now().Before(deadline); <-tick.C {
		gs, err := e.p.GroupStats(context.Background(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			if g.Color == rollout.Green && g.Shadow {
				mirrored = g
			}
		}
	}
	if mirrored.Requests == 0 {
		t.Errorf("the gateway reported no mirrored request to green")
	}
	probeCacheAndLimits(t, e, mirrored.Requests)
	if err := <-done; err != nil {
		t.Fatalf("shadow rollout: %v", err)
	}
	switched := e.lastEvent(rollout.StepSwitch, rollout.EventStart)
	as := l.finish()
	if bad := failed(as); len(bad) > 0 {
		t.Errorf("%d of %d requests failed, first: %+v; gateway degraded answers: %s", len(bad), len(as), bad[0], e.degraded())
	}
	before := 0
	for _, a := range as {
		if a.end.Before(switched) && a.status == 200 { // failures are counted above
			before++
			if a.version != "v1" {
				t.Fatalf("a client got an answer from %s during the shadow", a.version)
			}
		}
	}
	t.Logf("shadow: %d answers before the switch, all from v1; green's mirror: %d requests, %d errors, %d dropped, ttft p95 %s",
		before, mirrored.Requests, mirrored.Errors, mirrored.Dropped, mirrored.TTFTP95)
	if got := e.serving(); len(got) != 1 || got[0] != 2 {
		t.Errorf("serving revisions %v, want [2]", got)
	}
}

// probeCacheAndLimits sends, while the shadow mirrors half the requests, 20
// cacheable prompts twice each as one tenant: every second answer is a cache
// hit stored from the serving version's answer, the cache holds one entry a
// prompt and the tenant's quota fell by one a request that reached the limits
// (a cache hit is answered before them). A mirrored request
// that wrote the cache, replaced an entry or counted against the quota would
// show in one of the three.
func probeCacheAndLimits(t *testing.T, e *env, mirroredBefore int64) {
	t.Helper()
	const prompts = 20
	entries := func() string { return strings.Join(e.metrics("ai_gateway_cache_l1_entries "), "") }
	before := entries()
	client := &http.Client{Timeout: 30 * time.Second}
	type reply struct {
		cache, version string
		remaining      int64
		err            error
	}
	send := func(i int) reply {
		body := fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":"cacheable %d"}],"max_tokens":64,"temperature":0}`, i)
		req, _ := http.NewRequest(http.MethodPost, "http://"+e.addr+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+probeKey)
		resp, err := client.Do(req)
		if err != nil {
			return reply{err: err}
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return reply{err: fmt.Errorf("status %d", resp.StatusCode)}
		}
		r := reply{cache: resp.Header.Get("X-Cache"), version: resp.Header.Get("X-Model-Version"), remaining: -1}
		if h := resp.Header.Get("RateLimit-Remaining"); h != "" { // a cache hit comes before the limits
			_, r.err = fmt.Sscan(h, &r.remaining)
		}
		return r
	}
	// Four prompts at a time: a burst of twenty on top of the load would be
	// turned away by the gateway's overload protection, as it should.
	replies := make([][2]reply, prompts)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range prompts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			replies[i] = [2]reply{send(i), send(i)}
		})
	}
	wg.Wait()
	var hi, lo, counted int64 = -1, -1, 0
	for i, r := range replies {
		for _, x := range r {
			if x.err != nil {
				t.Fatalf("prompt %d: %v", i, x.err)
			}
			if x.remaining < 0 {
				continue
			}
			counted++
			hi = max(hi, x.remaining)
			if lo < 0 || x.remaining < lo {
				lo = x.remaining
			}
		}
		if r[0].version != "v1" || r[1].cache != "HIT" || r[1].version != "v1" {
			t.Errorf("prompt %d: first answer from %s, second %q from %s; want a cache hit of v1's answer", i, r[0].version, r[1].cache, r[1].version)
		}
	}
	if spent := hi - lo + 1; counted != prompts || spent != counted {
		t.Errorf("the tenant's quota fell by %d over the %d requests it counted (RateLimit-Remaining %d..%d), want %d: mirrored requests counted", spent, counted, hi, lo, prompts)
	}
	after := entries()
	gs, err := e.p.GroupStats(context.Background(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var mirrored int64
	for _, g := range gs {
		if g.Color == rollout.Green && g.Shadow {
			mirrored = g.Requests
		}
	}
	t.Logf("cache and limits under the shadow: %d prompts twice, second answers all cache hits of v1; quota %d..%d; L1 entries %q → %q; green's mirror %d → %d requests",
		prompts, hi, lo, before, after, mirroredBefore, mirrored)
	want := fmt.Sprintf("ai_gateway_cache_l1_entries %d", prompts)
	if before != "ai_gateway_cache_l1_entries 0" || after != want {
		t.Errorf("the in-process cache held %q before the probe and %q after, want 0 and %d: one entry a prompt, none from the mirror", before, after, prompts)
	}
}
