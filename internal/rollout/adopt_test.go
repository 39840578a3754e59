package rollout

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/units"
)

// slotFake is a platform like Kubernetes: one slot per colour, and it reads
// what serves from the cluster (LiveKnown) rather than from the journal.
type slotFake struct {
	*fakePlatform
	live  *Deployment // what the active Service selects, as the cluster shows it
	floor int
}

func (s *slotFake) Current(ctx context.Context) (State, error) {
	st, err := s.fakePlatform.Current(ctx)
	st.LiveKnown, st.Live, st.Floor = true, s.live, s.floor
	return st, err
}

func (s *slotFake) Restore(_ context.Context, in Instance) error {
	e := s.call("Restore " + dep(in.Deployment))
	if e.err == nil {
		s.mu.Lock()
		for rev, have := range s.instances {
			if have.Color == in.Color {
				delete(s.instances, rev)
			}
		}
		s.instances[in.Revision] = &in
		s.mu.Unlock()
	}
	return e.err
}

func (s *slotFake) with(ins ...Instance) *slotFake {
	for _, in := range ins {
		s.instances[in.Revision] = &in
	}
	return s
}

func inst(d Deployment, ready int) Instance {
	return Instance{Deployment: d, Running: d.Replicas, Total: d.Replicas, Ready: ready}
}

// TestRolloutNeverDeletesWhatServes runs a rollout whose new colour never gets
// healthy against every state a cluster can be in, and checks that the run
// touches only its own colour: what served still exists, with its replicas,
// and a slot the run reused holds what it held before.
func TestRolloutNeverDeletesWhatServes(t *testing.T) {
	t.Parallel()
	boom := errors.New("never ready")
	applied := Deployment{Color: Blue, Revision: 0, Image: "model:v1", Replicas: 2}  // made by `aideploy apply`
	hand := Deployment{Color: Blue, Revision: 1, Image: "model:hotfix", Replicas: 3} // blue r1 after kubectl set image / scale
	greenOld := Deployment{Color: Green, Revision: 2, Image: "model:v2", Replicas: 2}
	v3 := Request{Op: OpRollout, Image: "model:v3", Replicas: 2}
	failAt := func(d string) []expect {
		return seq("Lock", "Check "+d, "Create "+d, expect{call: "WaitHealthy " + d, err: boom})
	}
	tests := []struct {
		name     string
		seed     func(*slotFake)
		req      Request
		expect   []expect
		wantFrom string // the From of the plan; "" means a first deploy
		wantKept []int  // revisions that must still exist afterwards, with their replicas
	}{
		{
			name:   "nothing",
			seed:   func(*slotFake) {},
			req:    v3,
			expect: seq(failAt("blue r1"), "Remove blue r1", "Unlock"),
		},
		{
			name:     "apply only",
			seed:     func(s *slotFake) { s.with(inst(applied, 2)); s.live = &applied },
			req:      v3,
			expect:   seq(failAt("green r1"), "Remove green r1", "Unlock"),
			wantFrom: "blue r0 (model:v1)", wantKept: []int{0},
		},
		{
			name:     "one colour serving",
			seed:     func(s *slotFake) { s.deployed(blue1); s.live = &blue1 },
			req:      v3,
			expect:   seq(failAt("green r2"), "Remove green r2", "Unlock"),
			wantFrom: "blue r1 (model:v1)", wantKept: []int{1},
		},
		{
			name: "both colours",
			seed: func(s *slotFake) {
				s.deployed(blue1)
				s.with(inst(greenOld, 2))
				s.live = &blue1
			},
			req:      v3,
			expect:   seq(failAt("green r3"), "Restore green r2", "Unlock"),
			wantFrom: "blue r1 (model:v1)", wantKept: []int{1, 2},
		},
		{
			name: "half-finished rollout",
			seed: func(s *slotFake) {
				s.deployed(blue1)
				s.with(inst(greenOld, 0))
				b := blue1
				j := Journal{ID: "half", Op: OpRollout, Step: StepHealthy, Status: StatusRunning, From: &b, Active: &b, To: greenOld}
				s.journals[j.ID], s.order = j, append(s.order, j.ID)
				s.live = &blue1
			},
			req: v3,
			// The interrupted run to green r2 is undone first (its slot was empty), then v3 fails on its own.
			expect:   seq("Lock", "Remove green r2", failAt("green r3")[1:], "Remove green r3", "Unlock"),
			wantFrom: "blue r1 (model:v1)", wantKept: []int{1},
		},
		{
			name:     "a Deployment edited by hand",
			seed:     func(s *slotFake) { s.deployed(blue1); s.with(inst(hand, 3)); s.live = &hand },
			req:      v3,
			expect:   seq(failAt("green r2"), "Remove green r2", "Unlock"),
			wantFrom: "blue r1 (model:hotfix)", wantKept: []int{1},
		},
		{
			name: "the Service selects a colour with no Deployment",
			seed: func(s *slotFake) {
				s.deployed(blue1)
				delete(s.instances, 1)
				s.live = nil
			},
			req:    v3,
			expect: seq(failAt("blue r2"), "Remove blue r2", "Unlock"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &slotFake{fakePlatform: newFake(t, tt.expect...)}
			tt.seed(s)
			before := map[int]Instance{}
			for rev, in := range s.instances {
				before[rev] = *in
			}
			r, _ := newRunner(s.fakePlatform, 7)
			r.Platform = s
			res, err := r.Run(context.Background(), tt.req)
			if err == nil || !strings.Contains(err.Error(), "never ready") {
				t.Fatalf("err = %v, want the health failure", err)
			}
			from := ""
			if res.Journal.From != nil {
				from = res.Journal.From.String()
			}
			if from != tt.wantFrom {
				t.Errorf("rolled out from %q, want %q", from, tt.wantFrom)
			}
			for _, rev := range tt.wantKept {
				got, ok := s.instances[rev]
				if !ok {
					t.Errorf("revision %d was deleted; calls:\n  %s", rev, strings.Join(s.calls, "\n  "))
					continue
				}
				if got.Running != before[rev].Running || got.Image != before[rev].Image {
					t.Errorf("revision %d is now %d×%s, was %d×%s", rev, got.Running, got.Image, before[rev].Running, before[rev].Image)
				}
			}
			var left []int
			for rev := range s.instances {
				left = append(left, rev)
			}
			slices.Sort(left)
			if !slices.Equal(left, tt.wantKept) {
				t.Errorf("revisions left %v, want %v", left, tt.wantKept)
			}
		})
	}
}

