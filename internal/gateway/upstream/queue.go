package upstream

import (
	"context"
	"errors"
	"time"
)

// The pool's queue: where a request waits when every usable target is at its
// limit, how many may wait and for how long.

// acquireIn leases a target of group (of every serving group when all),
// waiting in the queue when they are all full.
func (p *Pool) acquireIn(ctx context.Context, all bool, group string) (Lease, error) {
	// While others wait, a newcomer waits behind them: taking a freed slot
	// first would leave the queue's oldest to time out.
	behind := p.queued.Load() != 0
	if !behind {
		l, err := p.tryPick(p.targetsOf(all, group))
		if err == nil || errors.Is(err, ErrUnavailable) {
			return l, err
		}
	}
	size, wait, again := p.queueBounds()
	if size <= 0 {
		return Lease{}, p.refuse()
	}
	if p.queued.Add(1) > size {
		p.queued.Add(-1)
		return Lease{}, p.refuse()
	}
	defer p.queued.Add(-1)
	queuedAt, ended := time.Now(), finished(p.targetsOf(all, group))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	if !behind {
		// A slot freed between the pick above and joining the queue woke nobody.
		if l, err := p.tryPick(p.targetsOf(all, group)); err == nil || errors.Is(err, ErrUnavailable) {
			return l, err
		}
	}
	for {
		select {
		case <-p.wake:
		case <-timer.C:
			// Overloaded means the queue turned a request away lately.
			overloaded := p.refusedWithin(refuseMemory)
			// A slot free as the time ran out is this waiter's, the oldest:
			// its wake-up and the timer came together, or the host stopped
			// this process past both (the timer fired twice late). But an
			// overload's waiter leaves on time: taking every slot that frees
			// as waiters time out keeps a limit one above the model's slots
			// full, and the model's queue doubles the answers' time.
			if !overloaded || time.Since(queuedAt) >= 2*wait {
				if l, err := p.tryPick(p.targetsOf(all, group)); err == nil || errors.Is(err, ErrUnavailable) {
					return l, err
				}
			}
			// A burst, not an overload: the queue turned nobody away
			// lately, no request of these targets ended while this one
			// waited, and the oldest in flight started less than one
			// uncongested latency ago. The slots were taken together (a
			// burst, or the host stopped the model and then let everything
			// go at once) and none is due yet: wait until the first is, and
			// the wait once more for the host's scheduling. In an overload
			// the queue refuses all the time, and there a longer wait
			// would only make the answers slower (the peak replay's 3x
			// phase: p99 from 1.1 to 2.3 times the model's time).
			if again > 0 && !overloaded && finished(p.targetsOf(all, group)) == ended {
				if due, ok := firstDue(p.targetsOf(all, group), again); ok {
					if d := time.Until(due); d > 0 {
						timer.Reset(d + wait)
						again = 0
						continue
					}
				}
			}
			return Lease{}, p.refuse()
		case <-ctx.Done():
			return Lease{}, ctx.Err()
		}
		l, err := p.tryPick(p.targetsOf(all, group))
		if err == nil || errors.Is(err, ErrUnavailable) {
			return l, err
		}
	}
}

// refuseMemory is how long a 503 of the queue marks the pool as overloaded
// (see acquireIn).
const refuseMemory = time.Second

// refuse notes a 503 of the queue and returns ErrSaturated.
func (p *Pool) refuse() error {
	p.refused.Store(time.Now().UnixNano())
	return ErrSaturated
}

// refusedWithin says whether the queue turned a request away within d.
func (p *Pool) refusedWithin(d time.Duration) bool {
	at := p.refused.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < d
}

// firstDue is when the first request in flight on ts should end, the
// oldest one's start plus latency; ok is false when none is in flight.
func firstDue(ts []*Target, latency time.Duration) (due time.Time, ok bool) {
	for _, t := range ts {
		if at, in := t.oldestInflight(); in && (!ok || at.Before(due)) {
			due, ok = at, true
		}
	}
	return due.Add(latency), ok
}

// finished is how many requests ts have ended, to tell a queue that moved
// from one that did not.
func finished(ts []*Target) int64 {
	var n int64
	for _, t := range ts {
		n += t.ended()
	}
	return n
}

// queueSize is how many requests may wait: the configured size, or by
// default what the usable targets finish within queueWait at their limits
// (limit × wait ÷ uncongested latency), and at least a quarter of their
// limits. A queued request then finds a slot within its wait while the
// model keeps up, and overload is answered with a fast 503 instead of a
// slow 200. A count alone (a quarter of the limits) would turn away at once
// a fast model's bursts that its next few milliseconds of answers absorb.
func (p *Pool) queueSize() int64 {
	size, _, _ := p.queueBounds()
	return size
}

// minQueueWait is the least a queued request may wait, whatever the latency:
// a busy host's scheduler and GC delay a freed slot's wake-up by tens of
// milliseconds, which must not turn a fast model's queued request away.
const minQueueWait = 100 * time.Millisecond

// queueWait is how long a request may wait for a slot: queue.timeout, and
// with the adaptive limit and the automatic queue at most a quarter of the
// slowest usable target's uncongested latency, but at least minQueueWait.
// The queue smooths bursts; a request that waited longer, plus the model's
// own time and its short queue, would come near twice the model's time, and
// a 503 now serves its client better than a slow 200.
func (p *Pool) queueWait() time.Duration {
	_, wait, _ := p.queueBounds()
	return wait
}

// queueBounds is queueSize and queueWait from one look at the targets, and
// again: the latency within which a queue that did not move expects its
// first slot (see acquireIn), the slowest usable target's uncongested
// latency with the adaptive limit and the automatic queue, else 0.
func (p *Pool) queueBounds() (size int64, wait, again time.Duration) {
	d := p.cfg.Queue.Timeout.D()
	fixed := p.cfg.MaxInflight != 0 || p.cfg.Queue.Size != 0
	if p.cfg.Queue.Size != 0 {
		return max(0, int64(p.cfg.Queue.Size)), d, 0
	}
	var sum, fresh int64 // fresh: the limits of targets that have not answered yet
	var rate float64     // answers a second the learned targets finish at their limits
	var slowest time.Duration
	for _, t := range p.Targets() {
		if !t.usable() {
			continue
		}
		limit, a := p.limitOf(t)
		sum += limit
		if a == nil {
			continue
		}
		if ref := a.Latency(); ref > 0 {
			rate += float64(limit) / ref.Seconds()
			slowest = max(slowest, ref)
		} else {
			fresh += limit
		}
	}
	wait = d
	if !fixed && slowest > 0 {
		wait, again = min(d, max(slowest/4, minQueueWait)), slowest
		// A target added at a rollout's switch takes all the traffic before
		// it answered once: it drains as fast as the slowest target that has.
		rate += float64(fresh) / slowest.Seconds()
	}
	return min(adaptiveMax, max(1, (sum+3)/4, int64(rate*wait.Seconds()))), wait, again
}
