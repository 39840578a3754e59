package compose

import (
	"context"
	"fmt"

	"github.com/aideploy/aideploy/internal/rollout"
)

// The health step's progress line needs the count.
var _ rollout.HealthCounter = (*Platform)(nil)

// CountHealthy counts d's replicas by health for the health step's progress
// line: a replica answering 2xx is ready, any other replica that exists is
// still loading (WaitHealthy decides when one has failed).
func (p *Platform) CountHealthy(ctx context.Context, d rollout.Deployment) (rollout.HealthCount, error) {
	cs, err := p.replicas(ctx, d.Revision)
	if err != nil {
		return rollout.HealthCount{}, err
	}
	hc := p.opts.Rollout.HealthCheck
	n := rollout.HealthCount{Want: d.Replicas}
	for _, c := range cs {
		in, err := p.docker.ContainerInspect(ctx, c.ID)
		if err != nil {
			return rollout.HealthCount{}, fmt.Errorf("inspecting %s: %w", c.ID, err)
		}
		if url, err := hostURL(in, p.containerPort()); err == nil {
			if code, _, err := p.probe(ctx, url+hc.Path, hc.Timeout.D()); err == nil && code/100 == 2 {
				n.Ready++
				continue
			}
		}
		n.Loading++
	}
	return n, nil
}
