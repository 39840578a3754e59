package rollout

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/units"
)

// canaryConfig has three one-minute steps read every ten seconds, so a step
// that passes takes seven reads; inconclusive steps hold after two more minutes.
func canaryConfig() Config {
	c := testConfig()
	c.Strategy = StrategyCanary
	c.Canary.Steps = []CanaryStep{{Weight: 5, For: units.Duration(time.Minute)}, {Weight: 25, For: units.Duration(time.Minute)}, {Weight: 50, For: units.Duration(time.Minute)}}
	c.Canary.Analysis.Interval = units.Duration(10 * time.Second)
	c.Canary.Analysis.MaxWait = units.Duration(2 * time.Minute)
	c.Canary.Analysis.MinSamples = 50
	c.Shadow = ShadowConfig{Percent: 20, For: units.Duration(time.Minute)}
	return c
}

func shadowConfig() Config {
	c := canaryConfig()
	c.Strategy = StrategyShadow
	return c
}

func both(serving, canary GroupStats) func(int, time.Duration) []GroupStats {
	return func(int, time.Duration) []GroupStats { return []GroupStats{serving, canary} }
}

func slowTTFT(c Color) GroupStats {
	g := goodStats(c, 200)
	g.TTFTP95 *= 2
	return g
}

func shortAnswers(c Color) GroupStats {
	g := goodStats(c, 200)
	g.OutputTokensP50, g.OutputTokensMean = 60, 65
	g.FinishReasons = map[string]int64{"stop": 100, "length": 100}
	return g
}

func shadowOf(g GroupStats) GroupStats { g.Shadow = true; return g }

// command gives verb as an operator at the nth read of the figures.
func command(at int, verb Verb) func(int, *fakePlatform) {
	return func(n int, f *fakePlatform) {
		if n == at {
			_ = f.SendCommand(context.Background(), Command{Verb: verb, By: "ops@box", At: f.clock.Now()})
		}
	}
}

func commands(cs ...func(int, *fakePlatform)) func(int, *fakePlatform) {
	return func(n int, f *fakePlatform) {
		for _, c := range cs {
			c(n, f)
		}
	}
}

// noSplit hides the fake's Splitter, as a Kubernetes platform without the gateway.
type noSplit struct{ Platform }

// errNoTargets is what a gateway that lost the rollout's targets answers a split.
var errNoTargets = errors.New(`split: group "green" has no target in the pool`)

