package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/units"
)

func healthServer(t *testing.T, ok *atomic.Bool) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok != nil && !ok.Load() {
			w.WriteHeader(503)
		}
	}))
	t.Cleanup(s.Close)
	return s.URL
}

func newTestPool(t *testing.T, cfg PoolConfig) *Pool {
	t.Helper()
	cfg.SetDefaults()
	cfg.HealthCheck.Interval = units.Duration(20 * time.Millisecond)
	p, err := NewPool(cfg, DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSelectionFollowsWeightsAndLoad(t *testing.T) {
	t.Parallel()
	// No limit (-1): the test holds 2,000 leases to see how they spread.
	p := newTestPool(t, PoolConfig{Targets: []TargetConfig{{URL: "http://a:1", Weight: 3}, {URL: "http://b:1", Weight: 1}}, MaxInflight: -1})
	counts := map[string]int{}
	for range 4000 {
		l, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		counts[l.Target.URL()]++
		l.Done(Outcome{Status: 200})
	}
	// With nothing in flight, ties go to the first pick: shares follow weights, roughly 3:1 or more.
	if counts["http://a:1"] < 2*counts["http://b:1"] {
		t.Fatalf("weights 3:1 gave %v", counts)
	}
	// Under load, least-outstanding spreads: while 2,000 leases are taken
	// and held, the load per unit of weight of the two targets stays close.
	// Two random choices bound the imbalance but do not remove it (with 8
	// leases all 8 went to the heavier target once in 55 runs): in 20,000
	// simulated runs of 2,000 it peaked at 36; weighted random picks without
	// the comparison stay under 48 in only 6% of runs.
	var held []Lease
	worst := int64(0)
	for range 2000 {
		l, _ := p.Acquire(context.Background())
		held = append(held, l)
		a, b := p.Targets()[0].Inflight(), p.Targets()[1].Inflight()
		worst = max(worst, a-3*b, 3*b-a)
	}
	if worst > 48 {
		t.Fatalf("taking 2,000 leases, the weight-3 target's load was %d off three times the other's at worst, want at most 48", worst)
	}
	for _, l := range held {
		l.Done(Outcome{Status: 200})
	}
}

func TestQueueBoundsAndTimesOut(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, PoolConfig{Targets: []TargetConfig{{URL: "http://a:1"}}, MaxInflight: 1,
		Queue: Queue{Size: 1, Timeout: units.Duration(100 * time.Millisecond)}})
	l, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		l2, err := p.Acquire(context.Background()) // waits in the queue
		if err == nil {
			l2.Done(Outcome{Status: 200})
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrSaturated) {
		t.Fatalf("third acquire with a full queue: %v, want ErrSaturated", err)
	}
	l.Done(Outcome{Status: 200})
	if err := <-got; err != nil {
		t.Fatalf("queued acquire should get the freed slot: %v", err)
	}
	l, _ = p.Acquire(context.Background())
	start := time.Now()
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrSaturated) || time.Since(start) < 90*time.Millisecond {
		t.Fatalf("queue timeout: %v after %v", err, time.Since(start))
	}
	l.Done(Outcome{Status: 200})
}

func TestPassiveEjection(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, PoolConfig{Targets: []TargetConfig{{URL: "http://a:1"}}, PassiveFailures: 3, EjectFor: units.Duration(time.Hour)})
	for range 3 {
		l, _ := p.Acquire(context.Background())
		l.Done(Outcome{Err: errors.New("connection refused")})
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after 3 failures: %v, want ErrUnavailable", err)
	}
}

func TestReplaceIsHealthGated(t *testing.T) {
	t.Parallel()
	var bad atomic.Bool
	good, sick := healthServer(t, nil), healthServer(t, &bad)
	p := newTestPool(t, PoolConfig{Targets: []TargetConfig{{URL: good}}})
	_, err := p.Replace(context.Background(), adminapi.ReplaceTargets{
		Targets: []adminapi.Target{{URL: sick}}, HealthTimeout: units.Duration(200 * time.Millisecond)})
	var hg *HealthGateError
	if !errors.As(err, &hg) {
		t.Fatalf("replace with an unhealthy target: %v, want a HealthGateError", err)
	}
	if ts := p.Targets(); len(ts) != 1 || ts[0].URL() != good {
		t.Fatalf("a failed replace changed the pool: %v", p.Snapshot())
	}
	bad.Store(false)
	other := healthServer(t, nil)
	snap, err := p.Replace(context.Background(), adminapi.ReplaceTargets{Targets: []adminapi.Target{{URL: other, Weight: 2}}})
	if err != nil || len(snap.Targets) != 1 || snap.Targets[0].URL != other || snap.Targets[0].Weight != 2 {
		t.Fatalf("replace: %v %+v", err, snap)
	}
}

