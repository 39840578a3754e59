package k8s_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/testutil/loadslot"
	"github.com/aideploy/aideploy/internal/units"
)

// Canary rollouts through the gateway pods on the real control plane (the
// rig of TestIntegrationK8sGatewayRollout). Every version answers its first
// token after firstToken, v3 after twice that. Under ≥100 requests a second
// through both gateway pods, v2 takes 10%, 30%, 60% of requests, passes the
// analysis at each step and is promoted with no failed request; v3 is
// aborted at its first step by the analysis, which names ttftP95, and every
// client is back on v2, again with no failed request. Then v4 runs as a
// shadow: no client sees it before the switch, none fails.
//
// Then the operator's side, through the command line (cli.Run) as a user
// runs it beside the rollout: during a shadow v5, `status -o json` shows the
// mirror's figures and `rollout abort` ends it, every client still on v4
// and none answered by v5; during a canary v6, `rollout pause` and `resume`
// show in status, and `rollout promote` ends it with v6 serving. No request
// fails in either.
func TestIntegrationK8sGatewayCanary(t *testing.T) {
	loadslot.Take(t)
	// A model's pace: at a few milliseconds the scheduling noise of a shared
	// machine would be as large as the answers.
	const firstToken = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// 150 requests a second of 100-200ms each keep up to 30 in flight: 16 clients per pod.
	rig := startGatewayRig(ctx, t, 16, func(rev string, o *fakemodel.Options) {
		o.FirstTokenDelay = firstToken
		switch rev {
		case "3":
			o.FirstTokenDelay = 2 * firstToken
		case "7": // half of the 4 tokens the load asks for, cut at its length
			o.Tokens, o.FinishReason = 2, "length"
		}
	})
	canary := func() *rollout.Runner {
		r := rig.runner(2 * time.Second)
		r.Config.Strategy = rollout.StrategyCanary
		step := units.Duration(4 * time.Second)
		r.Config.Canary.Steps = []rollout.CanaryStep{{Weight: 10, For: step}, {Weight: 30, For: step}, {Weight: 60, For: step}}
		a := &r.Config.Canary.Analysis
		// Every read judges, from minSamples on: a p95 of fewer requests is
		// their slowest one, and one stall of this shared machine would fail
		// an equal version. 10% of 150/s gives 60 in 4 s.
		a.MinSamples, a.Interval, a.MaxWait = 60, units.Duration(time.Second), units.Duration(20*time.Second)
		return r
	}
	var mu sync.Mutex
	var switchAt time.Time
	var passed []string
	rig.b.mu.Lock()
	rig.b.onEvent = func(e rollout.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case e.Step == rollout.StepSwitch && e.Kind == rollout.EventStart:
			switchAt = e.Time
		case e.Step == rollout.StepCanary && e.Kind == rollout.EventInfo && strings.Contains(e.Message, " passed: "):
			passed = append(passed, e.Message)
		}
	}
	rig.b.mu.Unlock()

	// v1 → v2, a good version, through every step.
	began := time.Now()
	if _, err := canary().Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/embed:2", Replicas: 2}); err != nil {
		t.Fatalf("canary rollout to v2: %v", err)
	}
	waitUntil(ctx, t, "every client gets v2", func() bool { return rig.load.allSaw("v2") })
	ended := time.Now()
	mu.Lock()
	steps, promotedAt := passed, switchAt
	mu.Unlock()
	got := rig.load.between(began, ended)
	secs := ended.Sub(began).Seconds()
	t.Logf("canary v1→v2: %d requests in %.1fs (%.0f/s), %d failed; %s", got.sent, secs, float64(got.sent)/secs, got.failed, strings.Join(steps, "; "))
	if rate := float64(got.sent) / secs; rate < 100 {
		t.Errorf("the load was %.0f requests/s during the canary, want at least 100", rate)
	}
	if got.failed != 0 {
		t.Errorf("%d of %d requests failed during the canary of a good version, want 0; first: %s", got.failed, got.sent, got.firstFailure)
	}
	if len(steps) != 3 {
		t.Errorf("%d canary steps passed (%q), want all 3", len(steps), steps)
	}
	if promotedAt.IsZero() {
		t.Fatal("no promotion (switch step) was reported")
	}
	during := rig.load.versionsBetween(began, promotedAt)
	if during["v1"] == 0 || during["v2"] == 0 {
		t.Errorf("before the promotion the clients got %v, want answers of both v1 and v2 (the canary's share)", during)
	}
	assertConfigMapServes(ctx, t, rig.kc, rig.cfg, rollout.Green)

	// v2 → v3, twice as slow to its first token: aborted at the first step.
	began = time.Now()
	_, err := canary().Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/embed:3", Replicas: 2})
	var f *rollout.Failure
	if !errors.As(err, &f) || !f.RolledBack || f.Active == nil || f.Active.Revision != 2 || f.Step != rollout.StepCanary {
		t.Fatalf("canary rollout to a slow v3: %v, want it rolled back to v2 at the canary step", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "canary step 1/3") || !strings.Contains(msg, "ttftP95") {
		t.Errorf("the abort says %q, want canary step 1/3 and the metric ttftP95", msg)
	}
	t.Logf("canary v2→v3: %v", err)
	waitUntil(ctx, t, "every client gets v2 again", func() bool { return rig.load.allSaw("v2") })
	ended = time.Now()
	got = rig.load.between(began, ended)
	t.Logf("canary v2→v3: %d requests in %.1fs, %d failed; answers %v", got.sent, ended.Sub(began).Seconds(), got.failed, rig.load.versionsBetween(began, ended))
	if got.failed != 0 {
		t.Errorf("%d of %d requests failed during the aborted canary, want 0; first: %s", got.failed, got.sent, got.firstFailure)
	}
	if rig.load.versionsBetween(began, ended)["v3"] == 0 {
		t.Error("v3 answered no request: the abort was not judged on its traffic")
	}
	if v := rig.load.lastVersions(); len(v) != 1 || v[0] != "v2" {
		t.Errorf("after the abort the clients' last answers came from %v, want v2", v)
	}
	assertConfigMapServes(ctx, t, rig.kc, rig.cfg, rollout.Green)

	// v2 → v4 by shadow: a mirrored fifth of the requests, no client answered
	// by v4 before the switch, then all of them.
	shadow := canary()
	shadow.Config.Strategy = rollout.StrategyShadow
	shadow.Config.Shadow = rollout.ShadowConfig{Percent: 20, For: units.Duration(3 * time.Second)}
	began = time.Now()
	if _, err := shadow.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/embed:4", Replicas: 2}); err != nil {
		t.Fatalf("shadow rollout to v4: %v", err)
	}
	waitUntil(ctx, t, "every client gets v4", func() bool { return rig.load.allSaw("v4") })
	ended = time.Now()
	mu.Lock()
	promotedAt = switchAt
	mu.Unlock()
	got = rig.load.between(began, ended)
	t.Logf("shadow v2→v4: %d requests in %.1fs, %d failed; answers before the switch %v", got.sent, ended.Sub(began).Seconds(), got.failed, rig.load.versionsBetween(began, promotedAt))
	if got.failed != 0 {
		t.Errorf("%d of %d requests failed during the shadow, want 0; first: %s", got.failed, got.sent, got.firstFailure)
	}
	if n := rig.load.versionsBetween(began, promotedAt)["v4"]; n != 0 || !promotedAt.After(began) {
		t.Errorf("%d answers came from v4 before the switch at %s, want none: the mirror answers no client", n, promotedAt.Format(time.StampMilli))
	}
	assertConfigMapServes(ctx, t, rig.kc, rig.cfg, rollout.Blue)

	// The operator's side, through the command line as a user runs it from
	// another shell, while the rollout runs here: status reads the figures
	// live from the gateway pods, the verbs reach the rollout through the
	// rollout ConfigMap.
	run := commandLine(ctx, t, rig.cl.Kubeconfig, rig.kc, "cpu", "rollout:\n  target: k8s\n")
	status := func() cliStatus {
		t.Helper()
		out, errOut, code := run("status", "-o", "json")
		var st cliStatus
		if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
			t.Fatalf("status -o json: exit %d, %v\n%s%s", code, err, out, errOut)
		}
		return st
	}
	// waitStep waits for an event of rollout r's step matching the message's start.
	waitStep := func(r *asyncRun, step rollout.Step, prefix string) {
		t.Helper()
		waitUntil(ctx, t, string(step)+" "+prefix, func() bool {
			if r.finished() {
				t.Fatalf("the rollout ended before %s %q: %v", step, prefix, r.err)
			}
			rig.b.mu.Lock()
			defer rig.b.mu.Unlock()
			for _, e := range rig.b.events {
				if !e.Time.Before(r.began) && e.Step == step && e.Kind == rollout.EventInfo && strings.HasPrefix(e.Message, prefix) {
					return true
				}
			}
			return false
		})
	}

	// v4 → v5 by shadow, for longer than the test waits: status shows the
	// mirror's figures, `rollout abort` ends it, no client ever saw v5.
	shadow = canary()
	shadow.Config.Strategy = rollout.StrategyShadow
	shadow.Config.Shadow = rollout.ShadowConfig{Percent: 20, For: units.Duration(time.Minute)}
	r5 := startRun(ctx, t, shadow, "registry.example.com/embed:5")
	waitStep(r5, rollout.StepShadow, "shadow (20% mirrored)")
	var st cliStatus
	waitUntil(ctx, t, "status to show the shadow's figures", func() bool {
		st = status()
		return st.Canary != nil && st.Canary.Strategy == rollout.StrategyShadow && st.Canary.Verdict != nil && st.Canary.Verdict.Candidate.Requests > 0
	})
	c := st.Canary
	t.Logf("status of the shadow: weights %v, window %s, candidate %s (shadow %v) %d requests, serving %s %d; %s",
		c.Weights, c.Window, c.Verdict.Candidate.Color, c.Verdict.Candidate.Shadow, c.Verdict.Candidate.Requests, c.Verdict.Serving.Color, c.Verdict.Serving.Requests, c.Verdict.Reason)
	if c.Verdict.Candidate.Color != rollout.Green || !c.Verdict.Candidate.Shadow || c.Weights["green (mirrored)"] != 20 || c.Weights["blue"] != 100 || c.Verdict.Serving.Requests == 0 {
		t.Errorf("status during the shadow: %+v, verdict %+v, want green's mirrored figures beside blue's live ones at 20%%", c, c.Verdict)
	}
	out, _, code := run("status")
	if code != 0 || !strings.Contains(out, "shadow: blue 100%, green (mirrored) 20%, running") || !strings.Contains(out, "METRIC") {
		t.Errorf("status: exit %d, want the shadow's shares and its metrics\n%s", code, out)
	}
	out, _, code = run("rollout", "abort")
	if code != 0 || !strings.HasPrefix(out, "aborted: ") {
		t.Errorf("rollout abort: exit %d, want 0 and \"aborted: …\"\n%s", code, out)
	}
	err = r5.wait(ctx, t)
	var ae *rollout.AbortError
	if !errors.As(err, &ae) || ae.By == "" || !strings.Contains(err.Error(), "aborted by ") {
		t.Fatalf("shadow rollout to v5 ended with %v, want aborted by the operator", err)
	}
	t.Logf("shadow v4→v5: %v", err)
	waitUntil(ctx, t, "every client gets v4 after the abort", func() bool { return rig.load.allSaw("v4") })
	ended = time.Now()
	got = rig.load.between(r5.began, ended)
	answers := rig.load.versionsBetween(r5.began, ended)
	t.Logf("shadow v4→v5 aborted: %d requests in %.1fs, %d failed; answers %v", got.sent, ended.Sub(r5.began).Seconds(), got.failed, answers)
	if got.failed != 0 {
		t.Errorf("%d of %d requests failed during the aborted shadow, want 0; first: %s", got.failed, got.sent, got.firstFailure)
	}
	if answers["v5"] != 0 {
		t.Errorf("%d clients' requests were answered by the aborted shadow v5, want none", answers["v5"])
	}
	assertConfigMapServes(ctx, t, rig.kc, rig.cfg, rollout.Blue)

	// v4 → v6 by canary with steps longer than the test waits: paused,
	// resumed and promoted from the command line at step 1.
	slow := canary()
	minute := units.Duration(time.Minute)
	slow.Config.Canary.Steps = []rollout.CanaryStep{{Weight: 10, For: minute}, {Weight: 30, For: minute}, {Weight: 60, For: minute}}
	r6 := startRun(ctx, t, slow, "registry.example.com/embed:6")
	waitStep(r6, rollout.StepCanary, "canary step 1/3")
	out, _, code = run("rollout", "pause")
	if code != 0 || !strings.HasPrefix(out, "paused at 10% on ") {
		t.Errorf("rollout pause: exit %d, want 0 and \"paused at 10%% on …\"\n%s", code, out)
	}
	if st = status(); st.Canary == nil || !st.Canary.Paused || st.Canary.Strategy != rollout.StrategyCanary || st.Canary.Step != 1 || st.Canary.Weights["green"] != 10 {
		t.Errorf("status after the pause: %+v, want canary step 1 at 10%% paused", st.Canary)
	}
	out, _, code = run("rollout", "resume")
	if code != 0 || !strings.HasPrefix(out, "resumed at 10% on ") {
		t.Errorf("rollout resume: exit %d, want 0 and \"resumed at 10%% on …\"\n%s", code, out)
	}
	if st = status(); st.Canary == nil || st.Canary.Paused || st.Canary.Step != 1 {
		t.Errorf("status after the resume: %+v, want canary step 1 running", st.Canary)
	}
	out, _, code = run("rollout", "promote")
	if code != 0 || !strings.HasPrefix(out, "promoted: ") {
		t.Errorf("rollout promote: exit %d, want 0 and \"promoted: …\"\n%s", code, out)
	}
	if err := r6.wait(ctx, t); err != nil {
		t.Fatalf("canary rollout to v6, promoted at step 1: %v", err)
	}
	waitUntil(ctx, t, "every client gets v6", func() bool { return rig.load.allSaw("v6") })
	ended = time.Now()
	got = rig.load.between(r6.began, ended)
	t.Logf("canary v4→v6 paused, resumed, promoted: %d requests in %.1fs, %d failed; answers %v", got.sent, ended.Sub(r6.began).Seconds(), got.failed, rig.load.versionsBetween(r6.began, ended))
	if got.failed != 0 {
		t.Errorf("%d of %d requests failed during the canary promoted by hand, want 0; first: %s", got.failed, got.sent, got.firstFailure)
	}
	assertConfigMapServes(ctx, t, rig.kc, rig.cfg, rollout.Green)

	// v6 → v7, which answers half as long (2 tokens of the 4 the load asks
	// for; every version stops at its length here, at max_tokens or before):
	// aborted at the first step by the output length merged over both
	// gateway pods.
	began = time.Now()
	_, err = canary().Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/embed:7", Replicas: 2})
	if !errors.As(err, &f) || !f.RolledBack || f.Step != rollout.StepCanary {
		t.Fatalf("canary rollout to a short v7: %v, want it rolled back at the canary step", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "canary step 1/3") || !strings.Contains(msg, "outputTokensP50") {
		t.Errorf("the abort says %q, want canary step 1/3 and outputTokensP50", msg)
	}
	t.Logf("canary v6→v7: %v", err)
	waitUntil(ctx, t, "every client gets v6 again", func() bool { return rig.load.allSaw("v6") })
	ended = time.Now()
	rig.load.stop()
	got = rig.load.between(began, ended)
	t.Logf("canary v6→v7: %d requests in %.1fs, %d failed; answers %v", got.sent, ended.Sub(began).Seconds(), got.failed, rig.load.versionsBetween(began, ended))
	if got.failed != 0 {
		t.Errorf("%d of %d requests failed during the aborted canary of a short version, want 0; first: %s", got.failed, got.sent, got.firstFailure)
	}
	assertConfigMapServes(ctx, t, rig.kc, rig.cfg, rollout.Green)

	// v6 → v8 at one request a second: the verdict stays inconclusive, the
	// step holds after maxWait and nothing is rolled back; the operator's
	// abort from the command line ends it.
	trickle := startLoad(t, rig.urls, 1, 1)
	quiet := canary()
	quiet.Config.Canary.Analysis.MaxWait = units.Duration(3 * time.Second)
	r8 := startRun(ctx, t, quiet, "registry.example.com/embed:8")
	waitStep(r8, rollout.StepCanary, "canary step 1/3 (10%) holds at 10%")
	held := ""
	rig.b.mu.Lock()
	for _, e := range rig.b.events {
		if !e.Time.Before(r8.began) && strings.Contains(e.Message, "holds at 10%") {
			held = e.Message
		}
	}
	rig.b.mu.Unlock()
	if !strings.Contains(held, "inconclusive") {
		t.Errorf("the hold says %q, want inconclusive", held)
	}
	if st = status(); st.Canary == nil || st.Canary.Held == "" || st.Canary.Step != 1 {
		t.Errorf("status while held: %+v, want canary step 1 held", st.Canary)
	}
	if out, _, code = run("rollout", "abort"); code != 0 || !strings.HasPrefix(out, "aborted: ") {
		t.Errorf("rollout abort: exit %d, want 0 and \"aborted: …\"\n%s", code, out)
	}
	if err := r8.wait(ctx, t); !errors.As(err, &ae) {
		t.Fatalf("the held canary to v8 ended with %v, want aborted by the operator", err)
	}
	trickle.stop()
	tr := trickle.between(r8.began, time.Now())
	t.Logf("canary v6→v8 at 1 req/s: held (%s), then aborted; %d requests, %d failed", held, tr.sent, tr.failed)
	if tr.failed != 0 {
		t.Errorf("%d of %d requests failed during the held canary, want 0; first: %s", tr.failed, tr.sent, tr.firstFailure)
	}
	assertConfigMapServes(ctx, t, rig.kc, rig.cfg, rollout.Green)
}

