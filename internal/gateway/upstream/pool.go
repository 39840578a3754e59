package upstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/units"
)

var (
	// ErrSaturated means every usable target is at its limit and the queue is full or timed out.
	ErrSaturated = errors.New("upstream saturated")
	// ErrUnavailable means no target is healthy, undrained and with a closed breaker.
	ErrUnavailable = errors.New("no upstream available")
)

// Pool is a set of targets that share a queue.
type Pool struct {
	cfg     PoolConfig
	timeout Timeouts
	bf      BreakerFactory

	mu      sync.Mutex // serialises changes of the target list
	targets atomic.Pointer[[]*Target]
	queued  atomic.Int64
	refused atomic.Int64 // unix nanos of the queue's last 503, 0: never
	wake    chan struct{}
	stats   ring
	// limits holds each target's adaptive limit (*Target → *adaptive), made
	// on first use, so targets added by the admin API or a reload get one.
	limits sync.Map
	// adminChanged: the admin API changed the targets, weights or drain
	// state, which then outlive a configuration reload (see Adopt).
	adminChanged atomic.Bool

	split  atomic.Pointer[split]           // nil: every serving target by weight
	shadow atomic.Pointer[adminapi.Shadow] // nil: no mirroring
	gidx   atomic.Pointer[groupIndex]
	gmu    sync.Mutex
	grings map[groupKey]*groupRing // per-group figures, under gmu
	gfast  sync.Map                // groupKey → *groupRing: grings for lock-free lookups
	// mirrors is the mirrored requests in flight, bounded by maxMirrors.
	mirrors atomic.Int64
	// spec is what the targets are made of: the configured ones, or what the
	// admin API set last, dns+ ones expanded by ResolveDNS (dns.go). specGen
	// counts its changes, so that a resolution begun before one is dropped.
	// Both are guarded by mu.
	spec    []TargetConfig
	specGen uint64
	// resolver is what WatchDNS was given, for Replace to expand dns+ targets with.
	resolver atomic.Pointer[resolverRef]
}

// NewPool builds a pool; Run starts its health checks.
func NewPool(cfg PoolConfig, to Timeouts, bf BreakerFactory) (*Pool, error) {
	cfg.SetDefaults()
	p := &Pool{cfg: cfg, timeout: to, bf: bf, wake: make(chan struct{}, wakeBuffer), spec: slices.Clone(cfg.Targets)}
	ts := make([]*Target, 0, len(cfg.Targets))
	for _, tc := range cfg.Targets {
		if IsDNSTarget(tc.URL) {
			continue // WatchDNS adds one target per address
		}
		t, err := newTarget(tc, to, bf)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", cfg.Name, err)
		}
		ts = append(ts, t)
	}
	p.targets.Store(&ts)
	return p, nil
}

// Name of the pool.
func (p *Pool) Name() string { return p.cfg.Name }

// Targets returns the current targets.
func (p *Pool) Targets() []*Target { return *p.targets.Load() }

// Queued is the number of requests waiting for a slot.
func (p *Pool) Queued() int64 { return p.queued.Load() }

// wakeBuffer bounds the wake-ups waiting for a queued request: one per slot
// freed while requests wait, so that none is lost when several free at once.
const wakeBuffer = 1024

// Lease is one reserved slot on a target; Done must be called exactly once.
type Lease struct {
	Target   *Target
	pool     *Pool
	start    time.Time
	breaker  func(bool)
	inflight int64     // the target's requests in flight with this one, for the limit
	limit    *adaptive // nil when the limit is fixed or off
	sel      Selection // how the target was chosen
	fellBack bool      // the assigned group had no usable target: the fallback's
	mirror   bool      // a mirrored request: not in the pool's figures
}

// Acquire picks a target of any serving group and reserves a slot, waiting
// in the bounded queue when every usable target is full.
func (p *Pool) Acquire(ctx context.Context) (Lease, error) {
	return p.AcquireFor(ctx, Selection{})
}

// AcquireFor leases a target of sel's group, waiting in the bounded queue
// when its usable targets are all full. When the group has no usable target
// at all (unhealthy, ejected, breaker open or draining) the request goes to
// sel.Fallback instead of failing. A group whose targets are merely full
// queues and never spills over: the fallback is for a version that is down,
// not extra capacity for one that is busy, which would hide its overload
// from the analysis and load the old version past its limit.
func (p *Pool) AcquireFor(ctx context.Context, sel Selection) (Lease, error) {
	l, err := p.acquireIn(ctx, !sel.grouped, sel.Group)
	if errors.Is(err, ErrUnavailable) && sel.grouped && sel.Fallback != "" {
		l, err = p.acquireIn(ctx, false, sel.Fallback)
		if err == nil {
			l.fellBack = true
			p.countGroup(sel.Group, false, false, false, true)
		}
	}
	l.sel = sel
	return l, err
}