func TestDrainWaitsForInflight(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, PoolConfig{Targets: []TargetConfig{{URL: "http://a:1"}, {URL: "http://b:1"}}})
	var held []Lease
	for range 4 {
		l, _ := p.Acquire(context.Background())
		held = append(held, l)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(100 * time.Millisecond)
		for _, l := range held {
			l.Done(Outcome{Status: 200})
		}
	}()
	res, err := p.Drain(context.Background(), "http://a:1", time.Second)
	if err != nil || !res.Drained || res.Remaining != 0 {
		t.Fatalf("drain: %+v %v", res, err)
	}
	for range 10 {
		l, _ := p.Acquire(context.Background())
		if l.Target.URL() == "http://a:1" {
			t.Fatal("a drained target got a new request")
		}
		l.Done(Outcome{Status: 200})
	}
	<-released // the held leases may all have gone to b: then draining a was immediate
	res, _ = p.Drain(context.Background(), "http://b:1", 10*time.Millisecond)
	if !res.Drained {
		t.Fatalf("drain with nothing in flight should be drained at once: %+v", res)
	}
}

func TestStatsWindow(t *testing.T) {
	t.Parallel()
	var r ring
	now := time.Now()
	for i := range 100 {
		d := 10 * time.Millisecond
		if i == 99 {
			d = 2 * time.Second
		}
		r.record(now, d, i%10 == 0)
	}
	var s summary
	r.sum(now, 30*time.Second, &s)
	if s.req != 100 || s.errs != 10 {
		t.Fatalf("sum %+v", s)
	}
	if p := s.p99(); p < 0.01 || p > 0.02 {
		t.Fatalf("p99 of 99×10ms and 1×2s = %v, want about 10ms", p)
	}
	var old summary
	r.sum(now.Add(10*time.Minute), 30*time.Second, &old)
	if old.req != 0 {
		t.Fatalf("a window in the future still sees old seconds: %+v", old)
	}
}

// learn feeds a's limit windows of answers of rtt taken at its limit, until
// it grew past adaptiveInitial: a target that learned its capacity.
func learn(t *testing.T, a *adaptive, rtt time.Duration) {
	t.Helper()
	now := time.Unix(1_000_000, 0)
	for range 20 * minSamples {
		now = now.Add(rtt)
		a.sample(now, now.Add(-rtt), rtt, a.Limit(), false)
	}
	if a.Limit() <= adaptiveInitial {
		t.Fatalf("limit %d after answers at the limit without a queue, want it grown past %d", a.Limit(), adaptiveInitial)
	}
}

// A fast model drains many queued requests within the wait floor: the
// automatic queue holds what the targets finish in that time, not a quarter
// of their limits, which turned a closed loop of 8 clients away with 503s
// once noise cut the limit below 8. A slow model keeps the short queue.
func TestQueueHoldsWhatTargetsDrain(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		rtt  time.Duration
	}{
		{"fast model", time.Millisecond},
		{"slow model", 200 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newTestPool(t, PoolConfig{Targets: []TargetConfig{{URL: "http://127.0.0.1:1"}}})
			_, a := p.limitOf(p.Targets()[0])
			learn(t, a, tt.rtt)
			wait := p.queueWait()
			if wait < minQueueWait {
				t.Errorf("queue wait %s, want at least the floor %s", wait, minQueueWait)
			}
			limit := a.Limit()
			want := min(adaptiveMax, max((limit+3)/4, int64(float64(limit)*float64(wait)/float64(tt.rtt))))
			if got := p.queueSize(); got != want {
				t.Errorf("limit %d, answers of %s, wait %s: queue size %d, want %d", limit, tt.rtt, wait, got, want)
			}
		})
	}
}

// At a rollout's switch the new targets take all the traffic at once: they
// start from the limit the old ones learned, not from adaptiveInitial.
func TestReplacedTargetsStartFromLearnedLimit(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, PoolConfig{Targets: []TargetConfig{{URL: healthServer(t, nil)}}})
	_, a := p.limitOf(p.Targets()[0])
	learn(t, a, 10*time.Millisecond)
	want := a.Limit()
	next := healthServer(t, nil)
	snap, err := p.Replace(t.Context(), adminapi.ReplaceTargets{Targets: []adminapi.Target{{URL: next}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Targets[0].Limit; got != want {
		t.Errorf("new target's limit %d, want the learned %d", got, want)
	}
}
