package rollout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// expect is one call the fake platform must see, and what it answers.
type expect struct {
	call  string // e.g. "Create green r2"
	err   error
	stats Stats
}

// errKilled stands for the process dying in the middle of a call.
var errKilled = errors.New("killed")

// fakePlatform records calls in order and keeps the state a real platform would.
// With expectations it fails the test on any call out of order and on unused ones.
type fakePlatform struct {
	t      *testing.T
	mu     sync.Mutex
	expect []expect
	strict bool
	calls  []string
	steps  []string // "step/status" of every Record, in order

	journals  map[string]Journal
	order     []string // journal IDs, oldest first
	instances map[int]*Instance
	lock      *Holder
	dead      bool   // the process is dead: every call panics
	lockDead  bool   // the lock's holder was killed
	killAt    string // call prefix at which the process dies (lenient mode)
	clock     *fakeClock
	sizes     bool // name Create, WaitHealthy and Warmup calls with the replica count, for surge batches
	split     splitState
}

func newFake(t *testing.T, exp ...expect) *fakePlatform {
	f := &fakePlatform{t: t, expect: exp, strict: true, journals: map[string]Journal{}, instances: map[int]*Instance{}}
	t.Cleanup(func() {
		if f.strict && len(f.expect) > 0 {
			var left []string
			for _, e := range f.expect {
				left = append(left, e.call)
			}
			t.Errorf("unused expectations: %s\ncalls were:\n  %s", strings.Join(left, ", "), strings.Join(f.calls, "\n  "))
		}
	})
	return f
}

// deployed seeds the fake with a revision that serves traffic.
func (f *fakePlatform) deployed(d Deployment, stopped ...Deployment) *fakePlatform {
	for _, s := range stopped {
		f.instances[s.Revision] = &Instance{Deployment: s, Total: s.Replicas}
	}
	f.instances[d.Revision] = &Instance{Deployment: d, Running: d.Replicas, Total: d.Replicas}
	dd := d
	j := Journal{ID: fmt.Sprintf("seed-%d", d.Revision), Op: OpRollout, Status: StatusSucceeded, To: d, Active: &dd}
	if len(stopped) > 0 {
		s := stopped[len(stopped)-1]
		j.From = &s
	}
	f.journals[j.ID] = j
	f.order = append(f.order, j.ID)
	return f
}

func (f *fakePlatform) call(name string) expect {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		panic(errKilled)
	}
	f.calls = append(f.calls, name)
	if f.killAt != "" && strings.HasPrefix(name, f.killAt) {
		f.dead, f.lockDead = true, true
		panic(errKilled)
	}
	if !f.strict {
		return expect{call: name, stats: Stats{Requests: 100}}
	}
	if len(f.expect) == 0 {
		f.t.Errorf("unexpected call %q (no more expectations)", name)
		return expect{}
	}
	e := f.expect[0]
	f.expect = f.expect[1:]
	if e.call != name {
		f.t.Errorf("call %q, want %q", name, e.call)
	}
	return e
}

func dep(d Deployment) string { return fmt.Sprintf("%s r%d", d.Color, d.Revision) }

// sized names d with its replica count when the test asks for it.
func (f *fakePlatform) sized(d Deployment) string {
	if f.sizes {
		return fmt.Sprintf("%s x%d", dep(d), d.Replicas)
	}
	return dep(d)
}

func (f *fakePlatform) Lock(_ context.Context, h Holder, force bool) error {
	e := f.call("Lock")
	if e.err != nil {
		return e.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lock != nil && !force && !f.lockDead {
		return &LockedError{Service: "svc", Holder: *f.lock}
	}
	f.lock, f.lockDead = &h, false
	return nil
}

func (f *fakePlatform) Unlock(_ context.Context, h Holder) error {
	e := f.call("Unlock")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lock != nil && f.lock.PID == h.PID {
		f.lock = nil
	}
	return e.err
}

func (f *fakePlatform) Current(context.Context) (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		panic(errKilled)
	}
	var st State
	for i := len(f.order) - 1; i >= 0; i-- {
		st.Journals = append(st.Journals, f.journals[f.order[i]])
	}
	for _, in := range f.instances {
		st.Instances = append(st.Instances, *in)
	}
	sort.Slice(st.Instances, func(a, b int) bool { return st.Instances[a].Revision > st.Instances[b].Revision })
	return st, nil
}

