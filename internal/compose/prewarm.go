package compose

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/errdefs"
	"golang.org/x/sync/errgroup"
)

// OpPrewarm is the operation a prewarm's lock holder names.
const OpPrewarm rollout.Op = "prewarm"

// ErrNothingDeployed means the service has no serving revision to prewarm.
var ErrNothingDeployed = errors.New("nothing is deployed; run aideploy rollout first")

// PrewarmResult says what a prewarm or a restore did.
type PrewarmResult struct {
	Service     string              `json:"service"`
	Active      *rollout.Deployment `json:"active,omitempty"`
	Original    int                 `json:"original"` // replicas of the revision as deployed
	Replicas    int                 `json:"replicas"` // replicas serving now
	Added       []string            `json:"added,omitempty"`
	Removed     []string            `json:"removed,omitempty"`
	PoolTargets int                 `json:"poolTargets"` // targets in the gateway pool now
}

// Prewarm starts replicas of the serving revision, same colour, image and
// labels, until it has n, waits until they pass their health check, and adds
// them to the gateway pool in one health-gated swap. The extra replicas carry
// LabelPrewarm with the revision's own count, so Restore can take them away.
// Asking for no more than what runs changes nothing.
func (p *Platform) Prewarm(ctx context.Context, h rollout.Holder, n int, budget time.Duration) (PrewarmResult, error) {
	res := PrewarmResult{Service: p.opts.Service}
	gw, st, unlock, err := p.lockForPrewarm(ctx, h)
	if err != nil {
		return res, err
	}
	defer unlock()
	d := st.Active()
	if d == nil {
		return res, fmt.Errorf("prewarming %s: %w", p.opts.Service, ErrNothingDeployed)
	}
	if j := st.Pending(); j != nil {
		return res, fmt.Errorf("prewarming %s: the %s to %s never finished; rerun aideploy rollout or rollback to converge first", p.opts.Service, j.Op, j.To)
	}
	res.Active, res.Original = d, d.Replicas
	if err := p.ensureNetworks(ctx); err != nil {
		return res, err
	}
	cs, err := p.replicas(ctx, d.Revision)
	if err != nil {
		return res, err
	}
	byIndex := map[int]container.Summary{}
	for _, c := range cs {
		if _, i, ok := deploymentOf(c.Labels); ok {
			byIndex[i] = c
		}
	}
	type extra struct{ id, name string }
	var extras []extra
	for i := d.Replicas; i < n; i++ {
		name := p.replicaName(*d, i)
		c, ok := byIndex[i]
		if ok && c.State == "running" {
			extras = append(extras, extra{id: c.ID, name: name}) // a prewarm before started it
			continue
		}
		switch {
		case !ok:
			cfg, host, netCfg := p.containerSpec(*d, i)
			cfg.Labels[LabelPrewarm] = strconv.Itoa(d.Replicas)
			resp, err := p.docker.ContainerCreate(ctx, cfg, host, netCfg, nil, name)
			if err != nil {
				return res, fmt.Errorf("creating container %s from %s: %w", name, d.Image, err)
			}
			c = container.Summary{ID: resp.ID, State: "created"}
		case c.State == "paused":
			if err := p.docker.ContainerUnpause(ctx, c.ID); err != nil {
				return res, fmt.Errorf("unpausing container %s: %w", name, err)
			}
			c.State = "running"
		}
		if c.State != "running" && c.State != "restarting" {
			if err := p.docker.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
				return res, fmt.Errorf("starting container %s: %w", name, err)
			}
		}
		extras = append(extras, extra{id: c.ID, name: name})
		res.Added = append(res.Added, name)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, e := range extras {
		g.Go(func() error { return p.waitReplica(gctx, e.id, e.name, budget) })
	}
	if err := g.Wait(); err != nil {
		p.removeExtras(context.WithoutCancel(ctx), d.Revision)
		return res, fmt.Errorf("prewarming %s (extra replicas removed again): %w", d, err)
	}

	pool, err := gw.Pool(ctx, p.opts.Pool)
	if err != nil {
		return res, fmt.Errorf("reading gateway pool %s: %w", p.opts.Pool, err)
	}
	eps, err := p.Endpoints(ctx, *d)
	if err != nil {
		return res, err
	}
	res.Replicas = len(eps)
	targets, added := addTargets(pool.Targets, eps)
	res.PoolTargets = len(targets)
	if added == 0 {
		return res, nil
	}
	hc := p.opts.Rollout.HealthCheck
	if _, err := gw.ReplaceTargets(ctx, p.opts.Pool, adminapi.ReplaceTargets{
		Targets:       targets,
		HealthTimeout: units.Duration(max(3*hc.Timeout.D(), 10*time.Second)),
	}); err != nil {
		p.removeExtras(context.WithoutCancel(ctx), d.Revision)
		return res, fmt.Errorf("adding %d replica(s) of %s to gateway pool %s (extra replicas removed again): %w", added, d, p.opts.Pool, err)
	}
	return res, nil
}

