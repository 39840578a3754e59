package k8s

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// Canary and shadow on Kubernetes run through the gateway pods, as the
// switch does: every ready gateway pod's default pool holds both colours'
// headless Services as dns+ targets, each in its colour's group, and every
// share, mirror and end of the trial is one admin call per pod, through the
// API server's pod proxy, made on all pods at once after every pod answered.
// Between the first and the last pod's call (milliseconds) the pods may
// apply different shares. A gateway pod that starts during the trial reads
// the ConfigMap, which names the serving colour only, and sends it every
// request until the trial ends: its requests count for the serving colour.
//
// Without the gateway (gateway.enabled: false) traffic moves by the active
// Service's selector, which can neither share requests by percent (only by
// the ratio of the colours' replicas, in steps of one replica) nor measure
// each colour apart: there is no analysis to judge a step by, so canary and
// shadow are refused there.

var (
	_ rollout.Splitter     = (*Platform)(nil)
	_ rollout.Commander    = (*Platform)(nil)
	_ rollout.SplitRefuser = (*Platform)(nil)
)

// errSelectorSplit refuses canary and shadow without the gateway.
var errSelectorSplit = errors.New("canary and shadow rollouts on Kubernetes run through the gateway, which shares requests between the versions and measures each; " +
	"with gateway.enabled: false traffic moves by the Service selector, which can do neither: set gateway.enabled: true and run aideploy apply, or use --strategy bluegreen")

// SplitRefusal refuses canary and shadow before a rollout changes anything
// when traffic moves by the Service selector: the gateway is off, or not
// applied.
func (p *Platform) SplitRefusal(ctx context.Context) error {
	if !p.o.Config.Gateway.OnKubernetes() {
		return errSelectorSplit
	}
	_, err := p.splitMode(ctx)
	return err
}

// splitGateway returns the ready gateway pods, or why canary and shadow
// cannot run here.
func (p *Platform) splitGateway(ctx context.Context) ([]gatewayPod, error) {
	if _, err := p.splitMode(ctx); err != nil {
		return nil, err
	}
	return p.gatewayPods(ctx)
}

// splitMode reads how traffic moves, and refuses the Service selector.
func (p *Platform) splitMode(ctx context.Context) (TrafficView, error) {
	mode, err := p.trafficMode(ctx)
	if err != nil {
		return mode, err
	}
	if mode.Mode != TrafficGateway {
		if mode.Note != "" {
			return mode, fmt.Errorf("%w (%s)", errSelectorSplit, mode.Note)
		}
		return mode, errSelectorSplit
	}
	return mode, nil
}