func (f *fakePlatform) Record(_ context.Context, j Journal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		panic(errKilled)
	}
	if _, ok := f.journals[j.ID]; !ok {
		f.order = append(f.order, j.ID)
	} else {
		// Keep the newest record last, as a platform sorting by update time would.
		for i, id := range f.order {
			if id == j.ID {
				f.order = append(append(f.order[:i:i], f.order[i+1:]...), id)
				break
			}
		}
	}
	f.journals[j.ID] = j
	f.steps = append(f.steps, string(j.Step)+"/"+string(j.Status))
	return nil
}

func (f *fakePlatform) Check(_ context.Context, to Deployment, _ *Deployment) error {
	return f.call("Check " + dep(to)).err
}

func (f *fakePlatform) Create(_ context.Context, d Deployment) error {
	e := f.call("Create " + f.sized(d))
	if e.err == nil {
		f.mu.Lock()
		f.instances[d.Revision] = &Instance{Deployment: d, Running: d.Replicas, Total: d.Replicas}
		f.mu.Unlock()
	}
	return e.err
}

func (f *fakePlatform) WaitHealthy(_ context.Context, d Deployment, _ time.Duration) error {
	return f.call("WaitHealthy " + f.sized(d)).err
}

func (f *fakePlatform) Warmup(_ context.Context, d Deployment) (WarmupResult, error) {
	e := f.call("Warmup " + f.sized(d))
	return WarmupResult{TimeToFirstToken: 120 * time.Millisecond, Total: 300 * time.Millisecond}, e.err
}

func (f *fakePlatform) Switch(_ context.Context, to Deployment, _ *Deployment) error {
	e := f.call("Switch " + dep(to))
	if e.err == nil {
		f.mu.Lock()
		f.split.joined, f.split.percent, f.split.kept = false, nil, to.Color // the pool holds to alone
		f.mu.Unlock()
	}
	return e.err
}

func (f *fakePlatform) SwitchPart(_ context.Context, to, from Deployment, n int) error {
	e := f.call(fmt.Sprintf("SwitchPart %s %d", dep(to), n))
	if e.err == nil {
		f.mu.Lock()
		if in := f.instances[from.Revision]; in != nil {
			in.Running = max(from.Replicas-n, 0)
		}
		f.mu.Unlock()
	}
	return e.err
}

func (f *fakePlatform) Stats(context.Context, time.Duration) (Stats, error) {
	e := f.call("Stats")
	return e.stats, e.err
}

func (f *fakePlatform) Drain(_ context.Context, d Deployment, _ time.Duration) error {
	return f.call("Drain " + dep(d)).err
}

func (f *fakePlatform) Stop(_ context.Context, d Deployment) error {
	e := f.call("Stop " + dep(d))
	if e.err == nil {
		f.mu.Lock()
		if in := f.instances[d.Revision]; in != nil {
			in.Running = 0
		}
		f.mu.Unlock()
	}
	return e.err
}

func (f *fakePlatform) Remove(_ context.Context, d Deployment) error {
	e := f.call("Remove " + dep(d))
	if e.err == nil {
		f.mu.Lock()
		delete(f.instances, d.Revision)
		f.mu.Unlock()
	}
	return e.err
}

// running lists the revisions with running replicas.
func (f *fakePlatform) running() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for rev, in := range f.instances {
		if in.Running > 0 {
			out = append(out, rev)
		}
	}
	sort.Ints(out)
	return out
}

// fakeClock advances only when the runner sleeps, so watch windows and delays take no time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}
