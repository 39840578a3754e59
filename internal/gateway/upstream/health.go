package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Run probes every target on the health-check interval until ctx ends.
func (p *Pool) Run(ctx context.Context) {
	hc := p.cfg.HealthCheck
	if hc.Path == "" {
		return
	}
	tick := time.NewTicker(hc.Interval.D())
	defer tick.Stop()
	for {
		p.checkAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *Pool) checkAll(ctx context.Context) {
	hc := p.cfg.HealthCheck
	var wg sync.WaitGroup
	for _, t := range p.Targets() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := p.probe(ctx, t) == nil
			p.mu.Lock() // hcPass/hcFail belong to whoever holds mu
			defer p.mu.Unlock()
			if ok {
				t.hcFail = 0
				t.hcPass++
				if t.hcPass >= hc.HealthyThreshold {
					t.healthy.Store(true)
				}
			} else {
				t.hcPass = 0
				t.hcFail++
				if t.hcFail >= hc.UnhealthyThreshold {
					t.healthy.Store(false)
				}
			}
		}()
	}
	wg.Wait()
}

// probe sends one health check to t.
func (p *Pool) probe(ctx context.Context, t *Target) error {
	hc := p.cfg.HealthCheck
	path := hc.Path
	if path == "" {
		path = "/"
	}
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base.String()+path, nil)
	if err != nil {
		return err
	}
	resp, err := t.transport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("probing %s%s: %w", t.url, path, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("probing %s%s: status %d", t.url, path, resp.StatusCode)
	}
	return nil
}

// waitHealthy probes t until it passes HealthyThreshold consecutive checks or ctx ends.
func (p *Pool) waitHealthy(ctx context.Context, t *Target) error {
	need := max(1, p.cfg.HealthCheck.HealthyThreshold)
	every := min(p.cfg.HealthCheck.Interval.D(), 500*time.Millisecond)
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	pass := 0
	var last error
	for {
		if last = p.probe(ctx, t); last == nil {
			pass++
			if pass >= need {
				return nil
			}
		} else {
			pass = 0
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("target %s did not become healthy: %w", t.url, last)
		case <-time.After(every):
		}
	}
}
