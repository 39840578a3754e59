package upstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"golang.org/x/sync/errgroup"
)

// ErrUnknownTarget means a URL is not one of the pool's targets.
var ErrUnknownTarget = errors.New("unknown target")

// HealthGateError says which new target failed its health gate; nothing changed.
type HealthGateError struct{ Err error }

func (e *HealthGateError) Error() string { return e.Err.Error() }
func (e *HealthGateError) Unwrap() error { return e.Err }

// Replace swaps the pool's targets for req.Targets once every new one is
// healthy. A dns+ target (dns+http://NAME:PORT) stands for every address NAME
// resolves to now, each health-gated like a listed target, and is resolved
// again every DNSInterval from then on, as a configured one is: a rollout
// points the pool at the new colour's headless Service and the pool follows
// its pods. Targets present before and after keep their state and in-flight
// requests. On a failed health gate, or a name that resolves to nothing,
// nothing changes.
func (p *Pool) Replace(ctx context.Context, req adminapi.ReplaceTargets) (adminapi.Pool, error) {
	if len(req.Targets) == 0 {
		return adminapi.Pool{}, errors.New("a pool needs at least one target")
	}
	groups := groupsOf(req.Targets)
	if req.Split != nil {
		if err := ValidateSplit(*req.Split, groups); err != nil {
			return adminapi.Pool{}, err
		}
	}
	spec := make([]TargetConfig, 0, len(req.Targets))
	seen := map[string]bool{}
	for _, at := range req.Targets {
		if seen[at.URL] {
			return adminapi.Pool{}, fmt.Errorf("target %s is listed twice", at.URL)
		}
		seen[at.URL] = true
		if IsDNSTarget(at.URL) {
			if _, err := ParseDNSTarget(at.URL); err != nil {
				return adminapi.Pool{}, err
			}
		}
		spec = append(spec, TargetConfig{URL: at.URL, Weight: at.Weight, Group: at.Group})
	}
	want, err := expandDNS(ctx, p.resolverOf(), spec)
	if err != nil {
		return adminapi.Pool{}, &HealthGateError{Err: err}
	}
	old := p.Targets()
	byURL := make(map[string]*Target, len(old))
	for _, t := range old {
		byURL[t.url] = t
	}
	next := make([]*Target, 0, len(want))
	var fresh []*Target
	for _, tc := range want {
		if t, ok := byURL[tc.URL]; ok {
			next = append(next, t)
			continue
		}
		t, err := newTarget(TargetConfig{URL: tc.URL, Weight: tc.Weight}, p.timeout, p.bf)
		if err != nil {
			return adminapi.Pool{}, err
		}
		t.setGroup(tc.Group)
		next = append(next, t)
		fresh = append(fresh, t)
	}
	timeout := req.HealthTimeout.D()
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	gctx, cancel := context.WithTimeout(ctx, timeout)
	g, gctx := errgroup.WithContext(gctx)
	for _, t := range fresh {
		g.Go(func() error { return p.waitHealthy(gctx, t) })
	}
	err = g.Wait()
	cancel()
	if err != nil {
		for _, t := range fresh {
			t.closeIdle()
		}
		return adminapi.Pool{}, &HealthGateError{Err: err}
	}
	p.seedLimits(p, fresh)
	p.mu.Lock()
	for i, tc := range want {
		w := tc.Weight
		if w <= 0 {
			w = 1
		}
		next[i].weight.Store(int64(w))
		next[i].draining.Store(false)
		next[i].setGroup(tc.Group)
	}
	// What leaves is judged against the list as it is now: a resolution may
	// have changed it while the new targets were health-checked.
	kept := make(map[*Target]bool, len(next))
	for _, t := range next {
		kept[t] = true
	}
	var gone []*Target
	for _, t := range p.Targets() {
		if !kept[t] {
			gone = append(gone, t)
		}
	}
	p.targets.Store(&next)
	p.spec, p.specGen = spec, p.specGen+1
	if req.Split != nil {
		p.storeSplit(*req.Split)
	}
	p.keepValid(groups)
	p.adminChanged.Store(true)
	p.mu.Unlock()

	if req.Drain {
		dt := req.DrainTimeout.D()
		if dt <= 0 {
			dt = 5 * time.Minute
		}
		for _, t := range gone {
			drainTarget(ctx, t, dt)
		}
	}
	for _, t := range gone {
		go func() {
			// Close idle connections once the last request ends.
			drainTarget(context.Background(), t, 30*time.Minute)
			t.closeIdle()
			p.limits.Delete(t)
		}()
	}
	return p.Snapshot(), nil
}

