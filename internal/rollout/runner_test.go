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

var (
	blue1  = Deployment{Color: Blue, Revision: 1, Image: "model:v1", Replicas: 2}
	green2 = Deployment{Color: Green, Revision: 2, Image: "model:v2", Replicas: 2}
)

func testConfig() Config {
	c := Default()
	c.Watch.Window = units.Duration(3 * time.Second) // ten polls
	c.Watch.MinRequests = 10
	c.Watch.MaxP99 = units.Duration(2 * time.Second)
	c.Watch.MaxTTFT = units.Duration(time.Second)
	return c
}

func newRunner(f *fakePlatform, pid int) (*Runner, *[]Event) {
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f.clock = clock
	var events []Event
	return &Runner{
		Platform: f,
		Config:   testConfig(),
		Holder:   Holder{Owner: "ana@box", Host: "box", PID: pid},
		Observe:  func(e Event) { events = append(events, e) },
		Now:      clock.Now,
		Sleep:    clock.Sleep,
	}, &events
}

func healthy(n int) []expect {
	out := make([]expect, n)
	for i := range out {
		out[i] = expect{call: "Stats", stats: Stats{Requests: int64(100 * (i + 1)), P99: 300 * time.Millisecond}}
	}
	return out
}

func seq(parts ...any) []expect {
	var out []expect
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			out = append(out, expect{call: v})
		case expect:
			out = append(out, v)
		case []expect:
			out = append(out, v...)
		}
	}
	return out
}