// cliStatus is what the test reads of `aideploy status -o json`.
type cliStatus struct {
	Canary *struct {
		Strategy string           `json:"strategy"`
		Step     int              `json:"step"`
		Weights  map[string]int   `json:"weights"`
		Paused   bool             `json:"paused"`
		Held     string           `json:"held"`
		Window   time.Duration    `json:"windowNs"`
		Verdict  *rollout.Verdict `json:"verdict"`
		Error    string           `json:"error"`
	} `json:"canary"`
}

// asyncRun is a rollout running in its own goroutine, as it would in the
// shell of the user who started it.
type asyncRun struct {
	began time.Time
	done  chan struct{}
	err   error
}

func startRun(ctx context.Context, t *testing.T, r *rollout.Runner, image string) *asyncRun {
	ctx, cancel := context.WithCancel(ctx)
	a := &asyncRun{began: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		_, a.err = r.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: image, Replicas: 2})
	}()
	// A failed test ends the rollout before the rig goes.
	t.Cleanup(func() { cancel(); <-a.done })
	return a
}

func (a *asyncRun) finished() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// wait returns the rollout's error once it ended.
func (a *asyncRun) wait(ctx context.Context, t *testing.T) error {
	t.Helper()
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		t.Fatalf("waiting for the rollout: %v", ctx.Err())
		return nil
	}
}