// addTargets is the pool's serving targets plus every endpoint not in it yet.
func addTargets(pool []adminapi.Target, eps []Endpoint) ([]adminapi.Target, int) {
	var out []adminapi.Target
	in := map[string]bool{}
	for _, t := range pool {
		if t.Draining {
			continue
		}
		in[t.URL] = true
		out = append(out, adminapi.Target{URL: t.URL, Weight: max(t.Weight, 1)})
	}
	added := 0
	for _, ep := range eps {
		if !in[ep.Target] {
			out = append(out, adminapi.Target{URL: ep.Target, Weight: 1})
			added++
		}
	}
	return out, added
}

// Restore takes the replicas a prewarm added out of the gateway pool, waiting
// for their requests to finish, and removes them. Without any it does nothing.
func (p *Platform) Restore(ctx context.Context, h rollout.Holder) (PrewarmResult, error) {
	res := PrewarmResult{Service: p.opts.Service}
	gw, st, unlock, err := p.lockForPrewarm(ctx, h)
	if err != nil {
		return res, err
	}
	defer unlock()
	if d := st.Active(); d != nil {
		res.Active, res.Original = d, d.Replicas
	}
	cs, err := p.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: p.filter(kindReplica, LabelPrewarm)})
	if err != nil {
		return res, fmt.Errorf("listing prewarmed containers of %s: %w", p.opts.Service, err)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Names[0] < cs[j].Names[0] })
	leaving := map[string]bool{}
	for _, c := range cs {
		res.Removed = append(res.Removed, c.Names[0][1:])
		if c.State != "running" {
			continue
		}
		in, err := p.docker.ContainerInspect(ctx, c.ID)
		if err != nil {
			return res, fmt.Errorf("inspecting %s: %w", c.Names[0][1:], err)
		}
		if u, err := hostURL(in, p.containerPort()); err == nil {
			leaving[p.targetURL(c.Names[0][1:], u)] = true
		}
	}
	pool, err := gw.Pool(ctx, p.opts.Pool)
	if err != nil {
		return res, fmt.Errorf("reading gateway pool %s: %w", p.opts.Pool, err)
	}
	var keep []adminapi.Target
	for _, t := range pool.Targets {
		if !leaving[t.URL] && !t.Draining {
			keep = append(keep, adminapi.Target{URL: t.URL, Weight: max(t.Weight, 1)})
		}
	}
	res.PoolTargets = len(keep)
	if len(keep) < len(pool.Targets) {
		if len(keep) == 0 {
			return res, fmt.Errorf("gateway pool %s holds only prewarmed replicas; roll out again before restoring", p.opts.Pool)
		}
		if _, err := gw.ReplaceTargets(ctx, p.opts.Pool, adminapi.ReplaceTargets{
			Targets: keep, Drain: true, DrainTimeout: p.opts.Rollout.DrainTimeout,
		}); err != nil {
			return res, fmt.Errorf("taking the prewarmed replicas out of gateway pool %s: %w", p.opts.Pool, err)
		}
	}
	for _, c := range cs {
		err := p.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !errdefs.IsNotFound(err) {
			return res, fmt.Errorf("removing %s: %w", c.Names[0][1:], err)
		}
	}
	if res.Active != nil {
		if eps, err := p.Endpoints(ctx, *res.Active); err == nil {
			res.Replicas = len(eps)
		}
	}
	return res, nil
}

// removeExtras removes the prewarmed replicas of revision rev, best effort.
func (p *Platform) removeExtras(ctx context.Context, rev int) {
	cs, err := p.docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: p.filter(kindReplica, LabelPrewarm, LabelRevision+"="+strconv.Itoa(rev))})
	if err != nil {
		p.logf("listing prewarmed replicas to remove: %v", err)
		return
	}
	for _, c := range cs {
		if err := p.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
			p.logf("removing %s: %v", c.Names[0][1:], err)
		}
	}
}

// lockForPrewarm takes the service's lock for a prewarm or restore, so no
// rollout runs meanwhile, and reads the current state under it. The caller
// defers unlock.
func (p *Platform) lockForPrewarm(ctx context.Context, h rollout.Holder) (gw Gateway, st rollout.State, unlock func(), err error) {
	if gw, err = p.gateway(); err != nil {
		return nil, st, nil, err
	}
	h.Op, h.Since = OpPrewarm, time.Now()
	if err := p.Lock(ctx, h, false); err != nil {
		return nil, st, nil, err
	}
	unlock = func() { _ = p.Unlock(context.WithoutCancel(ctx), h) }
	if st, err = p.Current(ctx); err != nil {
		unlock()
		return nil, st, nil, err
	}
	return gw, st, unlock, nil
}
