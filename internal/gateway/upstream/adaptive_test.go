package upstream

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// slotted simulates a model server in simulated time: slots requests are
// worked on at once for service each, the rest wait in arrival order, as an
// inference engine's scheduler queues them.
type slotted struct {
	slots   int
	service func(now time.Duration) time.Duration
	busy    []time.Duration // end times of the requests in slots
	queue   []simReq
	// wait is how long a request may wait in the gateway for the limit to
	// let it in (the pool's queue); 0 turns it away at once.
	wait time.Duration
}

type simReq struct {
	start    time.Duration // when the gateway leased the slot
	inflight int64
}

// simResult is what a run saw after its warm-up.
type simResult struct {
	limits  []int64
	rtts    []time.Duration
	maxWait time.Duration // the longest wait in the model's queue
	// offered, shed and maxInflight count the requests after warm, those
	// the limit turned away and the most in flight at once.
	offered, shed, maxInflight int64
}

// simulate offers rate requests per second to s through a in 1 ms steps for
// d, admitting a request only under the limit, and reports what happened
// after warm.
func simulate(a *adaptive, s *slotted, rate float64, d, warm time.Duration) simResult {
	epoch := time.Unix(1_000_000, 0)
	var res simResult
	var inflight int64
	type running struct {
		req simReq
		end time.Duration
	}
	var run []running
	var waiting []time.Duration // arrival times of the requests the gateway holds
	credit := 0.0
	for now := time.Duration(0); now < d; now += time.Millisecond {
		// Answers first, so their slots are free for this step's arrivals.
		keep := run[:0]
		for _, r := range run {
			if r.end > now {
				keep = append(keep, r)
				continue
			}
			inflight--
			rtt := now - r.req.start
			a.sample(epoch.Add(now), epoch.Add(r.req.start), rtt, r.req.inflight, false)
			if now >= warm {
				res.rtts = append(res.rtts, rtt)
			}
		}
		run = keep
		for len(s.queue) > 0 && len(run) < s.slots {
			r := s.queue[0]
			s.queue = s.queue[1:]
			if now >= warm {
				res.maxWait = max(res.maxWait, now-r.start)
			}
			run = append(run, running{req: r, end: now + s.service(now)})
		}
		credit += rate / 1000
		for ; credit >= 1; credit-- {
			if now >= warm {
				res.offered++
			}
			waiting = append(waiting, now)
		}
		// The gateway's queue: the oldest first while the limit lets them
		// in; those that waited too long are answered 503.
		for len(waiting) > 0 {
			if now-waiting[0] > s.wait || (s.wait == 0 && inflight >= a.Limit()) {
				if waiting[0] >= warm {
					res.shed++
				}
				waiting = waiting[1:]
				continue
			}
			if inflight >= a.Limit() {
				break
			}
			waiting = waiting[1:]
			inflight++
			if now >= warm {
				res.maxInflight = max(res.maxInflight, inflight)
			}
			s.queue = append(s.queue, simReq{start: now, inflight: inflight})
		}
		for len(s.queue) > 0 && len(run) < s.slots {
			r := s.queue[0]
			s.queue = s.queue[1:]
			run = append(run, running{req: r, end: now + s.service(now)})
		}
		if now >= warm && now%(100*time.Millisecond) == 0 {
			res.limits = append(res.limits, a.Limit())
		}
	}
	return res
}

func fixed(d time.Duration) func(time.Duration) time.Duration {
	return func(time.Duration) time.Duration { return d }
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*99)/100]
}

func TestAdaptiveFindsCapacity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		slots    int
		service  func(time.Duration) time.Duration
		rate     float64
		warm     time.Duration
		min, max int64         // the band the limit must stay in after warm
		p99      time.Duration // the bound of the answers' latency after warm
	}{
		// The peak replay's model: 8 slots of 200 ms under 5x its capacity.
		{"8 slots overloaded", 8, fixed(200 * time.Millisecond), 200, 5 * time.Second, 8, 10, 400 * time.Millisecond},
		// A big engine: the limit climbs from 8 to its 128 slots.
		{"128 slots overloaded", 128, fixed(100 * time.Millisecond), 3000, 10 * time.Second, 120, 160, 200 * time.Millisecond},
		// Two slots: the limit comes down from its initial 8.
		{"2 slots overloaded", 2, fixed(50 * time.Millisecond), 400, 3 * time.Second, 2, 4, 100 * time.Millisecond},
		// A fast model on a noisy machine: its answers take 1 ms or 4 ms in
		// turns of 100 ms, far below its 64 slots. Noise is not a queue: the
		// limit must not fall below the 8 it starts with and shed load.
		{"fast and noisy", 64, func(now time.Duration) time.Duration {
			if (now/(100*time.Millisecond))%2 == 0 {
				return time.Millisecond
			}
			return 4 * time.Millisecond
		}, 2000, 2 * time.Second, 8, 64, 10 * time.Millisecond},
		// The model slows 3x at 10s and the limit must find its slots again
		// rather than stay cut to the floor.
		{"slows 3x", 8, func(now time.Duration) time.Duration {
			if now >= 10*time.Second {
				return 600 * time.Millisecond
			}
			return 200 * time.Millisecond
		}, 200, 20 * time.Second, 6, 12, 1200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAdaptive(0)
			res := simulate(a, &slotted{slots: tt.slots, service: tt.service}, tt.rate, tt.warm+10*time.Second, tt.warm)
			lo, hi := slices.Min(res.limits), slices.Max(res.limits)
			// A probe halves the limit for one window now and then: judge the
			// band on the limit most of the time, and the floor separately.
			s := slices.Clone(res.limits)
			slices.Sort(s)
			med := s[len(s)/2]
			t.Logf("limit after warm-up: median %d, range %d..%d; p99 %s", med, lo, hi, p99(res.rtts))
			if med < tt.min || med > tt.max || hi > tt.max {
				t.Errorf("limit after warm-up: median %d, range %d..%d; want %d..%d", med, lo, hi, tt.min, tt.max)
			}
			if lo < max(1, tt.min/2-1) {
				t.Errorf("limit fell to %d, below about half the capacity (the probe halves it)", lo)
			}
			if got := p99(res.rtts); got > tt.p99 {
				t.Errorf("p99 latency %s, want at most %s (longest wait in the model's queue %s)", got, tt.p99, res.maxWait)
			}
		})
	}
}

