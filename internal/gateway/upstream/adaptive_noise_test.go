package upstream

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// hostSlowdowns simulates a busy shared host in front of a model with room
// to spare: now and then, for half a second to three seconds, other work on
// the host makes everything on it factor times slower, the model's answers
// included. Requests in flight rise with the latency at the same rate
// offered, as they would for a queue, but none of it is a queue the gateway
// made, and a lower limit cannot shorten it.
func hostSlowdowns(seed uint64, base time.Duration, factor float64) func(time.Duration) time.Duration {
	rng := rand.New(rand.NewPCG(seed, 7))
	type span struct{ from, to time.Duration }
	var slow []span
	for at := time.Duration(0); at < 10*time.Minute; {
		at += time.Duration(1000+rng.IntN(4000)) * time.Millisecond
		d := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		slow = append(slow, span{at, at + d})
		at += d
	}
	return func(now time.Duration) time.Duration {
		i, ok := slices.BinarySearchFunc(slow, now, func(s span, t time.Duration) int {
			switch {
			case s.to <= t:
				return -1
			case s.from > t:
				return 1
			}
			return 0
		})
		if ok && i < len(slow) {
			return time.Duration(float64(base) * factor)
		}
		return base
	}
}

// On a shared host the model's latency moves with the host, not with the
// requests in flight: the limit must not read the host's slowdowns as the
// model queueing and collapse. The Docker canary's load, one target's share:
// 35 requests a second of 140 ms on a model without a slot limit, behind the
// pool's queue of 100 ms, from a limit of 8, slowed 3x for 0.5 to 3 s every
// 1 to 5 s. Unchecked cuts took the limit to 1 and shed 41% to 58% of the
// requests; checked ones, undone and scaled by the new latency, shed 0.3% to
// 3.2% (each slowdown still costs the window that checks its cut).
func TestAdaptiveHostSlowdownsAreNotAQueue(t *testing.T) {
	t.Parallel()
	for seed := range uint64(6) {
		a := newAdaptive(8)
		s := &slotted{slots: 1 << 20, service: hostSlowdowns(seed+1, 140*time.Millisecond, 3), wait: minQueueWait}
		res := simulate(a, s, 35, 120*time.Second, 10*time.Second)
		t.Logf("draw %d: shed %d of %d; limit %d..%d, up to %d in flight", seed+1, res.shed, res.offered, slices.Min(res.limits), slices.Max(res.limits), res.maxInflight)
		if res.shed*20 > res.offered {
			t.Errorf("draw %d: shed %d of %d requests (over 5%%); limit %d..%d with up to %d in flight",
				seed+1, res.shed, res.offered, slices.Min(res.limits), slices.Max(res.limits), res.maxInflight)
		}
	}
}
