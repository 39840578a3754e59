package upstream

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The adaptive limit's constants. They are not configuration: the point of the
// limit is that nobody has to know the model to get a safe one.
const (
	adaptiveInitial = 8    // the limit of a target before it has answered anything
	adaptiveMin     = 1    // never fewer, so a slow model still gets work
	adaptiveMax     = 1024 // never more, so a model that hides its queue cannot take everything
	// A window closes after at least this long and this many answers, and
	// never before one uncongested latency has passed, so that it sees the
	// effect of the limit it ran under.
	minWindow  = 100 * time.Millisecond
	minSamples = 5
	// refTTL is how long the uncongested latency is trusted before it is
	// measured again at half the limit (Envoy's minRTT recalculation).
	refTTL = 10 * time.Second
	// cutsBeforeProbe: this many cuts in a row mean the latency is the model's
	// own (it became slower), not a queue the gateway made: measure it again.
	cutsBeforeProbe = 3
	// cleanBeforeGrowth: windows without a queue (a second or more) before the limit grows
	// again, once it has been cut: most of the time at the capacity found.
	cleanBeforeGrowth = 10
	// latencyNoise is taken off every rise in latency before it counts as
	// a queue: a busy machine's scheduling and GC move a fast model's
	// millisecond answers by several times, which is not the model queueing.
	latencyNoise = 5 * time.Millisecond
	// maxRescale bounds how far a cut the latency proved wrong is scaled up
	// by that latency. A model with slots that became slower (the peak
	// replay's 3x phase) queues what the rescale lets past them: at 4x its
	// p99 reached 4.3 times its latency, at 1.5x 2.0; a host's slowdown of a
	// model without slots needs the room (see TestAdaptiveHostSlowdowns...).
	maxRescale = 1.5
	// seMult sampling errors of a window's mean are taken off its rise too:
	// answers of mixed lengths move the mean of a few answers by the draw of
	// lengths alone. Once the limit is below the requests in flight, that
	// draw would otherwise cut it further, window after window. One error,
	// not two: a real queue's waits spread the answers too, and more would
	// let the limit sit above a model's slots.
	seMult = 1
)

// adaptive finds how many requests a target can work on at once from the
// latency of its answers, as TCP Vegas and Netflix's concurrency-limits do.
// Little's law says the requests in flight, times the uncongested latency
// over the latency seen, is what the model actually works on; the rest wait
// in the model's queue. When that queue nears alpha (3/4 of one request, or
// of 1/16 of a big limit) and the limit binds (half the window's requests
// were leased at it) the limit is cut to the model's share; below the limit
// a higher latency is the mix of answer lengths or noise, not a queue. When it
// stays under a third of alpha while the limit is reached, the limit grows: every window
// until the first cut (a slow start), then after ten such windows in a
// row, so it spends most of its time at the capacity found and only now and
// then one window above it, where requests would wait in the model. A cut
// of a quarter or more is checked by the next window: a queue shrinks with
// the requests in flight, a slower model or host does not, and a cut the
// latency did not bear out is undone (see queueShrank). A 503, 429 or a
// timeout halves it (AIMD's backoff). The uncongested latency is the lowest
// window mean, measured again every refTTL, or after cuts in a row, in one
// window at half the limit.
type adaptive struct {
	cur atomic.Int64 // the limit as leases read it, without the lock

	mu      sync.Mutex
	limit   float64
	ref     time.Duration // mean latency of an uncongested window; 0 until one closed
	refSE   float64       // the sampling error of ref's window mean, in seconds
	refAt   time.Time
	cuts    int
	clean   int     // windows in a row without a queue since the last growth
	cutOnce bool    // the limit was cut at least once: past the slow start
	probing bool    // this window measures ref at half the limit
	saved   float64 // the limit to go back to after the probe
	// verifying: this window checks the last cut, which took the limit
	// from cutFrom when the window's mean was cutMean, excess of it above
	// ref, at cutInflight requests in flight.
	verifying   bool
	kept        int // cuts not undone since the last probe
	cutFrom     float64
	cutMean     time.Duration
	excess      time.Duration
	cutInflight float64
	step        float64 // the last growth while the limit held requests back
	win         window
}

