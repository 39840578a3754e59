package compose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/errdefs"
)

// SplitGateway is the part of the gateway's admin API the canary and shadow
// strategies add to Gateway: shares between groups and a mirror.
type SplitGateway interface {
	Gateway
	SetSplit(ctx context.Context, pool string, req adminapi.Split) (adminapi.Pool, error)
	SetShadow(ctx context.Context, pool string, req adminapi.Shadow) (adminapi.Pool, error)
}

var (
	_ rollout.Splitter  = (*Platform)(nil)
	_ rollout.Commander = (*Platform)(nil)
	_ SplitGateway      = (*adminapi.Client)(nil)
)

func (p *Platform) splitGateway() (SplitGateway, error) {
	gw, err := p.gateway()
	if err != nil {
		return nil, err
	}
	sg, ok := gw.(SplitGateway)
	if !ok {
		return nil, errors.New("the gateway client cannot split traffic; use rollout.strategy bluegreen")
	}
	return sg, nil
}

// groupTargets lists d's replicas as gateway targets of d's colour.
func (p *Platform) groupTargets(ctx context.Context, d rollout.Deployment) ([]adminapi.Target, error) {
	eps, err := p.Endpoints(ctx, d)
	if err != nil {
		return nil, err
	}
	out := make([]adminapi.Target, len(eps))
	for i, ep := range eps {
		out[i] = adminapi.Target{URL: ep.Target, Weight: 1, Group: string(d.Color)}
	}
	return out, nil
}

func (p *Platform) replaceTargets(ctx context.Context, gw Gateway, targets []adminapi.Target, drain bool) error {
	hc := p.opts.Rollout.HealthCheck
	_, err := gw.ReplaceTargets(ctx, p.opts.Pool, adminapi.ReplaceTargets{
		Targets:       targets,
		HealthTimeout: units.Duration(max(3*hc.Timeout.D(), 10*time.Second)),
		Drain:         drain,
		DrainTimeout:  p.opts.Rollout.DrainTimeout,
	})
	return err
}

// Join tags the serving replicas with their colour, gives them every request
// by a split, then adds to's replicas, tagged, with no share: no request
// reaches to before its first step, whatever order the gateway applies them.
func (p *Platform) Join(ctx context.Context, to, from rollout.Deployment) error {
	gw, err := p.splitGateway()
	if err != nil {
		return err
	}
	old, err := p.groupTargets(ctx, from)
	if err != nil {
		return err
	}
	fresh, err := p.groupTargets(ctx, to)
	if err != nil {
		return err
	}
	if pool, err := gw.Pool(ctx, p.opts.Pool); err == nil && pool.Split != nil && holds(pool, append(old, fresh...)) {
		return nil // joined already (a resumed run): leave the shares as they are
	}
	if err := p.replaceTargets(ctx, gw, old, false); err != nil {
		return fmt.Errorf("tagging %s in gateway pool %s: %w", from, p.opts.Pool, err)
	}
	split := adminapi.Split{Percent: map[string]int{string(from.Color): 100, string(to.Color): 0},
		Sticky: p.opts.Rollout.Canary.Sticky, Fallback: string(from.Color)}
	if _, err := gw.SetSplit(ctx, p.opts.Pool, split); err != nil {
		return fmt.Errorf("splitting gateway pool %s: %w", p.opts.Pool, err)
	}
	if err := p.replaceTargets(ctx, gw, append(old, fresh...), false); err != nil {
		return fmt.Errorf("adding %s to gateway pool %s: %w", to, p.opts.Pool, err)
	}
	return nil
}

// holds reports whether pool has every one of targets, in its group.
func holds(pool adminapi.Pool, targets []adminapi.Target) bool {
	in := map[string]string{}
	for _, t := range pool.Targets {
		in[t.URL] = t.Group
	}
	for _, t := range targets {
		if g, ok := in[t.URL]; !ok || g != t.Group {
			return false
		}
	}
	return true
}

// SetSplit sets each colour's share of the pool's requests in one admin call.
func (p *Platform) SetSplit(ctx context.Context, percent map[rollout.Color]int, sticky string, fallback rollout.Color) error {
	gw, err := p.splitGateway()
	if err != nil {
		return err
	}
	split := adminapi.Split{Percent: map[string]int{}, Sticky: sticky, Fallback: string(fallback)}
	for c, v := range percent {
		split.Percent[string(c)] = v
	}
	_, err = gw.SetSplit(ctx, p.opts.Pool, split)
	return err
}