// splitPods returns the ready gateway pods, each of which answered for the
// default pool: nothing moves unless every one can.
func (p *Platform) splitPods(ctx context.Context) ([]gatewayPod, error) {
	pods, err := p.splitGateway(ctx)
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, gp := range pods {
		g.Go(func() error {
			if _, err := gp.admin.Pool(gctx, adminapi.DefaultPool); err != nil {
				return fmt.Errorf("gateway pod %s: %w", gp.name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("nothing changed in the gateway: %w", err)
	}
	return pods, nil
}

// onEveryPod runs do on every gateway pod at once; an error names the pods
// that did it and those that did not.
func onEveryPod(ctx context.Context, pods []gatewayPod, what string, do func(ctx context.Context, gp gatewayPod) error) error {
	var mu sync.Mutex
	var done []string
	g, gctx := errgroup.WithContext(ctx)
	for _, gp := range pods {
		g.Go(func() error {
			if err := do(gctx, gp); err != nil {
				return fmt.Errorf("gateway pod %s: %w", gp.name, err)
			}
			mu.Lock()
			done = append(done, gp.name)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		sort.Strings(done)
		which := ""
		if len(done) > 0 {
			which = ": " + strings.Join(done, ", ")
		}
		return fmt.Errorf("%s (%d of %d gateway pods did%s): %w", what, len(done), len(pods), which, err)
	}
	return nil
}

// joined reports whether pool holds targets of both colours and a split: a
// resumed run leaves its shares as they are.
func joined(pool adminapi.Pool, a, b rollout.Color) bool {
	if pool.Split == nil {
		return false
	}
	var hasA, hasB bool
	for _, t := range pool.Targets {
		hasA = hasA || (t.Group == string(a) && !t.Draining)
		hasB = hasB || (t.Group == string(b) && !t.Draining)
	}
	return hasA && hasB
}

// Join puts to's headless Service in every gateway pod's default pool beside
// from's, each in its colour's group, with a split that keeps every request
// on from, in one swap per pod: no request reaches to before the first step.
func (p *Platform) Join(ctx context.Context, to, from rollout.Deployment) error {
	pods, err := p.splitPods(ctx)
	if err != nil {
		return err
	}
	gate := p.healthGate()
	if err := p.waitEndpoints(ctx, to, gate); err != nil {
		return err
	}
	req := adminapi.ReplaceTargets{
		Targets: []adminapi.Target{
			{URL: GatewayTarget(p.o.Config, from.Color), Weight: 1, Group: string(from.Color)},
			{URL: GatewayTarget(p.o.Config, to.Color), Weight: 1, Group: string(to.Color)},
		},
		HealthTimeout: units.Duration(gate),
		Split: &adminapi.Split{Percent: map[string]int{string(from.Color): 100, string(to.Color): 0},
			Sticky: p.o.Config.Rollout.Canary.Sticky, Fallback: string(from.Color)},
	}
	err = onEveryPod(ctx, pods, fmt.Sprintf("adding %s to the gateway beside %s", to, from), func(ctx context.Context, gp gatewayPod) error {
		if pool, err := gp.admin.Pool(ctx, adminapi.DefaultPool); err == nil && joined(pool, from.Color, to.Color) {
			return nil
		}
		_, err := gp.admin.ReplaceTargets(ctx, adminapi.DefaultPool, req)
		return err
	})
	if err != nil {
		return err
	}
	p.logf("gateway: %d pod(s) hold %s beside %s, with no share yet", len(pods), to, from)
	return nil
}

// SetSplit sets each colour's share on every gateway pod.
func (p *Platform) SetSplit(ctx context.Context, percent map[rollout.Color]int, sticky string, fallback rollout.Color) error {
	pods, err := p.splitPods(ctx)
	if err != nil {
		return err
	}
	split := adminapi.Split{Percent: map[string]int{}, Sticky: sticky, Fallback: string(fallback)}
	for c, v := range percent {
		split.Percent[string(c)] = v
	}
	return onEveryPod(ctx, pods, "setting the split", func(ctx context.Context, gp gatewayPod) error {
		_, err := gp.admin.SetSplit(ctx, adminapi.DefaultPool, split)
		return err
	})
}

// SetShadow mirrors percent of every gateway pod's requests to colour c; 0 stops it.
func (p *Platform) SetShadow(ctx context.Context, c rollout.Color, percent int) error {
	pods, err := p.splitPods(ctx)
	if err != nil {
		return err
	}
	sh := adminapi.Shadow{Group: string(c), Percent: percent}
	if percent == 0 {
		sh = adminapi.Shadow{} // no group removes the mirror; a group at 0% would bar it from the split
	}
	return onEveryPod(ctx, pods, "setting the mirror", func(ctx context.Context, gp gatewayPod) error {
		_, err := gp.admin.SetShadow(ctx, adminapi.DefaultPool, sh)
		return err
	})
}

// Keep ends the trial: every gateway pod's default pool holds keep's
// headless Service alone, as after a switch, with no split, drop's pods
// drained; the mirror goes. Beside it, as Switch does, the gateway's
// ConfigMap, the active Service and the HPA follow keep (for an abort they
// stay where they are).
func (p *Platform) Keep(ctx context.Context, keep, drop rollout.Deployment) error {
	pods, err := p.splitPods(ctx)
	if err != nil {
		return err
	}
	gate := p.healthGate()
	req := adminapi.ReplaceTargets{
		Targets:       []adminapi.Target{{URL: GatewayTarget(p.o.Config, keep.Color), Weight: 1}},
		HealthTimeout: units.Duration(gate),
		Drain:         true,
		DrainTimeout:  p.o.Config.Rollout.DrainTimeout,
		Split:         &adminapi.Split{},
	}
	p.mu.Lock()
	p.flipped = time.Now()
	p.mu.Unlock()
	var wg sync.WaitGroup
	var poolErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		poolErr = onEveryPod(ctx, pods, fmt.Sprintf("leaving %s alone in the gateway", keep), func(ctx context.Context, gp gatewayPod) error {
			if _, err := gp.admin.ReplaceTargets(ctx, adminapi.DefaultPool, req); err != nil {
				return err
			}
			_, err := gp.admin.SetShadow(ctx, adminapi.DefaultPool, adminapi.Shadow{})
			return err
		})
	}()
	err = p.pointGatewayConfig(ctx, keep)
	if err == nil {
		err = p.switchSelector(ctx, keep)
	}
	wg.Wait()
	if err := errors.Join(poolErr, err); err != nil {
		return err
	}
	p.logf("gateway: %d pod(s) send the default pool to %s alone, %s drained", len(pods), keep, drop)
	return nil
}

// healthGate is how long a new target may take to pass its health check.
func (p *Platform) healthGate() time.Duration {
	return max(3*p.o.Config.Rollout.HealthCheck.Timeout.D(), 10*time.Second)
}