// window sums the answers since start.
type window struct {
	start    time.Time
	n        int
	sum      time.Duration
	sumSq    float64 // of the latencies in seconds, for the mean's sampling error
	inflight int64   // summed in-flight counts at lease time, for the mean
	busy     bool    // some lease took the last slot: the limit was reached
	binding  int     // answers leased at the limit: the limit held requests back
	overload bool    // the model refused or timed out
}

// newAdaptive starts a limit at initial, adaptiveInitial when zero.
func newAdaptive(initial float64) *adaptive {
	if initial <= 0 {
		initial = adaptiveInitial
	}
	initial = min(max(initial, adaptiveMin), adaptiveMax)
	a := &adaptive{limit: initial}
	a.cur.Store(int64(initial))
	return a
}

// learned is the limit found from answers, the one saved while a probe
// halves it; ok is false before one uncongested latency was measured.
func (a *adaptive) learned() (limit float64, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.probing {
		return a.saved, true
	}
	return a.limit, a.ref > 0
}

// Limit is the current limit.
func (a *adaptive) Limit() int64 { return a.cur.Load() }

// Latency is the uncongested latency, 0 before it is known.
func (a *adaptive) Latency() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ref
}

// sample records one answer: the lease started at start with inflight
// requests (its own included) and took rtt; overload says the model refused
// or timed out. Answers that say nothing about capacity (a client gone, a
// bug's 500, a refused connection) are not sampled.
func (a *adaptive) sample(now, start time.Time, rtt time.Duration, inflight int64, overload bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := &a.win
	if w.start.IsZero() {
		w.start = start
	}
	if (a.probing || a.verifying) && start.Before(w.start) {
		return // leased before the probe or the cut, at the old limit
	}
	w.n++
	w.sum += rtt
	w.sumSq += rtt.Seconds() * rtt.Seconds()
	w.inflight += inflight
	atLimit := float64(inflight) >= math.Floor(a.limit)
	w.busy = w.busy || atLimit
	if atLimit {
		w.binding++
	}
	w.overload = w.overload || overload
	// A small limit gives few answers per window: wait for as many as it
	// allows, or a cut limit would regrow one slow window at a time.
	if now.Sub(w.start) < max(minWindow, a.ref) || (w.n < min(minSamples, max(1, int(a.limit))) && !w.overload) {
		return
	}
	a.close(now)
}