// SetWeights changes the weights of existing targets; unknown URLs change nothing.
func (p *Pool) SetWeights(w map[string]int) (adminapi.Pool, error) {
	ts := p.Targets()
	byURL := make(map[string]*Target, len(ts))
	for _, t := range ts {
		byURL[t.url] = t
	}
	for u, v := range w {
		if _, ok := byURL[u]; !ok {
			return adminapi.Pool{}, fmt.Errorf("%w %s", ErrUnknownTarget, u)
		}
		if v < 0 {
			return adminapi.Pool{}, fmt.Errorf("weight of %s (%d) must not be negative", u, v)
		}
	}
	for u, v := range w {
		if v == 0 {
			v = 1
		}
		byURL[u].weight.Store(int64(v))
	}
	p.adminChanged.Store(true)
	return p.Snapshot(), nil
}

// AdminChanged says whether the admin API changed the pool's targets,
// weights or drain state since it was built.
func (p *Pool) AdminChanged() bool { return p.adminChanged.Load() }

// Adopt gives a freshly built pool the targets of prev, the pool of the same
// name in the gateway it replaces, with their weights and drain state, in
// place of the targets its configuration lists, and what prev resolves them
// from (the dns+ targets the admin API set). A reload uses it for pools the
// admin API changed: a rollout switches traffic through the admin API, and
// re-reading the file must not switch it back to a retired colour.
// The targets are rebuilt with this pool's timeouts and breakers; their
// groups, the split, the shadow and the per-group figures carry over.
func (p *Pool) Adopt(prev *Pool) error {
	old := prev.Targets()
	ts := make([]*Target, 0, len(old))
	for _, o := range old {
		t, err := newTarget(TargetConfig{URL: o.url, Weight: int(o.weight.Load())}, p.timeout, p.bf)
		if err != nil {
			return fmt.Errorf("pool %s: %w", p.cfg.Name, err)
		}
		t.draining.Store(o.draining.Load())
		t.setGroup(o.Group())
		ts = append(ts, t)
	}
	p.seedLimits(prev, ts)
	prev.gmu.Lock()
	rings := make(map[groupKey]*groupRing, len(prev.grings))
	for k, r := range prev.grings {
		rings[k] = r // the window's figures outlive the reload
	}
	prev.gmu.Unlock()
	p.gmu.Lock()
	p.grings = rings
	p.gmu.Unlock()
	spec, _ := prev.specNow()
	if r := prev.resolver.Load(); r != nil && p.resolver.Load() == nil {
		p.resolver.Store(r)
	}
	p.mu.Lock()
	p.targets.Store(&ts)
	p.split.Store(prev.split.Load())
	p.shadow.Store(prev.shadow.Load())
	p.spec, p.specGen = spec, p.specGen+1
	p.adminChanged.Store(true)
	p.mu.Unlock()
	return nil
}

// Drain stops new requests to a target and waits until its in-flight ones end or timeout.
func (p *Pool) Drain(ctx context.Context, url string, timeout time.Duration) (adminapi.DrainResult, error) {
	var t *Target
	for _, c := range p.Targets() {
		if c.url == url {
			t = c
		}
	}
	if t == nil {
		return adminapi.DrainResult{}, fmt.Errorf("%w %s", ErrUnknownTarget, url)
	}
	t.draining.Store(true)
	p.adminChanged.Store(true)
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	left := drainTarget(ctx, t, timeout)
	return adminapi.DrainResult{URL: url, Remaining: left, Drained: left == 0}, nil
}

func drainTarget(ctx context.Context, t *Target, timeout time.Duration) int64 {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		n := t.inflight.Load()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		select {
		case <-ctx.Done():
			return t.inflight.Load()
		case <-tick.C:
		}
	}
}
