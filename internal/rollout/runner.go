package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// cleanupTimeout bounds the undo work that runs after the caller's context is gone.
const cleanupTimeout = 2 * time.Minute

// Request says what a run should do.
type Request struct {
	Op          Op
	Image       string // rollout: the image to deploy; empty means the active image again
	Replicas    int    // 0 means as many as the active deployment has, or 1
	ConfigHash  string // hash of the rendered service; a change redeploys the same image
	ForceUnlock bool   // break the lock whoever holds it
	DryRun      bool   // plan only
}

// Result reports a run.
type Result struct {
	Journal Journal // the final record; its To is what the run deployed
	Summary string  // one line: what the run did, or would do with DryRun
	NoOp    bool    // nothing to do
	Resumed bool    // an interrupted run was picked up
	Warmup  WarmupResult
	// HealthyToSwitched is the time from "new colour healthy" to "all traffic on it".
	HealthyToSwitched time.Duration
}

// Runner drives one service through rollouts and rollbacks.
type Runner struct {
	Platform Platform
	Config   Config
	Holder   Holder                                           // who runs this; Op and Image are filled per run
	Observe  func(Event)                                      // progress; nil means none
	Now      func() time.Time                                 // nil means time.Now
	Sleep    func(ctx context.Context, d time.Duration) error // nil means a timer
}

// Run plans, locks and executes req, undoing or resuming what an interrupted run left.
func (r *Runner) Run(ctx context.Context, req Request) (Result, error) {
	st, err := r.Platform.Current(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("reading the current deployment: %w", err)
	}
	p, err := r.plan(ctx, st, req)
	if err != nil {
		r.emit(StepPlan, EventFailed, 0, err.Error())
		return Result{}, err
	}
	r.emit(StepPlan, EventInfo, 0, p.summary)
	if req.DryRun || p.noop {
		return Result{Journal: p.journal, Summary: p.summary, NoOp: p.noop}, nil
	}

	h := r.Holder
	h.Op, h.Image, h.Since = req.Op, p.journal.To.Image, r.now()
	if req.Image != "" {
		h.Image = req.Image // the image asked for, even when an interrupted run goes first
	}
	t0 := r.now()
	r.emit(StepLock, EventStart, 0, "")
	if err := r.Platform.Lock(ctx, h, req.ForceUnlock); err != nil {
		r.emit(StepLock, EventFailed, r.since(t0), err.Error())
		return Result{}, fmt.Errorf("taking the rollout lock: %w", err)
	}
	r.emit(StepLock, EventDone, r.since(t0), "held by "+h.String())
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := r.Platform.Unlock(uctx, h); err != nil {
			r.emit(StepLock, EventInfo, 0, "releasing the lock: "+err.Error())
		}
	}()

	// Under the lock the state can no longer change behind our back: read it again.
	if st, err = r.Platform.Current(ctx); err != nil {
		return Result{}, fmt.Errorf("reading the current deployment: %w", err)
	}
	if pending := st.Pending(); pending != nil {
		res, done, err := r.recoverPending(ctx, *pending, req, h)
		if err != nil || done {
			return res, err
		}
		if st, err = r.Platform.Current(ctx); err != nil {
			return Result{}, fmt.Errorf("reading the current deployment: %w", err)
		}
	}
	if p, err = r.plan(ctx, st, req); err != nil {
		return Result{}, err
	}
	if p.noop {
		return Result{Journal: p.journal, Summary: p.summary, NoOp: true}, nil
	}
	p.journal.Holder = h
	return r.execute(ctx, p.journal, StepCheck)
}