func TestRun(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	green2v2 := Request{Op: OpRollout, Image: "model:v2"}
	upTo := func(last any) []expect {
		return seq("Lock", "Check green r2", "Create green r2", "WaitHealthy green r2", "Warmup green r2", last)
	}
	tests := []struct {
		name       string
		seed       func(*fakePlatform)
		req        Request
		expect     []expect
		wantErr    string // substring; "" means success
		wantStatus Status
		wantActive int // revision serving afterwards; 0 means none
		running    []int
	}{
		{
			name:       "happy path",
			seed:       func(f *fakePlatform) { f.deployed(blue1) },
			req:        green2v2,
			expect:     seq(upTo("Switch green r2"), healthy(10), "Drain blue r1", "Stop blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 2, running: []int{2},
		},
		{
			name: "prunes revisions beyond keepRevisions",
			seed: func(f *fakePlatform) {
				f.deployed(green2, blue1)
			},
			req: Request{Op: OpRollout, Image: "model:v3"},
			expect: seq("Lock", "Check blue r3", "Create blue r3", "WaitHealthy blue r3", "Warmup blue r3", "Switch blue r3",
				healthy(10), "Drain green r2", "Stop green r2", "Remove blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 3, running: []int{3},
		},
		{
			name:       "first deploy",
			req:        Request{Op: OpRollout, Image: "model:v1", Replicas: 2},
			expect:     seq("Lock", "Check blue r1", "Create blue r1", "WaitHealthy blue r1", "Warmup blue r1", "Switch blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 1, running: []int{1},
		},
		{
			name:    "first deploy never healthy",
			req:     Request{Op: OpRollout, Image: "model:v1"},
			expect:  seq("Lock", "Check blue r1", "Create blue r1", expect{call: "WaitHealthy blue r1", err: boom}, "Remove blue r1", "Unlock"),
			wantErr: "failed at step healthy: boom", wantStatus: StatusRolledBack,
		},
		{
			name:       "same image and config is a no-op",
			seed:       func(f *fakePlatform) { f.deployed(blue1) },
			req:        Request{Op: OpRollout, Image: "model:v1"},
			wantActive: 1, running: []int{1},
		},
		{
			name:       "dry run changes nothing",
			seed:       func(f *fakePlatform) { f.deployed(blue1) },
			req:        Request{Op: OpRollout, Image: "model:v2", DryRun: true},
			wantActive: 1, running: []int{1},
		},
		{
			name:    "nothing deployed and no image",
			req:     Request{Op: OpRollout},
			wantErr: "--image",
		},
		{
			name:    "check refuses",
			seed:    func(f *fakePlatform) { f.deployed(blue1) },
			req:     green2v2,
			expect:  seq("Lock", expect{call: "Check green r2", err: boom}, "Unlock"),
			wantErr: "failed at step check", wantStatus: StatusRolledBack, wantActive: 1, running: []int{1},
		},
		{
			name:    "create fails",
			seed:    func(f *fakePlatform) { f.deployed(blue1) },
			req:     green2v2,
			expect:  seq("Lock", "Check green r2", expect{call: "Create green r2", err: boom}, "Remove green r2", "Unlock"),
			wantErr: "failed at step create", wantStatus: StatusRolledBack, wantActive: 1, running: []int{1},
		},
		{
			name:    "never healthy",
			seed:    func(f *fakePlatform) { f.deployed(blue1) },
			req:     green2v2,
			expect:  seq("Lock", "Check green r2", "Create green r2", expect{call: "WaitHealthy green r2", err: boom}, "Remove green r2", "Unlock"),
			wantErr: "blue r1 (model:v1) still serves all traffic", wantStatus: StatusRolledBack, wantActive: 1, running: []int{1},
		},
		{
			name:    "warm-up fails",
			seed:    func(f *fakePlatform) { f.deployed(blue1) },
			req:     green2v2,
			expect:  seq("Lock", "Check green r2", "Create green r2", "WaitHealthy green r2", expect{call: "Warmup green r2", err: boom}, "Remove green r2", "Unlock"),
			wantErr: "failed at step warmup", wantStatus: StatusRolledBack, wantActive: 1, running: []int{1},
		},
		{
			name:    "switch refused by the gateway",
			seed:    func(f *fakePlatform) { f.deployed(blue1) },
			req:     green2v2,
			expect:  seq(upTo(expect{call: "Switch green r2", err: boom}), "Switch blue r1", "Remove green r2", "Unlock"),
			wantErr: "failed at step switch", wantStatus: StatusRolledBack, wantActive: 1, running: []int{1},
		},
		{
			name: "error rate in the watch window switches back",
			seed: func(f *fakePlatform) { f.deployed(blue1) },
			req:  green2v2,
			expect: seq(upTo("Switch green r2"), healthy(3),
				expect{call: "Stats", stats: Stats{Requests: 400, Errors: 40}}, "Switch blue r1", "Remove green r2", "Unlock"),
			wantErr: "error rate 10.0% (40 of 400 requests", wantStatus: StatusRolledBack, wantActive: 1, running: []int{1},
		},
		{
			name: "p99 in the watch window switches back",
			seed: func(f *fakePlatform) { f.deployed(blue1) },
			req:  green2v2,
			expect: seq(upTo("Switch green r2"),
				expect{call: "Stats", stats: Stats{Requests: 50, P99: 3 * time.Second}}, "Switch blue r1", "Remove green r2", "Unlock"),
			wantErr: "p99 latency 3s", wantStatus: StatusRolledBack, wantActive: 1, running: []int{1},
		},
		{
			name: "time to first token in the watch window switches back",
			seed: func(f *fakePlatform) { f.deployed(blue1) },
			req:  green2v2,
			expect: seq(upTo("Switch green r2"), healthy(2),
				expect{call: "Stats", stats: Stats{Requests: 300, P99: 1900 * time.Millisecond, TTFTP95: 1500 * time.Millisecond}}, "Switch blue r1", "Remove green r2", "Unlock"),
			wantErr: "time to first token p95 1.5s (over 900ms) is above watch.maxTTFT 1s", wantStatus: StatusRolledBack, wantActive: 1, running: []int{1},
		},
		{
			name: "time to first token at the limit passes",
			seed: func(f *fakePlatform) { f.deployed(blue1) },
			req:  green2v2,
			expect: seq(upTo("Switch green r2"), expect{call: "Stats", stats: Stats{Requests: 100, TTFTP95: time.Second}}, healthy(9),
				"Drain blue r1", "Stop blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 2, running: []int{2},
		},
		{
			name: "every target ejected switches back",
			seed: func(f *fakePlatform) { f.deployed(blue1) },
			req:  green2v2,
			expect: seq(upTo("Switch green r2"), healthy(2),
				expect{call: "Stats", stats: Stats{Requests: 300, Errors: 2, Targets: 2, Unhealthy: 2}}, "Switch blue r1", "Remove green r2", "Unlock"),
			wantErr: "no target of the new colour takes traffic (2 of 2", wantStatus: StatusRolledBack, wantActive: 1, running: []int{1},
		},
		{
			name: "errors that got the targets ejected are named by their rate",
			seed: func(f *fakePlatform) { f.deployed(blue1) },
			req:  green2v2,
			expect: seq(upTo("Switch green r2"),
				expect{call: "Stats", stats: Stats{Requests: 40, Errors: 40, Targets: 2, Unhealthy: 2}}, "Switch blue r1", "Remove green r2", "Unlock"),
			wantErr: "error rate 100.0% (40 of 40 requests", wantStatus: StatusRolledBack, wantActive: 1, running: []int{1},
		},
		{
			name: "few requests do not make an error rate",
			seed: func(f *fakePlatform) { f.deployed(blue1) },
			req:  green2v2,
			expect: seq(upTo("Switch green r2"), expect{call: "Stats", stats: Stats{Requests: 2, Errors: 2}}, healthy(9),
				"Drain blue r1", "Stop blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 2, running: []int{2},
		},
		{
			name: "switching back fails too: keep the new colour",
			seed: func(f *fakePlatform) { f.deployed(blue1) },
			req:  green2v2,
			expect: seq(upTo("Switch green r2"), expect{call: "Stats", stats: Stats{Requests: 100, Errors: 100}},
				expect{call: "Switch blue r1", err: boom}, "Unlock"),
			wantErr: "undoing it failed too", wantStatus: StatusFailed, wantActive: 2, running: []int{1, 2},
		},
		{
			name:       "unfinished drain is not a failure",
			seed:       func(f *fakePlatform) { f.deployed(blue1) },
			req:        green2v2,
			expect:     seq(upTo("Switch green r2"), healthy(10), expect{call: "Drain blue r1", err: boom}, "Stop blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 2, running: []int{2},
		},
		{
			name:    "retire fails after the switch: traffic stays new",
			seed:    func(f *fakePlatform) { f.deployed(blue1) },
			req:     green2v2,
			expect:  seq(upTo("Switch green r2"), healthy(10), "Drain blue r1", expect{call: "Stop blue r1", err: boom}, "Unlock"),
			wantErr: "traffic stays on green r2", wantStatus: StatusFailed, wantActive: 2, running: []int{1, 2},
		},
		{
			name:    "locked by another run",
			seed:    func(f *fakePlatform) { f.deployed(blue1) },
			req:     green2v2,
			expect:  seq(expect{call: "Lock", err: &LockedError{Service: "svc", Holder: Holder{Owner: "bo@host2", PID: 77, Op: OpRollout, Image: "model:v9"}}}),
			wantErr: "locked by bo@host2 (pid 77, rollout of model:v9", wantActive: 1, running: []int{1},
		},
		{
			name: "rollback to the kept revision",
			seed: func(f *fakePlatform) { f.deployed(green2, blue1) },
			req:  Request{Op: OpRollback},
			expect: seq("Lock", "Check blue r1", "Create blue r1", "WaitHealthy blue r1", "Warmup blue r1", "Switch blue r1",
				"Drain green r2", "Stop green r2", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 1, running: []int{1},
		},
		{
			name:    "rollback with one revision",
			seed:    func(f *fakePlatform) { f.deployed(blue1) },
			req:     Request{Op: OpRollback},
			wantErr: "nothing to roll back to", wantActive: 1, running: []int{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.expect...)
			if tt.seed != nil {
				tt.seed(f)
			}
			r, _ := newRunner(f, 1)
			res, err := r.Run(context.Background(), tt.req)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Run error = %v, want one containing %q", err, tt.wantErr)
			}
			st, _ := f.Current(context.Background())
			if tt.wantStatus != "" && st.Journals[0].Status != tt.wantStatus {
				t.Errorf("journal status = %s, want %s (reason %q)", st.Journals[0].Status, tt.wantStatus, st.Journals[0].Reason)
			}
			active := 0
			if a := st.Active(); a != nil {
				active = a.Revision
			}
			if active != tt.wantActive {
				t.Errorf("active revision = %d, want %d", active, tt.wantActive)
			}
			if got := f.running(); !reflect.DeepEqual(got, tt.running) {
				t.Errorf("running revisions = %v, want %v", got, tt.running)
			}
			if f.lock != nil {
				t.Errorf("lock still held by %v", f.lock)
			}
			if tt.wantErr == "" && !res.NoOp && !tt.req.DryRun && res.Journal.Status != StatusSucceeded {
				t.Errorf("result status = %s", res.Journal.Status)
			}
		})
	}
}

func TestRunRecordsEveryStepBeforeActing(t *testing.T) {
	t.Parallel()
	f := newFake(t).deployed(blue1)
	f.strict = false
	r, events := newRunner(f, 1)
	res, err := r.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"check/running", "create/running", "healthy/running", "warmup/running", "switch/running",
		"switch/running", "watch/running", "drain/running", "retire/running", "retire/succeeded"}
	if !reflect.DeepEqual(f.steps, want) {
		t.Errorf("recorded steps\n got %v\nwant %v", f.steps, want)
	}
	if res.Warmup.TimeToFirstToken != 120*time.Millisecond {
		t.Errorf("warm-up TTFT = %s", res.Warmup.TimeToFirstToken)
	}
	var done []Step
	for _, e := range *events {
		if e.Kind == EventDone {
			done = append(done, e.Step)
		}
	}
	wantDone := []Step{StepLock, StepCheck, StepCreate, StepHealthy, StepWarmup, StepSwitch, StepWatch, StepDrain, StepRetire}
	if !reflect.DeepEqual(done, wantDone) {
		t.Errorf("done events %v, want %v", done, wantDone)
	}
}

// TestRunResumesAfterKill kills the process in the middle of every call a
// rollout makes, then runs again as another process and checks it converges:
// one revision running, the lock free, the journal finished.
func TestRunResumesAfterKill(t *testing.T) {
	t.Parallel()
	kills := []string{"Check", "Create", "WaitHealthy", "Warmup", "Switch", "Stats", "Drain", "Stop"}
	reruns := []struct {
		name       string
		req        Request
		wantActive int
		running    []int
	}{
		{"same image resumes", Request{Op: OpRollout, Image: "model:v2"}, 2, []int{2}},
		{"no image resumes", Request{Op: OpRollout}, 2, []int{2}},
		{"other image", Request{Op: OpRollout, Image: "model:v3"}, 3, []int{3}},
		{"rollback", Request{Op: OpRollback}, 1, []int{1}},
	}
	for _, kill := range kills {
		for _, rr := range reruns {
			t.Run(kill+"/"+rr.name, func(t *testing.T) {
				t.Parallel()
				f := newFake(t).deployed(blue1)
				f.strict, f.killAt = false, kill
				r, _ := newRunner(f, 1)
				func() {
					defer func() {
						if p := recover(); p != errKilled {
							t.Fatalf("first run did not die at %s: %v", kill, p)
						}
					}()
					_, _ = r.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2"})
				}()
				f.dead, f.killAt = false, ""
				r2, _ := newRunner(f, 2)
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
				if f.lock != nil {
					t.Errorf("lock still held by %v", f.lock)
				}
				if rr.name == "same image resumes" && !res.Resumed {
					t.Errorf("second run did not resume")
				}
			})
		}
	}
}