func TestProgressive(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	ready := seq("Lock", "Check green r2", "Create green r2", "WaitHealthy green r2", "Warmup green r2", "Join green r2 beside blue r1")
	s5, s25, s50 := "SetSplit blue=95 green=5 fallback blue", "SetSplit blue=75 green=25 fallback blue", "SetSplit blue=50 green=50 fallback blue"
	promote := seq("SetSplit blue=0 green=100 fallback blue", "Keep green r2 drop blue r1", "Drain blue r1", "Stop blue r1", "Unlock")
	abort := seq("SetSplit blue=100 green=0 fallback blue", "SetShadow green 0", "Keep blue r1 drop green r2", "Remove green r2", "Unlock")
	lowTraffic := func(n int, w time.Duration) []GroupStats {
		// 1 request per second: the new version gets 5% of it.
		return []GroupStats{goodStats(Blue, int64(w.Seconds()*0.95)), goodStats(Green, int64(w.Seconds()*0.05))}
	}
	tests := []struct {
		name       string
		cfg        func() Config
		groups     func(int, time.Duration) []GroupStats
		onRead     func(int, *fakePlatform)
		plain      bool // hide the Splitter
		seed       bool // blue r1 serves
		expect     []expect
		wantErr    string
		wantStatus Status
		wantActive int
		wantReads  int    // figures read, 0: not checked
		wantEvent  string // a message some event carries
		wantKept   Color  // the colour alone in the pool afterwards
	}{
		{
			name: "good version passes every step and is promoted", cfg: canaryConfig, seed: true,
			expect: seq(ready, s5, s25, s50, promote), wantStatus: StatusSucceeded, wantActive: 2, wantReads: 21, wantKept: Green,
			wantEvent: "canary step 3/3 (50%) passed: pass: 200 request(s) on green",
		},
		{
			// A gateway restarted since the join lost the rollout's targets:
			// the split naming them is refused, and Keep puts the serving
			// colour back alone all the same.
			name: "abort when the gateway refuses the split back", cfg: canaryConfig, seed: true, groups: both(goodStats(Blue, 200), slowTTFT(Green)),
			expect:  seq(ready, s5, expect{call: "SetSplit blue=100 green=0 fallback blue", err: errNoTargets}, "Keep blue r1 drop green r2", "Remove green r2", "Unlock"),
			wantErr: "ttftP95", wantStatus: StatusRolledBack, wantActive: 1, wantKept: Blue,
			wantEvent: "the split to blue r1 (model:v1) was refused (split: group \"green\" has no target in the pool): leaving it alone in the pool instead",
		},
		{
			name: "promotion when the gateway refuses the last split", cfg: canaryConfig, seed: true,
			expect:     seq(ready, s5, s25, s50, expect{call: "SetSplit blue=0 green=100 fallback blue", err: errNoTargets}, "Keep green r2 drop blue r1", "Drain blue r1", "Stop blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 2, wantKept: Green,
		},
		{
			name: "slower first token fails the first step", cfg: canaryConfig, seed: true, groups: both(goodStats(Blue, 200), slowTTFT(Green)),
			expect: seq(ready, s5, abort), wantErr: "canary step 1/3 (5%): analysis failed: ttftP95 400ms vs 200ms, limit ≤ 240ms (1.2× baseline) FAIL",
			wantStatus: StatusRolledBack, wantActive: 1, wantReads: 1, wantKept: Blue,
		},
		{
			name: "shorter answers fail on their length and finish reasons", cfg: canaryConfig, seed: true, groups: both(goodStats(Blue, 200), shortAnswers(Green)),
			expect: seq(ready, s5, abort), wantErr: "outputTokensP50 60.0 tokens vs 120.0 tokens, limit ≥ 96.0 tokens (0.8× baseline) FAIL; finishLengthShare 50.0% vs 10.0%",
			wantStatus: StatusRolledBack, wantActive: 1, wantKept: Blue,
		},
		{
			name: "errors above the serving rate plus a point fail", cfg: canaryConfig, seed: true,
			groups: both(goodStats(Blue, 200), GroupStats{Color: Green, Requests: 200, Errors: 10}),
			expect: seq(ready, s5, abort), wantErr: "errorRate 5.0% vs 0.0%, limit ≤ 1.0% (baseline + 1 point(s)) FAIL",
			wantStatus: StatusRolledBack, wantActive: 1, wantKept: Blue,
		},
		{
			name: "no data holds after maxWait and never rolls back; an operator aborts", cfg: canaryConfig, seed: true,
			groups: lowTraffic, onRead: command(40, VerbAbort),
			expect: seq(ready, s5, abort), wantErr: "aborted by ops@box at canary step 1/3 (5%)", wantStatus: StatusRolledBack, wantActive: 1, wantReads: 40,
			wantEvent: "canary step 1/3 (5%) holds at 5%: still inconclusive: 9 request(s) on green and 171 on blue, 50 needed on each", wantKept: Blue,
		},
		{
			name: "no data, then enough within maxWait, goes on", cfg: canaryConfig, seed: true,
			groups: func(n int, w time.Duration) []GroupStats {
				if n < 10 {
					return lowTraffic(n, w)
				}
				return both(goodStats(Blue, 200), goodStats(Green, 200))(n, w)
			},
			expect: seq(ready, s5, s25, s50, promote), wantStatus: StatusSucceeded, wantActive: 2, wantReads: 24, wantKept: Green,
		},
		{
			name: "held on no data, resumed, then data passes", cfg: canaryConfig, seed: true,
			groups: func(n int, w time.Duration) []GroupStats {
				if n < 25 {
					return lowTraffic(n, w)
				}
				return both(goodStats(Blue, 200), goodStats(Green, 200))(n, w)
			},
			onRead: command(22, VerbResume),
			expect: seq(ready, s5, s25, s50, promote), wantStatus: StatusSucceeded, wantActive: 2, wantKept: Green,
			wantEvent: "resume by ops@box at canary step 1/3 (5%)",
		},
		{
			name: "promote skips the remaining steps", cfg: canaryConfig, seed: true, onRead: command(3, VerbPromote),
			expect: seq(ready, s5, promote), wantStatus: StatusSucceeded, wantActive: 2, wantReads: 3, wantKept: Green,
			wantEvent: "promote by ops@box at canary step 1/3 (5%)",
		},
		{
			name: "abort at the second step sends everything back", cfg: canaryConfig, seed: true, onRead: command(9, VerbAbort),
			expect: seq(ready, s5, s25, abort), wantErr: "aborted by ops@box at canary step 2/3 (25%)",
			wantStatus: StatusRolledBack, wantActive: 1, wantReads: 9, wantKept: Blue,
		},
		{
			name: "pause stops the step's clock, resume starts it again", cfg: canaryConfig, seed: true,
			onRead: commands(command(2, VerbPause), command(5, VerbResume)),
			expect: seq(ready, s5, s25, s50, promote), wantStatus: StatusSucceeded, wantActive: 2, wantReads: 24, wantKept: Green,
			wantEvent: "pause by ops@box at canary step 1/3 (5%)",
		},
		{
			name: "a failure while paused still aborts", cfg: canaryConfig, seed: true, onRead: command(1, VerbPause),
			groups: func(n int, w time.Duration) []GroupStats {
				if n < 4 {
					return both(goodStats(Blue, 200), goodStats(Green, 200))(n, w)
				}
				return both(goodStats(Blue, 200), slowTTFT(Green))(n, w)
			},
			expect: seq(ready, s5, abort), wantErr: "ttftP95", wantStatus: StatusRolledBack, wantActive: 1, wantReads: 4, wantKept: Blue,
		},
		{
			name: "the gateway refuses a split: undone", cfg: canaryConfig, seed: true,
			expect:  seq(ready, s5, expect{call: s25, err: boom}, abort),
			wantErr: "setting the split to 25% on green r2 (model:v2): boom", wantStatus: StatusRolledBack, wantActive: 1, wantKept: Blue,
		},
		{
			name: "shadow: the mirrored answers are judged, then one switch", cfg: shadowConfig, seed: true,
			groups: both(goodStats(Blue, 200), shadowOf(goodStats(Green, 60))),
			expect: seq(ready, "SetShadow green 20", "SetShadow green 0", "SetSplit blue=0 green=100 fallback blue", "Keep green r2 drop blue r1",
				healthy(10), "Drain blue r1", "Stop blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 2, wantReads: 7, wantKept: Green, wantEvent: "shadow passed: pass: 60 request(s) on green",
		},
		{
			name: "shadow: a slow mirror fails, its live figures do not count", cfg: shadowConfig, seed: true,
			groups: func(int, time.Duration) []GroupStats {
				return []GroupStats{goodStats(Blue, 200), goodStats(Green, 200), shadowOf(slowTTFT(Green))}
			},
			expect:  seq(ready, "SetShadow green 20", abort),
			wantErr: "shadow (20% mirrored): analysis failed: ttftP95 400ms", wantStatus: StatusRolledBack, wantActive: 1, wantKept: Blue,
		},
		{
			name: "shadow: too few mirrored answers is inconclusive, not a failure", cfg: shadowConfig, seed: true,
			groups: both(goodStats(Blue, 200), shadowOf(GroupStats{Color: Green, Requests: 3, Errors: 3})), onRead: command(30, VerbPromote),
			expect: seq(ready, "SetShadow green 20", "SetShadow green 0", "SetSplit blue=0 green=100 fallback blue", "Keep green r2 drop blue r1",
				healthy(10), "Drain blue r1", "Stop blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 2, wantKept: Green, wantEvent: "shadow (20% mirrored) holds at 20%",
		},
		{
			name: "a target that cannot split refuses canary", cfg: canaryConfig, seed: true, plain: true,
			wantErr: "use --strategy bluegreen", wantActive: 1,
		},
		{
			name: "first deploy switches at once", cfg: canaryConfig,
			expect:     seq("Lock", "Check blue r1", "Create blue r1", "WaitHealthy blue r1", "Warmup blue r1", "Switch blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 1, wantKept: Blue,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.expect...)
			if tt.seed {
				f.deployed(blue1)
			}
			f.split.groups, f.split.onRead = tt.groups, tt.onRead
			r, events := newRunner(f, 1)
			r.Config = tt.cfg()
			if tt.plain {
				r.Platform = noSplit{f}
			}
			req := Request{Op: OpRollout, Image: "model:v2"}
			if !tt.seed {
				req = Request{Op: OpRollout, Image: "model:v1"}
			}
			_, err := r.Run(context.Background(), req)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Run error = %v\nwant one containing %q", err, tt.wantErr)
			}
			st, _ := f.Current(context.Background())
			if tt.wantStatus != "" && st.Journals[0].Status != tt.wantStatus {
				t.Errorf("journal status = %s, want %s (reason %q)", st.Journals[0].Status, tt.wantStatus, st.Journals[0].Reason)
			}
			if a := st.Active(); (a == nil && tt.wantActive != 0) || (a != nil && a.Revision != tt.wantActive) {
				t.Errorf("active = %v, want revision %d", a, tt.wantActive)
			}
			if tt.wantReads > 0 && f.split.reads != tt.wantReads {
				t.Errorf("figures read %d times, want %d", f.split.reads, tt.wantReads)
			}
			if f.split.kept != tt.wantKept {
				t.Errorf("pool left with %q alone, want %q (split %v)", f.split.kept, tt.wantKept, f.split.percent)
			}
			if tt.wantEvent != "" && !hasEvent(*events, tt.wantEvent) {
				t.Errorf("no event says %q; events:\n%s", tt.wantEvent, eventLines(*events))
			}
			if f.lock != nil {
				t.Errorf("lock still held by %v", f.lock)
			}
		})
	}
}

func hasEvent(evs []Event, msg string) bool {
	for _, e := range evs {
		if strings.Contains(e.Message, msg) {
			return true
		}
	}
	return false
}

func eventLines(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("  " + string(e.Step) + " " + string(e.Kind) + " " + e.Message + "\n")
	}
	return b.String()
}

// TestCanaryTiming checks on the fake clock that a step lasts its time, that
// a pause adds its length, and that a hold comes only after maxWait.
func TestCanaryTiming(t *testing.T) {
	t.Parallel()
	stepDone := func(onRead func(int, *fakePlatform), groups func(int, time.Duration) []GroupStats, msg string) time.Duration {
		f := newFake(t).deployed(blue1)
		f.strict = false
		f.split.onRead, f.split.groups = onRead, groups
		r, events := newRunner(f, 1)
		r.Config = canaryConfig()
		_, _ = r.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2"})
		var start time.Time
		for _, e := range *events {
			if strings.HasPrefix(e.Message, "canary step 1/3 (5%): 5% of requests") {
				start = e.Time
			}
			if strings.Contains(e.Message, msg) && !start.IsZero() {
				return e.Time.Sub(start)
			}
		}
		t.Fatalf("no event %q:\n%s", msg, eventLines(*events))
		return 0
	}
	if d := stepDone(nil, nil, "canary step 1/3 (5%) passed"); d != time.Minute {
		t.Errorf("a step passed after %s, want 1m", d)
	}
	if d := stepDone(commands(command(2, VerbPause), command(5, VerbResume)), nil, "canary step 1/3 (5%) passed"); d != time.Minute+30*time.Second {
		t.Errorf("a step paused for 30s passed after %s, want 1m30s", d)
	}
	if d := stepDone(command(2, VerbAbort), nil, "aborted by ops@box"); d != 10*time.Second+commandPoll {
		t.Errorf("an abort given at 10s acted after %s, want 10.5s: commands are read between the figures' reads", d)
	}
	low := func(int, time.Duration) []GroupStats { return []GroupStats{goodStats(Blue, 10), goodStats(Green, 1)} }
	if d := stepDone(command(30, VerbAbort), low, "holds at 5%"); d != 3*time.Minute {
		t.Errorf("a step without data held after %s, want 3m (1m + maxWait 2m)", d)
	}
}

// TestProgressiveResumesAfterKill kills the process at every call of a canary
// and a shadow rollout, then runs again: the same request resumes at the step
// it died in (never an earlier one), another undoes the canary, a rollback too.
func TestProgressiveResumesAfterKill(t *testing.T) {
	t.Parallel()
	type kill struct {
		at    string
		never []string // calls the resumed run must not make again
	}
	canaryKills := []kill{
		{"Join", nil},
		{"SetSplit blue=95", nil},
		{"GroupStats", nil},
		{"SetSplit blue=75", []string{"SetSplit blue=95"}},
		{"SetSplit blue=50", []string{"SetSplit blue=95", "SetSplit blue=75"}},
		{"SetSplit blue=0", []string{"Join", "SetSplit blue=95", "SetSplit blue=75", "SetSplit blue=50"}},
		{"Keep green", []string{"Join", "SetSplit blue=50"}},
		{"Drain", []string{"Join", "SetSplit", "Keep"}},
		{"Stop", []string{"Join", "SetSplit", "Keep"}},
	}
	shadowKills := []kill{{"Join", nil}, {"SetShadow green 20", nil}, {"GroupStats", nil},
		{"SetShadow green 0", []string{"Join", "SetShadow green 20"}}, {"Keep green", []string{"Join"}}, {"Stats", []string{"Join", "Keep"}}}
	reruns := []struct {
		name       string
		req        Request
		wantActive int
		running    []int
	}{
		{"same image resumes", Request{Op: OpRollout, Image: "model:v2"}, 2, []int{2}},
		{"other image", Request{Op: OpRollout, Image: "model:v3"}, 3, []int{3}},
		{"rollback", Request{Op: OpRollback}, 1, []int{1}},
	}
	for _, strategy := range []string{StrategyCanary, StrategyShadow} {
		kills := canaryKills
		if strategy == StrategyShadow {
			kills = shadowKills
		}
		for _, k := range kills {
			for _, rr := range reruns {
				t.Run(strategy+"/"+k.at+"/"+rr.name, func(t *testing.T) {
					t.Parallel()
					f := newFake(t).deployed(blue1)
					f.strict, f.killAt = false, k.at
					if strategy == StrategyShadow {
						f.split.groups = func(int, time.Duration) []GroupStats {
							return []GroupStats{goodStats(Blue, 200), goodStats(Green, 200), shadowOf(goodStats(Blue, 100)), shadowOf(goodStats(Green, 100))}
						}
					}
					r, _ := newRunner(f, 1)
					r.Config = canaryConfig()
					r.Config.Strategy = strategy
					func() {
						defer func() {
							if p := recover(); p != errKilled {
								t.Fatalf("first run did not die at %s: %v", k.at, p)
							}
						}()
						_, _ = r.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2"})
					}()
					f.dead, f.killAt = false, ""
					before := len(f.calls)
					r2, _ := newRunner(f, 2)
					r2.Config = r.Config
					res, err := r2.Run(context.Background(), rr.req)
					if err != nil {
						t.Fatalf("second run: %v", err)
					}
					st, _ := f.Current(context.Background())
					if a := st.Active(); a == nil || a.Revision != rr.wantActive {
						t.Errorf("active = %v, want revision %d", a, rr.wantActive)
					}
					if got := f.running(); !reflect.DeepEqual(got, rr.running) {
						t.Errorf("running revisions = %v, want %v\ncalls: %v", got, rr.running, f.calls)
					}
					if p := st.Pending(); p != nil {
						t.Errorf("journal %s still pending at %s", p.ID, p.Step)
					}
					if a := st.Active(); a != nil && (f.split.joined || (f.split.kept != "" && f.split.kept != a.Color)) {
						t.Errorf("pool left split %v (kept %q), want %s alone\ncalls: %v", f.split.percent, f.split.kept, a.Color, f.calls)
					}
					if rr.name == "same image resumes" {
						if !res.Resumed {
							t.Errorf("second run did not resume")
						}
						for _, c := range f.calls[before:] {
							for _, n := range k.never {
								if strings.HasPrefix(c, n) {
									t.Errorf("the resumed run called %q again (killed at %s)\ncalls: %v", c, k.at, f.calls[before:])
								}
							}
						}
					}
				})
			}
		}
	}
}

// TestHoldSurvivesKill: a canary held on no data is killed; the resumed run
// keeps holding (it neither promotes nor rolls back) until an operator resumes it.
func TestHoldSurvivesKill(t *testing.T) {
	t.Parallel()
	f := newFake(t).deployed(blue1)
	f.strict = false
	f.split.groups = func(n int, w time.Duration) []GroupStats {
		if n < 30 {
			return []GroupStats{goodStats(Blue, 10), goodStats(Green, 1)}
		}
		return []GroupStats{goodStats(Blue, 200), goodStats(Green, 200)}
	}
	f.split.onRead = func(n int, f *fakePlatform) {
		if n == 25 { // held since read 19 (1m + maxWait 2m)
			f.mu.Lock()
			f.killAt = "GroupStats"
			f.mu.Unlock()
		}
		if n == 29 {
			_ = f.SendCommand(context.Background(), Command{Verb: VerbResume, By: "ops@box", At: f.clock.Now()})
		}
	}
	r, _ := newRunner(f, 1)
	r.Config = canaryConfig()
	func() {
		defer func() {
			if p := recover(); p != errKilled {
				t.Fatalf("first run did not die: %v", p)
			}
		}()
		_, _ = r.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2"})
	}()
	f.dead, f.killAt = false, ""
	st, _ := f.Current(context.Background())
	if p := st.Pending(); p == nil || p.Progress == nil || !p.Progress.Paused || p.Progress.Held == "" || p.Progress.Weight != 5 {
		t.Fatalf("journal after the kill: %+v", st.Pending())
	}
	r2, events := newRunner(f, 2)
	r2.Config = r.Config
	before := len(f.calls)
	if _, err := r2.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2"}); err != nil {
		t.Fatal(err)
	}
	if !hasEvent(*events, "canary step 1/3 (5%) stays paused") || !hasEvent(*events, "resume by ops@box") {
		t.Errorf("events:\n%s", eventLines(*events))
	}
	for _, c := range f.calls[before:] {
		if strings.HasPrefix(c, "Remove green") || strings.HasPrefix(c, "SetSplit blue=100") {
			t.Errorf("the resumed run rolled back (%s) on no data", c)
		}
	}
	if st, _ := f.Current(context.Background()); st.Journals[0].Status != StatusSucceeded || f.split.kept != Green {
		t.Errorf("status %s, kept %q; want succeeded on green", st.Journals[0].Status, f.split.kept)
	}
}
