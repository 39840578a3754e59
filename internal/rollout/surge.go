package rollout

import (
	"context"
	"errors"
	"fmt"
)

// surging reports whether j replaces its colour in batches of Config.Surge.
func (r *Runner) surging(j Journal) bool {
	return r.Config.Surge > 0 && j.Op == OpRollout && j.From != nil && r.Config.Surge < j.To.Replicas
}

// surge brings To up in batches of Config.Surge, each one healthy and warmed up
// before it takes the place of as many replicas of From. It stops before the
// last batch: the ordinary create, health, warm-up and switch steps finish it.
// A resumed run starts again from the first batch; every call is idempotent.
func (r *Runner) surge(ctx context.Context, j *Journal) error {
	s, ok := r.Platform.(Surger)
	if !ok {
		return errors.New("this target cannot replace replicas in batches (rollout.surge); set surge to 0")
	}
	n, total := r.Config.Surge, j.To.Replicas
	batches := (total + n - 1) / n
	for i, hi := 1, n; hi < total; i, hi = i+1, hi+n {
		batch := j.To
		batch.Replicas = hi
		t0 := r.now()
		fail := func(what string, err error) error {
			return fmt.Errorf("batch %d of %d (%s): %s: %w", i, batches, replicaRange(hi-n, hi), what, err)
		}
		if err := r.Platform.Create(ctx, batch); err != nil {
			return fail("creating", err)
		}
		if err := r.Platform.WaitHealthy(ctx, batch, r.Config.StartupBudget.D()); err != nil {
			return fail("waiting until healthy", err)
		}
		if r.Config.Warmup.Enabled {
			w, err := r.Platform.Warmup(ctx, batch)
			if err != nil {
				return fail("warming up", err)
			}
			j.TTFT = max(j.TTFT, w.TimeToFirstToken)
		}
		// Record before acting: a run killed during the swap must start From again to undo it.
		j.Surged, j.Updated = max(j.Surged, hi), r.now()
		if err := r.Platform.Record(ctx, *j); err != nil {
			return fmt.Errorf("recording batch %d: %w", i, err)
		}
		if err := s.SwitchPart(ctx, j.To, *j.From, hi); err != nil {
			return fail("switching", err)
		}
		r.emit(StepCreate, EventInfo, r.since(t0), fmt.Sprintf("batch %d of %d: %d of %d replica(s) of %s take traffic", i, batches, hi, total, j.To))
	}
	return nil
}

func replicaRange(lo, hi int) string {
	if hi-lo == 1 {
		return fmt.Sprintf("replica %d", hi)
	}
	return fmt.Sprintf("replicas %d-%d", lo+1, hi)
}

// undoSurge puts From back after a surge stopped some of its replicas. The
// host may only have room for one colour and a batch, so it goes in that order:
// traffic onto the replicas of From still running, To removed to free what it
// holds, the stopped replicas of From started again and back in the pool.
func (r *Runner) undoSurge(ctx context.Context, j *Journal) error {
	t0 := r.now()
	if err := r.Platform.Switch(ctx, *j.From, &j.To); err != nil {
		return fmt.Errorf("switching traffic back to the running replicas of %s: %w", j.From, err)
	}
	j.Active = j.From
	if err := r.Platform.Remove(ctx, j.To); err != nil {
		return fmt.Errorf("removing %s: %w", j.To, err)
	}
	r.emit(j.Step, EventInfo, r.since(t0), fmt.Sprintf("traffic back on the running replicas of %s; removed %s", j.From, j.To))
	if err := r.Platform.Create(ctx, *j.From); err != nil {
		return fmt.Errorf("starting the stopped replicas of %s again: %w", j.From, err)
	}
	if err := r.Platform.WaitHealthy(ctx, *j.From, r.Config.StartupBudget.D()); err != nil {
		return fmt.Errorf("waiting for the restarted replicas of %s: %w", j.From, err)
	}
	if err := r.Platform.Switch(ctx, *j.From, &j.To); err != nil {
		return fmt.Errorf("putting every replica of %s back in the pool: %w", j.From, err)
	}
	r.emit(StepSwitch, EventInfo, r.since(t0), "switched traffic back to "+j.From.String())
	return nil
}