// close ends the window and moves the limit; it runs under mu.
func (a *adaptive) close(now time.Time) {
	w := a.win
	a.win = window{start: now}
	mean := w.sum / time.Duration(w.n)
	bound := w.binding*2 >= w.n
	switch {
	case a.probing:
		// A model much slower than before is a new one for the limit
		// (a slower GPU, longer prompts): find its capacity as at the start.
		if mean > a.ref*3/2 {
			a.cutOnce = false
		}
		a.ref, a.refSE, a.refAt, a.probing = mean, w.stderr(), now, false
		a.limit = a.saved
	case a.verifying && !w.overload && !a.queueShrank(mean, float64(w.inflight)/float64(w.n)):
		// The latency did not come down with the limit: it is the model's
		// own or its host's (a shared machine's other work slows everything
		// on it), not a queue the gateway let form. The cut only turns
		// clients away: undo it, and take this latency as the uncongested
		// one until a lower one is seen. At the rate offered, the requests
		// in flight grow with the latency (Little's law): the limit the cut
		// was made from, scaled by how much slower the model answers now,
		// at most maxRescale times. A model with slots after all shows a
		// queue at the new limit, and the next, checked cut finds them.
		a.verifying = false
		a.limit = max(a.limit, a.cutFrom*min(maxRescale, float64(mean)/float64(a.ref)))
		a.ref, a.refSE, a.refAt = mean, w.stderr(), now
		a.cuts, a.kept = 0, 0
	case w.overload:
		a.verifying = false
		a.limit /= 2
		a.cuts++
	default:
		if a.verifying {
			// The latency came down with the limit: the queue was real.
			// Cuts the latency bore out, in a row or not, are what cuts in
			// a row were: ref may be stale, measure it again.
			a.verifying = false
			a.kept++
		}
		se := w.stderr()
		if a.ref == 0 || mean < a.ref {
			a.ref, a.refSE, a.refAt = mean, se, now
		}
		// The two means differ by chance within their combined error.
		chance := time.Duration(seMult * math.Hypot(se, a.refSE) * float64(time.Second))
		excess := max(0, mean-a.ref-latencyNoise-chance)
		share := 1 - float64(excess)/float64(max(mean, 1))
		inflight := float64(w.inflight) / float64(w.n)
		queue := inflight * (1 - share)
		alpha := max(1, a.limit/16)
		switch {
		case queue >= 0.75*alpha && bound:
			// Only a limit that holds requests back for most of the window
			// is cut. While the requests in flight stay under it, the model
			// keeps up with the rate offered, and a latency above ref is the
			// mix of answer lengths (an LLM's latency follows its output) or
			// the host's noise: cutting there would turn away requests the
			// model had room for.
			to := max(a.limit/2, inflight*share)
			// A cut of a quarter or more is checked by the next window: it
			// turns many clients away if the latency was not a queue.
			// Smaller cuts count towards measuring ref again at once.
			a.verifying = to <= a.limit*3/4
			if !a.verifying {
				a.kept++
			}
			a.cutFrom, a.cutMean, a.excess, a.cutInflight = a.limit, mean, mean-a.ref, inflight
			a.limit = to
			a.cuts++
			a.clean, a.cutOnce, a.step = 0, true, 0
		case queue < alpha/3 && w.busy:
			a.cuts = 0
			a.clean++
			// Once the capacity was found, probe above it only now and
			// then: every window spent above it queues in the model.
			switch {
			case !a.cutOnce:
				// sqrt as Netflix grows, but at most a quarter (and at
				// least one), so a small limit does not overshoot its few
				// slots by half.
				a.limit += max(1, min(math.Sqrt(a.limit), a.limit/4))
			case bound:
				// The limit holds clients back while the model shows no
				// queue: the last cut went deeper than the model needed
				// (the host's slowdown ended as it was cut, say). Grow
				// every window, each step twice the last, until a queue
				// shows: a client turned away costs more than a window
				// with one request waiting in the model.
				a.step = max(1, alpha/2, min(2*a.step, a.limit/2))
				a.limit += a.step
				a.clean = 0
			case a.clean >= cleanBeforeGrowth:
				a.limit += max(1, alpha/2)
				a.clean, a.step = 0, 0
			}
		default:
			a.cuts = 0
		}
	}
	a.limit = min(max(a.limit, adaptiveMin), adaptiveMax)
	// The probe halves the limit for a window: only where the limit binds,
	// where ref decides cuts. Below it the requests in flight may need more
	// than half, and the probe itself would turn them away.
	if !a.probing && a.ref > 0 && (a.cuts >= cutsBeforeProbe || a.kept >= cutsBeforeProbe || (bound && now.Sub(a.refAt) > refTTL)) {
		a.probing, a.saved, a.cuts, a.kept = true, a.limit, 0, 0
		a.limit = max(adaptiveMin, a.limit/2)
	}
	a.cur.Store(int64(a.limit))
}

// queueShrank says whether the latency after a cut fell as a queue's does:
// a model's queue holds the requests beyond its slots, so the latency falls
// with the requests in flight, down to the excess the cut was made for. The
// model's own latency, or a slowed host's, does not move with them. Half the
// fall expected is enough: the windows' means are noisy.
func (a *adaptive) queueShrank(mean time.Duration, inflight float64) bool {
	fewer := 1 - inflight/a.cutInflight
	expect := min(fewer, float64(a.excess)/float64(a.cutMean))
	fell := 1 - float64(mean)/float64(a.cutMean)
	return fell >= expect/2
}

// stderr is the sampling error of the window's mean latency, in seconds:
// answers of mixed lengths move a window's mean by the draw of lengths alone.
func (w *window) stderr() float64 {
	n := float64(w.n)
	m := w.sum.Seconds() / n
	v := max(0, w.sumSq/n-m*m)
	return math.Sqrt(v / n)
}