// AcquireOther leases a usable target other than those in tried, for a
// request that none of them could take (prev is the lease that failed); it
// does not queue. It looks in prev's group first, then in its fallback
// group: a request that was never sent may go to the previous version when
// the new one refuses connections. It returns ErrUnavailable when there is
// no other usable target and ErrSaturated when the others are all full.
func (p *Pool) AcquireOther(prev Lease, tried []*Target) (Lease, error) {
	sel := prev.sel
	group := sel.Group
	if prev.fellBack {
		group = sel.Fallback
	}
	l, err := p.scan(p.targetsOf(!sel.grouped, group), tried)
	if err == nil {
		l.sel, l.fellBack = sel, prev.fellBack
		return l, nil
	}
	if !sel.grouped || prev.fellBack || sel.Fallback == "" {
		return l, err
	}
	l, err = p.scan(p.targetsOf(false, sel.Fallback), tried)
	if err == nil {
		l.sel, l.fellBack = sel, true
		p.countGroup(sel.Group, false, false, false, true)
	}
	return l, err
}

// AcquireFallback leases a target of the fallback group of prev's split, for a
// request its assigned group took and dropped without an answer; it does not
// queue. It returns ErrUnavailable when prev has no fallback or already is on it.
func (p *Pool) AcquireFallback(prev Lease) (Lease, error) {
	sel := prev.sel
	if !sel.grouped || prev.fellBack || prev.mirror || sel.Fallback == "" {
		return Lease{}, ErrUnavailable
	}
	l, err := p.scan(p.targetsOf(false, sel.Fallback), nil)
	if err == nil {
		l.sel, l.fellBack = sel, true
		p.countGroup(sel.Group, false, false, false, true)
	}
	return l, err
}

// scan leases the least loaded usable target of ts that is not in skip.
func (p *Pool) scan(ts, skip []*Target) (Lease, error) {
	anyUsable := false
	var best *Target
	for _, t := range ts {
		if !t.usable() || slices.Contains(skip, t) {
			continue
		}
		anyUsable = true
		if max, _ := p.limitOf(t); max > 0 && t.inflight.Load() >= max {
			continue
		}
		best = better(best, t)
	}
	if best != nil {
		if l, ok := p.lease(best); ok {
			return l, nil
		}
	}
	if !anyUsable {
		return Lease{}, ErrUnavailable
	}
	return Lease{}, ErrSaturated
}

// tryPick returns ErrUnavailable when nothing is usable and ErrSaturated when
// usable targets are all full.
func (p *Pool) tryPick(ts []*Target) (Lease, error) {
	// Two random choices, weighted; fall back to a scan when they are unusable.
	for attempt := 0; attempt < 3; attempt++ {
		a, b := pickWeighted(ts), pickWeighted(ts)
		if a == nil {
			break
		}
		t := better(a, b)
		if t == nil {
			continue
		}
		if l, ok := p.lease(t); ok {
			return l, nil
		}
	}
	return p.scan(ts, nil)
}

func (p *Pool) lease(t *Target) (Lease, bool) {
	max, lim := p.limitOf(t)
	if !t.tryAcquire(max) {
		return Lease{}, false
	}
	now := time.Now()
	t.leased(now)
	l := Lease{Target: t, pool: p, start: now, inflight: t.inflight.Load(), limit: lim}
	if t.breaker != nil {
		done, err := t.breaker.Allow()
		if err != nil {
			p.release(t)
			return Lease{}, false
		}
		l.breaker = done
	}
	return l, true
}

// better returns the usable target with fewer requests per unit of weight.
func better(a, b *Target) *Target {
	switch {
	case a == nil || !a.usable():
		if b != nil && b.usable() {
			return b
		}
		return nil
	case b == nil || !b.usable():
		return a
	}
	if a.inflight.Load()*b.weight.Load() <= b.inflight.Load()*a.weight.Load() {
		return a
	}
	return b
}

func pickWeighted(ts []*Target) *Target {
	switch len(ts) {
	case 0:
		return nil
	case 1:
		return ts[0]
	}
	var total int64
	for _, t := range ts {
		total += t.weight.Load()
	}
	n := rand.Int64N(total)
	for _, t := range ts {
		n -= t.weight.Load()
		if n < 0 {
			return t
		}
	}
	return ts[len(ts)-1]
}

// Outcome is how a proxied request ended, for breakers, ejection and stats.
type Outcome struct {
	Status int   // the upstream's status; 0 when none arrived
	Err    error // transport error or a stream cut
}

// Failed says whether the outcome counts against the target.
func (o Outcome) Failed() bool {
	return o.Err != nil || o.Status >= 500
}

// Group is the group of the target that took the request.
func (l Lease) Group() string {
	if l.Target == nil {
		return ""
	}
	return l.Target.Group()
}

// Assigned is the group the request was assigned (the split's choice), and
// FellBack whether that group had no usable target so that the fallback took it.
func (l Lease) Assigned() (group string, fellBack bool) { return l.sel.Group, l.fellBack }

// Observe records the measured answer in the figures of the lease's group;
// call it before Done, for answers that arrived whole.
func (l Lease) Observe(a Answer) {
	if l.Target == nil {
		return
	}
	l.pool.observeGroup(l.Group(), l.mirror, a)
}

