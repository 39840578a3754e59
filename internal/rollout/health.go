package rollout

import (
	"context"
	"fmt"
	"time"
)

// healthPollEvery is how often the health step counts replicas for its
// progress line; healthNoteEvery is how often an unchanged count is printed
// again, so a plain log still shows the startup budget running down.
const (
	healthPollEvery = 2 * time.Second
	healthNoteEvery = 30 * time.Second
)

// HealthCount is how the replicas of a deployment stand while the health step waits.
type HealthCount struct {
	Want    int // replicas asked for
	Ready   int // answering their health check
	Loading int // alive but not ready yet (a 503 counts as loading until the startup budget)
	Waiting int // not placed yet: waiting for a node (rollout.capacity: wait)
}

// HealthCounter is a Platform that can count a deployment's replicas by
// health, so the health step can say how far it is and how long the startup
// budget still runs: a replica that answers 503 is waited for until the budget
// is spent, and a user watching a model load should see that deadline.
type HealthCounter interface {
	CountHealthy(ctx context.Context, d Deployment) (HealthCount, error)
}

// HealthProgress is one progress line of the health step.
type HealthProgress struct {
	HealthCount
	BudgetLeft time.Duration
}

// String reads e.g. "2/3 healthy, 1 loading, budget 8m12s left".
func (p HealthProgress) String() string {
	s := fmt.Sprintf("%d/%d healthy", p.Ready, p.Want)
	if p.Loading > 0 {
		s += fmt.Sprintf(", %d loading", p.Loading)
	}
	if p.Waiting > 0 {
		s += fmt.Sprintf(", %d waiting for a node", p.Waiting)
	}
	left := max(p.BudgetLeft, 0).Round(time.Second)
	return s + fmt.Sprintf(", budget %s left", left)
}

// waitHealthy runs the platform's WaitHealthy for d and, where the platform
// can count replicas, reports progress lines on the health step until it returns.
func (r *Runner) waitHealthy(ctx context.Context, d Deployment) error {
	budget := r.Config.StartupBudget.D()
	hc, ok := r.Platform.(HealthCounter)
	if !ok {
		return r.Platform.WaitHealthy(ctx, d, budget)
	}
	deadline := r.now().Add(budget)
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.reportHealth(pctx, hc, d, deadline)
	}()
	err := r.Platform.WaitHealthy(ctx, d, budget)
	stop()
	<-done // no progress line after the step's own result
	return err
}

// reportHealth emits a progress line when the count changes, and at least
// every healthNoteEvery, until ctx ends.
func (r *Runner) reportHealth(ctx context.Context, hc HealthCounter, d Deployment, deadline time.Time) {
	var last HealthCount
	var lastAt time.Time
	for {
		c, err := hc.CountHealthy(ctx, d)
		if ctx.Err() != nil {
			return
		}
		now := r.now()
		if err == nil && (lastAt.IsZero() || c != last || now.Sub(lastAt) >= healthNoteEvery) {
			last, lastAt = c, now
			r.emit(StepHealthy, EventProgress, 0, HealthProgress{HealthCount: c, BudgetLeft: deadline.Sub(now)}.String())
		}
		if r.sleep(ctx, healthPollEvery) != nil {
			return
		}
	}
}