// SetShadow mirrors percent of the pool's requests to colour c; 0 stops it.
func (p *Platform) SetShadow(ctx context.Context, c rollout.Color, percent int) error {
	gw, err := p.splitGateway()
	if err != nil {
		return err
	}
	sh := adminapi.Shadow{Group: string(c), Percent: percent}
	if percent == 0 {
		// No group and no share removes the mirror; a group at 0% would stay
		// installed and bar that group from taking a share of the split.
		sh = adminapi.Shadow{}
	}
	_, err = gw.SetShadow(ctx, p.opts.Pool, sh)
	return err
}

// Keep leaves keep's replicas alone in the pool, drains drop's, then clears
// the mirror and the split (a Split without shares).
func (p *Platform) Keep(ctx context.Context, keep, drop rollout.Deployment) error {
	gw, err := p.splitGateway()
	if err != nil {
		return err
	}
	targets, err := p.groupTargets(ctx, keep)
	if err != nil {
		return err
	}
	if err := p.replaceTargets(ctx, gw, targets, true); err != nil {
		return fmt.Errorf("leaving %s alone in gateway pool %s: %w", keep, p.opts.Pool, err)
	}
	if _, err := gw.SetShadow(ctx, p.opts.Pool, adminapi.Shadow{}); err != nil {
		return fmt.Errorf("clearing the mirror of gateway pool %s: %w", p.opts.Pool, err)
	}
	if _, err := gw.SetSplit(ctx, p.opts.Pool, adminapi.Split{}); err != nil {
		return fmt.Errorf("clearing the split of gateway pool %s: %w", p.opts.Pool, err)
	}
	return nil
}

// GroupStats reads each colour's figures from the gateway over the window.
func (p *Platform) GroupStats(ctx context.Context, window time.Duration) ([]rollout.GroupStats, error) {
	gw, err := p.gateway()
	if err != nil {
		return nil, err
	}
	s, err := gw.Stats(ctx, p.opts.Pool, window)
	if err != nil {
		return nil, fmt.Errorf("reading gateway stats: %w", err)
	}
	return GroupStatsOf(s), nil
}

// GroupStatsOf turns the gateway's per-group figures into the rollout's.
func GroupStatsOf(s adminapi.Stats) []rollout.GroupStats {
	secs := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	out := make([]rollout.GroupStats, 0, len(s.ByGroup))
	for _, g := range s.ByGroup {
		out = append(out, rollout.GroupStats{Color: rollout.Color(g.Group), Shadow: g.Shadow, Requests: g.Requests, Errors: g.Errors, Dropped: g.Dropped,
			TTFTP95: secs(g.TTFTP95Seconds), TPOTP95: secs(g.TPOTP95Seconds), TokensPerSecond: g.TokensPerSecond,
			TTFTP95Low: secs(g.TTFTP95LowSeconds), TPOTP95Low: secs(g.TPOTP95LowSeconds),
			OutputTokensP50: g.OutputTokensP50, OutputTokensMean: g.OutputTokensMean, FinishReasons: g.FinishReasons})
	}
	return out
}

// Operator commands live in one state container per service, replaced by each new command.
const (
	kindCommand  = "command"
	labelCommand = "aideploy.command" // operator command, JSON
)

func (p *Platform) commandName() string {
	return fmt.Sprintf("%s-%s-aideploy-command", p.opts.Project, p.opts.Service)
}

// SendCommand leaves c for the running rollout, replacing an unread command.
func (p *Platform) SendCommand(ctx context.Context, c rollout.Command) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := p.docker.ContainerRemove(ctx, p.commandName(), container.RemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("replacing the unread command: %w", err)
	}
	labels := p.baseLabels(kindCommand)
	labels[labelCommand] = string(b)
	if err := p.createStateContainer(ctx, p.commandName(), labels); err != nil {
		return fmt.Errorf("leaving the %s command: %w", c.Verb, err)
	}
	return nil
}

// TakeCommand reads the command left since the last call and removes it; nil when none.
func (p *Platform) TakeCommand(ctx context.Context) (*rollout.Command, error) {
	in, err := p.docker.ContainerInspect(ctx, p.commandName())
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading operator commands: %w", err)
	}
	if err := p.docker.ContainerRemove(ctx, in.ID, container.RemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("taking the operator command: %w", err)
	}
	var c rollout.Command
	if err := json.Unmarshal([]byte(in.Config.Labels[labelCommand]), &c); err != nil {
		return nil, fmt.Errorf("reading the operator command %s: %w", p.commandName(), err)
	}
	return &c, nil
}