// Done releases the slot and records the outcome.
func (l Lease) Done(o Outcome) {
	if l.Target == nil {
		return
	}
	failed := o.Failed()
	if errors.Is(o.Err, context.Canceled) {
		failed = false // the client went away; not the target's fault
	}
	if l.breaker != nil {
		l.breaker(!failed)
	}
	now := time.Now()
	d := now.Sub(l.start)
	if l.limit != nil {
		switch {
		case overloaded(o):
			l.limit.sample(now, l.start, d, l.inflight, true)
		case !failed && o.Err == nil:
			l.limit.sample(now, l.start, d, l.inflight, false)
		}
	}
	// Passive ejection is for targets that cannot be reached; a model answering
	// 5xx is the breaker's business.
	unreachable := failed && o.Status == 0
	l.Target.passive(!unreachable, int64(l.pool.cfg.PassiveFailures), l.pool.cfg.EjectFor.D())
	l.Target.stats.record(now, d, failed)
	if l.mirror {
		l.pool.mirrors.Add(-1)
	} else {
		l.pool.stats.record(now, d, failed)
	}
	l.pool.countGroup(l.Group(), l.mirror, failed, false, false)
	l.pool.release(l.Target)
}

func (p *Pool) release(t *Target) {
	t.inflight.Add(-1)
	if p.queued.Load() > 0 {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// Snapshot describes the pool for the admin API.
func (p *Pool) Snapshot() adminapi.Pool {
	ts := p.Targets()
	out := adminapi.Pool{Name: p.cfg.Name, Queued: p.queued.Load(), Targets: make([]adminapi.Target, 0, len(ts))}
	for _, t := range ts {
		limit, _ := p.limitOf(t)
		out.Targets = append(out.Targets, adminapi.Target{
			URL:      t.url,
			Weight:   int(t.weight.Load()),
			Healthy:  t.Healthy(),
			Draining: t.draining.Load(),
			Inflight: t.inflight.Load(),
			Limit:    limit,
			Breaker:  t.BreakerState(),
			Group:    t.Group(),
		})
	}
	out.Split, out.Shadow = p.Split(), p.Shadow()
	return out
}

// Stats sums the window for the pool and each current target.
func (p *Pool) Stats(window time.Duration) adminapi.Stats {
	now := time.Now()
	var s summary
	p.stats.sum(now, window, &s)
	out := adminapi.Stats{Window: units.Duration(window), Requests: s.req, Errors: s.errs, P99Seconds: s.p99()}
	for _, t := range p.Targets() {
		var ts summary
		t.stats.sum(now, window, &ts)
		out.ByTarget = append(out.ByTarget, adminapi.TargetStats{URL: t.url, Requests: ts.req, Errors: ts.errs, P99Seconds: ts.p99()})
	}
	out.ByGroup = p.groupStats(now, window)
	return out
}

// CloseIdle closes idle connections of every target, after the pool is retired.
func (p *Pool) CloseIdle() {
	for _, t := range p.Targets() {
		t.closeIdle()
	}
}

// limitOf is the most requests t may have in flight (0: no bound) and, when
// that is the adaptive limit, the limit to feed with answers.
func (p *Pool) limitOf(t *Target) (int64, *adaptive) {
	switch {
	case p.cfg.MaxInflight > 0:
		return int64(p.cfg.MaxInflight), nil
	case p.cfg.MaxInflight < 0:
		return 0, nil
	}
	a, ok := p.limits.Load(t)
	if !ok {
		a, _ = p.limits.LoadOrStore(t, newAdaptive(p.learnedLimit()))
	}
	lim := a.(*adaptive)
	return lim.Limit(), lim
}

// learnedLimit is the mean limit the pool's current targets learned from
// their answers, 0 when none has yet. A target added at a rollout's switch
// starts there rather than at adaptiveInitial: it serves the same model and
// takes all the traffic at once, and a start below the requests in flight
// would turn them away while it learns.
func (p *Pool) learnedLimit() float64 {
	var sum float64
	n := 0
	for _, t := range p.Targets() {
		a, ok := p.limits.Load(t)
		if !ok {
			continue
		}
		if l, ok := a.(*adaptive).learned(); ok {
			sum += l
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// seedLimits starts the adaptive limits of ts at what from's current
// targets learned, before ts take traffic: at a rollout's switch (Replace)
// or a reload (Adopt) the targets that learned leave the list as the new
// ones enter it.
func (p *Pool) seedLimits(from *Pool, ts []*Target) {
	if p.cfg.MaxInflight != 0 {
		return
	}
	l := from.learnedLimit()
	if l == 0 {
		return
	}
	for _, t := range ts {
		p.limits.LoadOrStore(t, newAdaptive(l))
	}
}

// overloaded says whether the model refused for want of capacity or did not
// answer in time: the adaptive limit backs off.
func overloaded(o Outcome) bool {
	if o.Status == 503 || o.Status == 429 {
		return true
	}
	var ne net.Error
	return errors.Is(o.Err, context.DeadlineExceeded) || (errors.As(o.Err, &ne) && ne.Timeout())
}