func TestAdaptiveStaysPutWhenNotUsed(t *testing.T) {
	t.Parallel()
	a := newAdaptive(0)
	// 10 req/s of 200 ms: two in flight, far from the limit of 8.
	res := simulate(a, &slotted{slots: 8, service: fixed(200 * time.Millisecond)}, 10, 30*time.Second, time.Second)
	if hi := slices.Max(res.limits); hi > adaptiveInitial {
		t.Errorf("limit grew to %d without ever being reached; want it to stay at %d", hi, adaptiveInitial)
	}
}

func TestAdaptiveHalvesOnOverload(t *testing.T) {
	t.Parallel()
	a := newAdaptive(8)
	epoch := time.Unix(1_000_000, 0)
	now := epoch
	want := []int64{4, 2, 1, 1}
	for i, w := range want {
		start := now
		now = now.Add(minWindow)
		a.sample(now, start, minWindow, 1, true)
		if got := a.Limit(); got != w {
			t.Fatalf("after %d overloaded windows: limit %d, want %d", i+1, got, w)
		}
	}
}

// An LLM's answers take as long as their output: a steady rate of mixed short
// and long requests, far below a model's slots, moves the window means by the
// mix alone. That is not a queue: the limit must stay above the requests in
// flight, so that the gateway sheds nothing.
func TestAdaptiveMixedLengthsBelowCapacity(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		short, long time.Duration
		rate        float64
	}{
		// Chat answers of 10 ms or 300 ms: about 3 in flight on 64 slots.
		{"short and long", 10 * time.Millisecond, 300 * time.Millisecond, 20},
		// Plain answers and streams of a fast model on a busy host.
		{"fast mix", time.Millisecond, 60 * time.Millisecond, 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, 2))
			mixed := func(time.Duration) time.Duration {
				if rng.IntN(2) == 0 {
					return tt.short
				}
				return tt.long
			}
			a := newAdaptive(0)
			res := simulate(a, &slotted{slots: 64, service: mixed}, tt.rate, 30*time.Second, time.Second)
			if res.shed != 0 || slices.Min(res.limits) < res.maxInflight {
				t.Errorf("shed %d of %d requests; limit fell to %d with up to %d in flight, want no request shed",
					res.shed, res.offered, slices.Min(res.limits), res.maxInflight)
			}
		})
	}
}

// After a halving (a 503 from the model, a timeout) the limit may sit below
// what a steady mix of short and long answers needs in flight. It binds
// then, and the mix's draw of lengths must not read as a queue window after
// window and cut it down to 1: it climbs back. Six draws of lengths each;
// a few requests are shed while it climbs (the simulation has no queue).
func TestAdaptiveMixedLengthsRecoverFromACut(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		short, long time.Duration
		rate        float64
	}{
		{"short and long", 10 * time.Millisecond, 300 * time.Millisecond, 20},
		{"fast mix", time.Millisecond, 60 * time.Millisecond, 100},
	} {
		for seed := range uint64(6) {
			rng := rand.New(rand.NewPCG(seed+1, 2))
			mixed := func(time.Duration) time.Duration {
				if rng.IntN(2) == 0 {
					return tt.short
				}
				return tt.long
			}
			a := newAdaptive(2)
			res := simulate(a, &slotted{slots: 64, service: mixed}, tt.rate, 60*time.Second, 10*time.Second)
			if res.shed*10 > res.offered {
				t.Errorf("%s, draw %d: shed %d of %d requests after 10s; limit %d..%d with up to %d in flight, want it back above them",
					tt.name, seed+1, res.shed, res.offered, slices.Min(res.limits), slices.Max(res.limits), res.maxInflight)
			}
		}
	}
}