// recoverPending deals with a run that was interrupted: the same request resumes it,
// a different one undoes it (or finishes it when traffic may already have moved).
// done reports that the request itself is satisfied.
func (r *Runner) recoverPending(ctx context.Context, j Journal, req Request, h Holder) (Result, bool, error) {
	j.Holder = h
	switch pendingActionFor(j, req) {
	case pendingResume:
		r.emit(StepPlan, EventInfo, 0, fmt.Sprintf("resuming the interrupted %s to %s at step %s", j.Op, j.To, j.Step))
		res, err := r.execute(ctx, j, j.Step)
		res.Resumed = true
		return res, true, err
	case pendingFinish:
		r.emit(StepPlan, EventInfo, 0, fmt.Sprintf("finishing the interrupted %s to %s (traffic may already be on it) before the new request", j.Op, j.To))
		res, err := r.execute(ctx, j, j.Step)
		return res, false, err
	default:
		r.emit(StepPlan, EventInfo, 0, fmt.Sprintf("undoing the interrupted %s to %s", j.Op, j.To))
		if err := r.undo(ctx, &j); err != nil {
			return Result{}, true, fmt.Errorf("undoing the interrupted %s to %s: %w", j.Op, j.To, err)
		}
		j.Status, j.Reason, j.Updated = StatusRolledBack, "interrupted, undone by a later run", r.now()
		if err := r.Platform.Record(ctx, j); err != nil {
			return Result{}, true, fmt.Errorf("recording the undo: %w", err)
		}
		// A rollback of an interrupted rollout is exactly this undo.
		return Result{Journal: j, Summary: "undid the interrupted " + string(j.Op)}, req.Op == OpRollback, nil
	}
}

// pendingAction is what a run does first about an interrupted one.
type pendingAction int

const (
	pendingResume pendingAction = iota // the same request: carry on where it stopped
	pendingFinish                      // traffic may have moved: finish it, then plan the request
	pendingUndo                        // undo it, then plan the request
)

// pendingActionFor decides what req does about the interrupted run j. The
// plan and the run both ask it, so the plan printed first (and --dry-run, and
// the confirmation prompt) describes what the run then does.
func pendingActionFor(j Journal, req Request) pendingAction {
	same := req.Op == j.Op && (req.Image == "" || req.Image == j.To.Image) && (req.Op == OpRollout || req.Image == "")
	mayHaveSwitched := j.Switched || !j.Step.Before(StepSwitch)
	switch {
	case same:
		return pendingResume
	case mayHaveSwitched && (req.Op == OpRollout || !j.Step.Before(StepDrain)):
		return pendingFinish
	default:
		return pendingUndo
	}
}

// execute runs the steps from start on, recording each before it acts.
func (r *Runner) execute(ctx context.Context, j Journal, start Step) (Result, error) {
	res := Result{Summary: fmt.Sprintf("%s %s", j.Op, j.To)}
	var healthyAt time.Time
	for _, s := range Steps()[stepIndex(start):] {
		if !r.ofStrategy(s, j) {
			continue
		}
		if why := r.skip(s, j); why != "" {
			r.emit(s, EventSkipped, 0, why)
			continue
		}
		j.Step, j.Status, j.Updated = s, StatusRunning, r.now()
		if err := r.Platform.Record(ctx, j); err != nil {
			return res, fmt.Errorf("recording step %s: %w", s, err)
		}
		r.emit(s, EventStart, 0, "")
		t0 := r.now()
		msg, err := r.do(ctx, s, &j, &res)
		if err != nil {
			r.emit(s, EventFailed, r.since(t0), err.Error())
			res.Journal = j
			return res, r.fail(ctx, &res, s, err)
		}
		switch s {
		case StepHealthy:
			healthyAt = r.now()
		case StepSwitch:
			if !healthyAt.IsZero() {
				res.HealthyToSwitched = r.now().Sub(healthyAt)
			}
		}
		r.emit(s, EventDone, r.since(t0), msg)
	}
	j.Status, j.Updated = StatusSucceeded, r.now()
	res.Journal = j
	if err := r.Platform.Record(ctx, j); err != nil {
		return res, fmt.Errorf("recording the result: %w", err)
	}
	return res, nil
}

// ofStrategy reports whether step s belongs to j's strategy at all; a step of
// another strategy is left out silently, not reported as skipped.
func (r *Runner) ofStrategy(s Step, j Journal) bool {
	switch s {
	case StepCanary:
		return j.progressive() && j.Strategy == StrategyCanary
	case StepShadow:
		return j.progressive() && j.Strategy == StrategyShadow
	}
	return true
}