// TestRolloutStartsAtTheLiveCount shows that a rollout mid-peak starts the new
// colour with as many replicas as serve now (or the prewarm floor), not the
// file's count, and that an unchanged image at the live count is no change.
func TestRolloutStartsAtTheLiveCount(t *testing.T) {
	t.Parallel()
	peak := Deployment{Color: Blue, Revision: 1, Image: "model:v1", Replicas: 10}
	tests := []struct {
		name  string
		floor int
		req   Request
		want  string
		noop  bool
	}{
		{name: "live count above the file", floor: 10, req: Request{Op: OpRollout, Image: "model:v2", Replicas: 2}, want: "green r2 x10"},
		{name: "more asked than serve", floor: 10, req: Request{Op: OpRollout, Image: "model:v2", Replicas: 12}, want: "green r2 x12"},
		{name: "same image at the live count", floor: 10, req: Request{Op: OpRollout, Image: "model:v1", Replicas: 2}, noop: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.strict, f.sizes = false, true
			s := &slotFake{fakePlatform: f, live: &peak, floor: tt.floor}
			s.deployed(peak)
			r, _ := newRunner(f, 7)
			r.Platform = s
			r.Config.Watch.Window = 0
			res, err := r.Run(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if res.NoOp != tt.noop {
				t.Fatalf("noop = %v, want %v (%s)", res.NoOp, tt.noop, res.Summary)
			}
			if !tt.noop && !slices.Contains(f.calls, "Create "+tt.want) {
				t.Errorf("calls %v, want Create %s", f.calls, tt.want)
			}
		})
	}
}

// warmFake is a slot platform that can keep a retired colour warm.
type warmFake struct {
	*slotFake
	until time.Time
}

func (w *warmFake) KeepWarm(_ context.Context, d Deployment, until time.Time) error {
	w.until = until
	return w.call("KeepWarm " + dep(d)).err
}

// TestKeepWarm: with rollout.keepWarm the old colour is marked warm instead
// of stopped, and a rollback to a colour no replica of which runs says it is
// a cold start.
func TestKeepWarm(t *testing.T) {
	t.Parallel()
	f := newFake(t, seq("Lock", "Check green r2", "Create green r2", "WaitHealthy green r2", "Warmup green r2", "Switch green r2",
		healthy(10), "Drain blue r1", "KeepWarm blue r1", "Unlock")...)
	s := &slotFake{fakePlatform: f, live: &blue1}
	s.deployed(blue1)
	w := &warmFake{slotFake: s}
	r, events := newRunner(f, 7)
	r.Platform = w
	r.Config.KeepWarm = units.Duration(30 * time.Minute)
	start := r.now()
	if _, err := r.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2", Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	if got := w.until.Sub(start); got < 30*time.Minute || got > 31*time.Minute {
		t.Errorf("kept warm for %s, want 30m after the switch", got)
	}
	said := false
	for _, e := range *events {
		said = said || strings.Contains(e.Message, "stays warm until") && strings.Contains(e.Message, "cold start")
	}
	if !said {
		t.Error("no event says until when blue stays warm")
	}

	// Later: blue was scaled down after its window; a rollback says it is a cold start.
	f.strict = false
	f.instances[1].Running = 0
	g := green2
	s.live = &g
	res, err := r.Run(context.Background(), Request{Op: OpRollback, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Summary, "a cold start") {
		t.Errorf("rollback plan %q does not say it is a cold start", res.Summary)
	}
}
