package upstream

import (
	"errors"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/units"
)

// queuedResult is what a queued Acquire got, and after how long.
type queuedResult struct {
	lease Lease
	err   error
	took  time.Duration
}

// acquireQueued starts an Acquire that is expected to queue, and waits until
// the pool counts n waiters. A lease it gets is held until the test ends.
func acquireQueued(t *testing.T, p *Pool, n int64) <-chan queuedResult {
	t.Helper()
	got := make(chan queuedResult, 1)
	go func() {
		start := time.Now()
		l, err := p.Acquire(t.Context())
		got <- queuedResult{l, err, time.Since(start)}
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for p.Queued() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d request(s) queued, want %d", p.Queued(), n)
		}
		<-tick.C
	}
	return got
}

// errClientGone releases a slot without feeding the adaptive limit.
var errClientGone = errors.New("client gone")

// A burst takes every slot at once, so none frees within the queue's wait:
// each needs one latency. A queue that did not move says nothing of an
// overload, and its waiter waits for the first slot due; a CI run lost 4 of
// 1,419 canary requests to this (the host stalled the model, then
// everything ended and started again at once). A queue that moved, its
// slots still full, is an overload's, and slots held past one latency are a
// model slower than it said; a queue that refused requests lately is in an
// overload (the peak replay's 3x phase, where waiting on took the p99 to 2.3
// times the model's time): the waiter leaves at its wait.
func TestQueueWaitsOutSlotsTakenTogether(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name                string
		moved, old, refused bool
	}{
		{name: "nothing ended"},
		{name: "the queue moved", moved: true},
		{name: "slots held past the latency", old: true},
		{name: "the queue refused a request lately", refused: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newTestPool(t, PoolConfig{Targets: []TargetConfig{{URL: healthServer(t, nil)}}})
			_, a := p.limitOf(p.Targets()[0])
			learn(t, a, time.Second)
			_, wait, again := p.queueBounds()
			if wait != 250*time.Millisecond || again != a.Latency() {
				t.Fatalf("answers of 1s: wait %s and again %s, want a quarter of the latency and the latency %s", wait, again, a.Latency())
			}
			var held []Lease
			for range a.Limit() {
				l, err := p.Acquire(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, l)
			}
			defer func() {
				for _, l := range held {
					l.Done(Outcome{Err: errClientGone})
				}
			}()
			if tt.old || tt.refused {
				if tt.old {
					// The leases started two latencies ago: none is late by a burst.
					tg := p.Targets()[0]
					for n := int64(1); n <= tg.started.Load(); n++ {
						tg.starts[n%startRing].Store(time.Now().Add(-2 * again).UnixNano())
					}
				} else {
					_ = p.refuse() // an overload's queue refuses all the time
				}
				r := <-acquireQueued(t, p, 1)
				if !errors.Is(r.err, ErrSaturated) || r.took > wait+again/2 {
					t.Fatalf("%s: %v after %s, want ErrSaturated at the wait %s", tt.name, r.err, r.took, wait)
				}
				return
			}
			if !tt.moved {
				// The first answer ends after the wait, within one latency more.
				release := held[0]
				held = held[1:]
				time.AfterFunc(wait+again/2, func() { release.Done(Outcome{Err: errClientGone}) })
				r := <-acquireQueued(t, p, 1)
				if r.err != nil || r.took < wait {
					t.Fatalf("queued behind slots taken together: %v after %s, want the first slot that frees, after the wait %s", r.err, r.took, wait)
				}
				held = append(held, r.lease)
				return
			}
			first := acquireQueued(t, p, 1)
			second := acquireQueued(t, p, 2)
			held[0].Done(Outcome{Err: errClientGone}) // the first waiter takes it
			held = held[1:]
			r := <-first
			if r.err != nil {
				t.Fatalf("first waiter: %v, want the freed slot", r.err)
			}
			held = append(held, r.lease)
			if r := <-second; !errors.Is(r.err, ErrSaturated) || r.took > wait+again/2 {
				t.Fatalf("second waiter of a queue that moved: %v after %s, want ErrSaturated at the wait %s", r.err, r.took, wait)
			}
		})
	}
}

// A slot freed without a wake-up for the waiter (the wake-up and the timer
// were ready together, or went to a waiter of another colour, or the host
// stopped the gateway past both) is taken when the waiter's time runs out:
// it is the oldest waiter, and a free slot serves it at no cost.
func TestQueueTimeoutTakesAFreeSlot(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, PoolConfig{Targets: []TargetConfig{{URL: healthServer(t, nil)}}, MaxInflight: 1,
		Queue: Queue{Size: 1, Timeout: units.Duration(100 * time.Millisecond)}})
	l, err := p.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := acquireQueued(t, p, 1)
	l.Target.inflight.Add(-1) // freed, nobody woken
	r := <-got
	if r.err != nil {
		t.Fatalf("a free slot when the queue's time ran out: %v after %s, want it taken", r.err, r.took)
	}
	r.lease.Done(Outcome{Err: errClientGone})
}