func (r *Runner) skip(s Step, j Journal) string {
	switch {
	case s == StepWarmup && !r.Config.Warmup.Enabled:
		return "warm-up disabled"
	case s == StepWatch && j.From == nil:
		return "first deploy: nothing to switch back to"
	case s == StepWatch && j.Op == OpRollback:
		return "rollback: switching back to a known revision"
	case s == StepWatch && j.progressive() && j.Strategy == StrategyCanary:
		return "the canary analysis judged every step"
	case s == StepWatch && r.Config.Watch.Window <= 0:
		return "watch window is 0"
	case s == StepDrain && j.From == nil:
		return "first deploy: nothing to drain"
	}
	return ""
}

// do runs one step; the message says what it found.
func (r *Runner) do(ctx context.Context, s Step, j *Journal, res *Result) (string, error) {
	p := r.Platform
	switch s {
	case StepCheck:
		return "", p.Check(ctx, j.To, j.From)
	case StepCreate:
		if r.surging(*j) {
			if err := r.surge(ctx, j); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("%d replica(s) of %s", j.To.Replicas, j.To.Image), p.Create(ctx, j.To)
	case StepHealthy:
		return "", r.waitHealthy(ctx, j.To)
	case StepWarmup:
		w, err := p.Warmup(ctx, j.To)
		if err != nil {
			return "", err
		}
		res.Warmup, j.TTFT = w, w.TimeToFirstToken
		return fmt.Sprintf("time to first token %s, total %s", round(w.TimeToFirstToken), round(w.Total)), nil
	case StepCanary:
		return r.canary(ctx, j)
	case StepShadow:
		return r.shadow(ctx, j)
	case StepSwitch:
		if j.progressive() {
			if err := r.promote(ctx, j); err != nil {
				return "", err
			}
		} else if err := p.Switch(ctx, j.To, j.From); err != nil {
			return "", err
		}
		to := j.To
		j.Switched, j.Active, j.Updated = true, &to, r.now()
		// Record at once: a run killed from here on must know traffic moved.
		if err := p.Record(ctx, *j); err != nil {
			return "", fmt.Errorf("recording the switch: %w", err)
		}
		return "all traffic on " + j.To.String(), nil
	case StepWatch:
		return r.watch(ctx)
	case StepDrain:
		if err := p.Drain(ctx, *j.From, r.Config.DrainTimeout.D()); err != nil {
			// Traffic is on the new colour and it is healthy: an unfinished drain is worth a line, not a rollback.
			r.emit(s, EventInfo, 0, "drain incomplete: "+err.Error())
			return "drain incomplete", nil
		}
		return "nothing left in flight on " + j.From.String(), nil
	case StepRetire:
		return r.retire(ctx, j)
	}
	return "", fmt.Errorf("unknown step %q", s)
}

// retire stops the old colour after the scale-down delay and removes revisions beyond KeepRevisions.
func (r *Runner) retire(ctx context.Context, j *Journal) (string, error) {
	if j.From != nil {
		if d := r.Config.ScaleDownDelay.D(); d > 0 && j.Op == OpRollout {
			if err := r.sleep(ctx, d); err != nil {
				return "", err
			}
		}
		if wk, ok := r.Platform.(WarmKeeper); ok && r.Config.KeepWarm > 0 && j.Op == OpRollout {
			until := r.now().Add(r.Config.KeepWarm.D())
			if err := wk.KeepWarm(ctx, *j.From, until); err != nil {
				return "", fmt.Errorf("keeping %s warm: %w", j.From, err)
			}
			r.emit(StepRetire, EventInfo, 0, fmt.Sprintf("%s stays warm until %s for an instant rollback (rollout.keepWarm); a rollback after that is a cold start",
				j.From, until.UTC().Format(time.RFC3339)))
		} else if err := r.Platform.Stop(ctx, *j.From); err != nil {
			return "", fmt.Errorf("stopping %s: %w", j.From, err)
		}
	}
	st, err := r.Platform.Current(ctx)
	if err != nil {
		return "", fmt.Errorf("reading revisions to prune: %w", err)
	}
	keep := map[int]bool{j.To.Revision: true}
	if j.From != nil && r.Config.KeepRevisions > 1 {
		keep[j.From.Revision] = true
	}
	removed := 0
	for _, in := range st.Instances {
		if keep[in.Revision] {
			continue
		}
		if len(keep) < r.Config.KeepRevisions && in.Running == 0 {
			keep[in.Revision] = true
			continue
		}
		if err := r.Platform.Remove(ctx, in.Deployment); err != nil {
			return "", fmt.Errorf("removing old revision %s: %w", in.Deployment, err)
		}
		removed++
	}
	msg := fmt.Sprintf("keeping %d revision(s)", len(keep))
	if j.From != nil {
		msg = "retired " + j.From.String() + ", " + msg
	}
	if removed > 0 {
		msg += fmt.Sprintf(", removed %d", removed)
	}
	return msg, nil
}

// fail undoes what the failed step left, records why, and returns the user-facing error.
func (r *Runner) fail(ctx context.Context, res *Result, s Step, cause error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	j := &res.Journal
	f := &Failure{Op: j.Op, Step: s, Err: cause, To: j.To, From: j.From}
	j.Reason, j.Updated = cause.Error(), r.now()
	if s.Before(StepDrain) {
		if s != StepCheck {
			if err := r.undo(cctx, j); err != nil {
				f.UndoErr = err
			}
		}
		if f.UndoErr == nil {
			j.Status, f.RolledBack = StatusRolledBack, true
		} else {
			j.Status = StatusFailed
		}
	} else {
		j.Status = StatusFailed
	}
	f.Active = j.Active
	if err := r.Platform.Record(cctx, *j); err != nil {
		return errors.Join(f, fmt.Errorf("recording the failure: %w", err))
	}
	return f
}

// undo puts traffic back on From (when it may have moved) and removes To.
func (r *Runner) undo(ctx context.Context, j *Journal) error {
	if j.From != nil && j.Surged > 0 {
		return r.undoSurge(ctx, j)
	}
	if j.progressive() && j.Progress != nil && j.Progress.Joined && !j.Switched {
		if err := r.unsplit(ctx, j); err != nil {
			return err
		}
	}
	if j.From != nil && (j.Switched || !j.Step.Before(StepSwitch)) {
		t0 := r.now()
		if err := r.Platform.Switch(ctx, *j.From, &j.To); err != nil {
			return fmt.Errorf("switching traffic back to %s: %w", j.From, err)
		}
		r.emit(StepSwitch, EventInfo, r.since(t0), "switched traffic back to "+j.From.String())
	}
	j.Active = j.From
	if rs, ok := r.Platform.(Restorer); ok && j.Replaced != nil {
		// The run took over a slot that held something: put it back, never leave less than was there.
		if err := rs.Restore(ctx, *j.Replaced); err != nil {
			return fmt.Errorf("putting %s back in place of %s: %w", j.Replaced.Deployment, j.To, err)
		}
		r.emit(j.Step, EventInfo, 0, fmt.Sprintf("put %s back in place of %s", j.Replaced.Deployment, j.To))
		return nil
	}
	if err := r.Platform.Remove(ctx, j.To); err != nil {
		return fmt.Errorf("removing %s: %w", j.To, err)
	}
	r.emit(j.Step, EventInfo, 0, "removed "+j.To.String())
	return nil
}

func (r *Runner) emit(s Step, k EventKind, elapsed time.Duration, msg string) {
	if r.Observe != nil {
		r.Observe(Event{Time: r.now(), Step: s, Kind: k, Elapsed: elapsed, Message: msg})
	}
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) since(t time.Time) time.Duration { return r.now().Sub(t) }

func (r *Runner) sleep(ctx context.Context, d time.Duration) error {
	if r.Sleep != nil {
		return r.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
