package compose

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/errdefs"
	"golang.org/x/sync/errgroup"
)

// Endpoint is one replica: URL is how this host reaches it (a loopback port),
// Target how the gateway does (the same URL, or the container's name on the
// project network when the gateway runs in a container there).
type Endpoint struct {
	Name   string
	URL    string
	Target string
}

// Endpoints lists the running replicas of d with their loopback and gateway URLs.
func (p *Platform) Endpoints(ctx context.Context, d rollout.Deployment) ([]Endpoint, error) {
	cs, err := p.replicas(ctx, d.Revision)
	if err != nil {
		return nil, err
	}
	var out []Endpoint
	for _, c := range cs {
		if c.State != "running" {
			continue
		}
		in, err := p.docker.ContainerInspect(ctx, c.ID)
		if err != nil {
			return nil, fmt.Errorf("inspecting %s: %w", c.Names[0][1:], err)
		}
		u, err := hostURL(in, p.containerPort())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Names[0][1:], err)
		}
		name := c.Names[0][1:]
		out = append(out, Endpoint{Name: name, URL: u, Target: p.targetURL(name, u)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, fmt.Errorf("no replica of %s is running", d)
	}
	return out, nil
}

// targetURL is the gateway's address of the replica named name, whose
// loopback URL is hostURL: Docker's DNS on the project network resolves a
// container's name, so each replica is a target of its own (the service's
// alias would fold every replica, of every revision, into one).
func (p *Platform) targetURL(name, hostURL string) string {
	if !p.opts.GatewayInNetwork {
		return hostURL
	}
	return "http://" + name + ":" + p.containerPort().Port()
}

// Warmup sends the configured request to every replica and times its first token.
func (p *Platform) Warmup(ctx context.Context, d rollout.Deployment) (rollout.WarmupResult, error) {
	eps, err := p.Endpoints(ctx, d)
	if err != nil {
		return rollout.WarmupResult{}, err
	}
	w := p.opts.Rollout.Warmup
	results := make([]rollout.WarmupResult, len(eps))
	g, gctx := errgroup.WithContext(ctx)
	for i, ep := range eps {
		g.Go(func() error {
			r, err := p.warm(gctx, ep.URL+w.Path, w.Body, w.Timeout.D())
			if err != nil {
				return fmt.Errorf("warm-up request POST %s on %s: %w", w.Path, ep.Name, err)
			}
			results[i] = r
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rollout.WarmupResult{}, err
	}
	var out rollout.WarmupResult
	for _, r := range results {
		out.TimeToFirstToken = max(out.TimeToFirstToken, r.TimeToFirstToken)
		out.Total = max(out.Total, r.Total)
	}
	return out, nil
}

func (p *Platform) warm(ctx context.Context, url, body string, timeout time.Duration) (rollout.WarmupResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return rollout.WarmupResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := p.http.Do(req)
	if err != nil {
		return rollout.WarmupResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return rollout.WarmupResult{}, fmt.Errorf("answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var res rollout.WarmupResult
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		events := 0
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "data:") {
				continue
			}
			if events == 0 {
				res.TimeToFirstToken = time.Since(start)
			}
			events++
			if strings.Contains(line, `"error"`) {
				return res, fmt.Errorf("the stream carried an error: %s", strings.TrimPrefix(line, "data:"))
			}
		}
		if err := sc.Err(); err != nil {
			return res, fmt.Errorf("reading the stream: %w", err)
		}
		if events == 0 {
			return res, errors.New("the stream ended without a single event")
		}
	} else {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return res, fmt.Errorf("reading the answer: %w", err)
		}
		res.TimeToFirstToken = time.Since(start)
	}
	res.Total = time.Since(start)
	return res, nil
}

func (p *Platform) gateway() (Gateway, error) {
	if p.opts.Gateway == nil {
		return nil, errors.New("no gateway admin API is configured; start `aideploy gateway serve` and set its admin address")
	}
	return p.opts.Gateway, nil
}

// Switch replaces the gateway pool's targets with to's replicas in one atomic
// swap, health-gated by the gateway, and drains what leaves the pool. From's
// replicas stay as the fallback until Drain (see fallback.go).
func (p *Platform) Switch(ctx context.Context, to rollout.Deployment, from *rollout.Deployment) error {
	gw, err := p.gateway()
	if err != nil {
		return err
	}
	eps, err := p.Endpoints(ctx, to)
	if err != nil {
		return err
	}
	targets, split := p.switchTargets(ctx, to, from, eps) // see fallback.go
	hc := p.opts.Rollout.HealthCheck
	_, err = gw.ReplaceTargets(ctx, p.opts.Pool, adminapi.ReplaceTargets{
		Targets:       targets,
		HealthTimeout: units.Duration(max(3*hc.Timeout.D(), 10*time.Second)),
		Drain:         true,
		DrainTimeout:  p.opts.Rollout.DrainTimeout,
		Split:         split,
	})
	if err != nil {
		return fmt.Errorf("switching gateway pool %s to %s: %w", p.opts.Pool, to, err)
	}
	return nil
}

