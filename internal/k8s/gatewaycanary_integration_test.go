package k8s_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/rollout"
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
func TestIntegrationK8sGatewayCanary(t *testing.T) {
	// A model's pace: at a few milliseconds the scheduling noise of a shared
	// machine would be as large as the answers.
	const firstToken = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// 150 requests a second of 100-200ms each keep up to 30 in flight: 16 clients per pod.
	rig := startGatewayRig(ctx, t, 16, func(rev string, o *fakemodel.Options) {
		o.FirstTokenDelay = firstToken
		if rev == "3" {
			o.FirstTokenDelay = 2 * firstToken
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
	rig.load.stop()
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