// Without the gateway (gateway.enabled: false) traffic moves by the Service
// selector: a canary is refused before anything changes, naming the way out,
// and the serving colour stays alone.
func TestIntegrationK8sCanaryRefusedWithoutGateway(t *testing.T) {
	_, kc := start(t)
	waitGPUsFree(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newBG(t, kc)
	off := false
	b.cfg.Gateway.Enabled = &off
	if _, err := b.rollout(ctx, "registry.example.com/chat:1.0.0", 1); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	r := b.runner(os.Getpid())
	r.Config.Strategy = rollout.StrategyCanary
	b.mu.Lock()
	b.events = nil
	b.mu.Unlock()
	_, err := r.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/chat:2.0.0", Replicas: 1})
	if err == nil || !strings.Contains(err.Error(), "gateway.enabled: false") || !strings.Contains(err.Error(), "--strategy bluegreen") {
		t.Fatalf("canary without the gateway: %v, want the refusal naming gateway.enabled: false and --strategy bluegreen", err)
	}
	b.mu.Lock()
	for _, e := range b.events {
		if e.Step != rollout.StepPlan {
			t.Errorf("the refused canary went past the plan: %s %s %s", e.Step, e.Kind, e.Message)
		}
	}
	b.mu.Unlock()
	if n := b.replicas(ctx, rollout.Green); n != -1 {
		t.Errorf("the refused canary left a green Deployment (%d replicas)", n)
	}
	if got := b.selector(ctx); got != "blue" {
		t.Errorf("after the refusal the Service selects %q, want blue", got)
	}
}