// Drain waits until no replica of d is left in the gateway pool with requests
// in flight, then takes them out of the pool: after the watch window the
// previous version is no longer the fallback.
func (p *Platform) Drain(ctx context.Context, d rollout.Deployment, timeout time.Duration) error {
	gw, err := p.gateway()
	if err != nil {
		return err
	}
	pool, err := gw.Pool(ctx, p.opts.Pool)
	if err != nil {
		return fmt.Errorf("reading gateway pool %s: %w", p.opts.Pool, err)
	}
	eps, err := p.Endpoints(ctx, d)
	if err != nil {
		return nil // nothing of d runs: nothing to drain
	}
	in := map[string]bool{}
	for _, t := range pool.Targets {
		in[t.URL] = true
	}
	for _, ep := range eps {
		if !in[ep.Target] {
			continue
		}
		r, err := gw.Drain(ctx, p.opts.Pool, adminapi.Drain{URL: ep.Target, Timeout: units.Duration(timeout)})
		if err != nil {
			return fmt.Errorf("draining %s: %w", ep.Name, err)
		}
		if !r.Drained {
			return fmt.Errorf("%s still had %d request(s) in flight after %s (rollout.drainTimeout)", ep.Name, r.Remaining, timeout)
		}
	}
	mine := map[string]bool{}
	for _, ep := range eps {
		mine[ep.Target] = true
	}
	return p.removeFromPool(ctx, gw, pool, mine)
}

// Stats reads the gateway pool's traffic over the window.
func (p *Platform) Stats(ctx context.Context, window time.Duration) (rollout.Stats, error) {
	gw, err := p.gateway()
	if err != nil {
		return rollout.Stats{}, err
	}
	s, err := gw.Stats(ctx, p.opts.Pool, window)
	if err != nil {
		return rollout.Stats{}, fmt.Errorf("reading gateway stats: %w", err)
	}
	out := rollout.Stats{Requests: s.Requests, Errors: s.Errors, P99: seconds(s.P99Seconds)}
	// Requests refused because every target is ejected never reach a target, so
	// the pool's figures miss them: the targets' state tells.
	pool, err := gw.Pool(ctx, p.opts.Pool)
	if err != nil {
		return rollout.Stats{}, fmt.Errorf("reading gateway pool %s: %w", p.opts.Pool, err)
	}
	out.TTFTP95 = seconds(s.TTFTP95Seconds(pool.ServingGroups()))
	// The previous version, there as the fallback, takes no traffic of its own.
	for _, t := range servingTargets(pool) {
		if t.Draining {
			continue
		}
		out.Targets++
		if !t.Healthy || t.Breaker == "open" {
			out.Unhealthy++
		}
	}
	return out, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Healthy probes each endpoint's health path once.
func (p *Platform) Healthy(ctx context.Context, eps []Endpoint) []bool {
	out := make([]bool, len(eps))
	hc := p.opts.Rollout.HealthCheck
	for i, ep := range eps {
		code, _, err := p.probe(ctx, ep.URL+hc.Path, hc.Timeout.D())
		out[i] = err == nil && code/100 == 2
	}
	return out
}

// SwitchPart puts the first n replicas of to in the gateway pool in place of the
// first n of from, drains those, and stops them so their GPUs are free for the
// next batch. The rest of from keeps serving; calling it again changes nothing.
func (p *Platform) SwitchPart(ctx context.Context, to, from rollout.Deployment, n int) error {
	gw, err := p.gateway()
	if err != nil {
		return err
	}
	fresh, retiring := map[string]bool{}, map[string]bool{}
	for i := range n {
		fresh[p.replicaName(to, i)] = true
		retiring[p.replicaName(from, i)] = true
	}
	newEps, err := p.Endpoints(ctx, to)
	if err != nil {
		return err
	}
	var targets []adminapi.Target
	for _, ep := range newEps {
		if fresh[ep.Name] {
			targets = append(targets, adminapi.Target{URL: ep.Target, Weight: 1})
		}
	}
	if len(targets) != n {
		return fmt.Errorf("only %d of the first %d replicas of %s are running", len(targets), n, to)
	}
	oldEps, err := p.Endpoints(ctx, from)
	if err != nil && n < from.Replicas {
		return err
	}
	for _, ep := range oldEps {
		if !retiring[ep.Name] {
			targets = append(targets, adminapi.Target{URL: ep.Target, Weight: 1})
		}
	}
	hc := p.opts.Rollout.HealthCheck
	_, err = gw.ReplaceTargets(ctx, p.opts.Pool, adminapi.ReplaceTargets{
		Targets:       targets,
		HealthTimeout: units.Duration(max(3*hc.Timeout.D(), 10*time.Second)),
		Drain:         true,
		DrainTimeout:  p.opts.Rollout.DrainTimeout,
	})
	if err != nil {
		return fmt.Errorf("moving %d replica(s) of gateway pool %s to %s: %w", n, p.opts.Pool, to, err)
	}
	cs, err := p.replicas(ctx, from.Revision)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if !retiring[c.Names[0][1:]] || (c.State != "running" && c.State != "restarting" && c.State != "paused") {
			continue
		}
		if err := p.docker.ContainerStop(ctx, c.ID, container.StopOptions{}); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("stopping %s: %w", c.Names[0][1:], err)
		}
	}
	return nil
}
