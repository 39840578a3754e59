package compose

import (
	"context"
	"fmt"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// The previous version is the fallback while the new one is on trial: the
// switch puts both colours in the gateway pool, as two groups, with every
// request assigned to the new one and the old one as the split's fallback.
// A request that finds no usable target of the new colour (crashed, ejected,
// breaker open) is served by the old one instead of getting a 503, and one
// that could not connect to the new colour is sent to the old one. The drain
// after the watch window removes the old colour, and with it the split.

// switchTargets is the pool's targets and split after a switch to to: to's
// replicas, and from's as the fallback when from is an older revision of
// another colour that still runs. A switch back to an older revision (a
// rollback) has no fallback: the version it leaves is the one that failed.
func (p *Platform) switchTargets(ctx context.Context, to rollout.Deployment, from *rollout.Deployment, eps []Endpoint) ([]adminapi.Target, *adminapi.Split) {
	targets := make([]adminapi.Target, 0, len(eps))
	for _, ep := range eps {
		targets = append(targets, adminapi.Target{URL: ep.Target, Weight: 1, Group: string(to.Color)})
	}
	none := &adminapi.Split{} // removes a split left from before
	if from == nil || from.Color == to.Color || from.Revision >= to.Revision {
		return targets, none
	}
	old, err := p.Endpoints(ctx, *from)
	if err != nil {
		return targets, none // nothing of from runs: nothing to fall back to
	}
	for _, ep := range old {
		targets = append(targets, adminapi.Target{URL: ep.Target, Weight: 1, Group: string(from.Color)})
	}
	return targets, &adminapi.Split{Percent: map[string]int{string(to.Color): 100}, Fallback: string(from.Color)}
}

// removeFromPool takes d's replicas out of the gateway pool once drained,
// which ends the fallback to them. It leaves the pool alone when d is all it holds.
func (p *Platform) removeFromPool(ctx context.Context, gw Gateway, pool adminapi.Pool, mine map[string]bool) error {
	var keep []adminapi.Target
	for _, t := range pool.Targets {
		if !mine[t.URL] {
			keep = append(keep, adminapi.Target{URL: t.URL, Weight: t.Weight, Group: t.Group})
		}
	}
	if len(keep) == len(pool.Targets) || len(keep) == 0 {
		return nil
	}
	_, err := gw.ReplaceTargets(ctx, p.opts.Pool, adminapi.ReplaceTargets{Targets: keep, HealthTimeout: units.Duration(p.opts.Rollout.HealthCheck.Timeout.D())})
	if err != nil {
		return fmt.Errorf("removing the previous version from gateway pool %s: %w", p.opts.Pool, err)
	}
	return nil
}

// servingTargets says which of the pool's targets serve clients: those of the
// split's groups with a share, or all of them without a split.
func servingTargets(pool adminapi.Pool) []adminapi.Target {
	if pool.Split == nil || len(pool.Split.Percent) == 0 {
		return pool.Targets
	}
	var out []adminapi.Target
	for _, t := range pool.Targets {
		if pool.Split.Percent[t.Group] > 0 {
			out = append(out, t)
		}
	}
	return out
}
