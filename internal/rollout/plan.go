package rollout

import (
	"context"
	"errors"
	"fmt"
)

type plan struct {
	journal Journal
	noop    bool
	summary string
}

// plan decides what req does against st; it changes nothing.
func (r *Runner) plan(ctx context.Context, st State, req Request) (plan, error) {
	active := st.Active()
	var to Deployment
	coldStart := false
	switch req.Op {
	case OpRollout:
		if p := st.Pending(); p != nil {
			if pp, ok := r.planAfterInterrupted(st, req, *p); ok {
				return pp, nil
			}
		}
		image := req.Image
		if image == "" {
			if active == nil {
				return plan{}, errors.New("nothing is deployed yet: give the image to deploy with --image IMAGE:TAG")
			}
			image = active.Image
		}
		replicas := req.Replicas
		if replicas <= 0 {
			replicas = 1
			if active != nil {
				replicas = active.Replicas
			}
		}
		// Never fewer than serve now under the autoscaler or a prewarm: a
		// rollout mid-peak must not shrink the fleet to the file's count.
		replicas = max(replicas, st.Floor)
		if active != nil && st.Pending() == nil && active.Image == image && active.Replicas == replicas && active.ConfigHash == req.ConfigHash {
			return plan{noop: true, journal: Journal{To: *active, Active: active},
				summary: fmt.Sprintf("%s already serves %s with %d replica(s) and the same configuration: nothing to do", active.Color, image, replicas)}, nil
		}
		if _, ok := r.Platform.(Surger); active != nil && r.Config.Surge > 0 && !ok {
			return plan{}, errors.New("this target cannot replace replicas in batches (rollout.surge); set surge to 0")
		}
		if err := r.progressiveAllowed(ctx, active != nil); err != nil {
			return plan{}, err
		}
		var c Color
		if active != nil {
			c = active.Color
		}
		to = Deployment{Color: c.Other(), Revision: maxRevision(st) + 1, Image: image, Replicas: replicas, ConfigHash: req.ConfigHash}
	case OpRollback:
		if p := st.Pending(); p != nil {
			return plan{journal: *p, summary: fmt.Sprintf("roll back the interrupted %s to %s", p.Op, p.To)}, nil
		}
		if active == nil {
			return plan{}, errors.New("nothing is deployed: there is nothing to roll back")
		}
		prev := previous(st, *active)
		if prev == nil {
			return plan{}, fmt.Errorf("%s is the only revision on record: there is nothing to roll back to", active)
		}
		to = *prev
		if in, ok := st.Instance(prev.Revision); st.LiveKnown && (!ok || in.Running == 0) {
			coldStart = true
		}
	default:
		return plan{}, fmt.Errorf("unknown operation %q", req.Op)
	}
	j := Journal{
		ID:      fmt.Sprintf("r%d-%s-%d", to.Revision, req.Op, r.now().UnixMilli()),
		Op:      req.Op,
		Step:    StepCheck,
		Status:  StatusRunning,
		To:      to,
		Started: r.now(),
	}
	if req.Op == OpRollout && r.Config.Strategy != StrategyBlueGreen {
		j.Strategy = r.Config.Strategy
	}
	if _, ok := r.Platform.(Restorer); ok {
		for _, in := range st.Instances {
			if in.Color == to.Color && in.Revision != to.Revision {
				j.Replaced = &in
			}
		}
	}
	summary := fmt.Sprintf("first deploy: %s", to)
	if active != nil {
		a := *active
		j.From, j.Active = &a, &a
		summary = fmt.Sprintf("%s from %s to %s", req.Op, a, to)
	}
	if j.progressive() {
		summary += " — " + r.progressiveSummary()
	}
	if p := st.Pending(); p != nil && req.Op == OpRollout {
		summary = fmt.Sprintf("undo the interrupted %s to %s, then %s", p.Op, p.To, summary)
	}
	if coldStart {
		summary += fmt.Sprintf(" — a cold start: no replica of r%d runs any more (kept warm only for rollout.keepWarm), so its model loads again", to.Revision)
	}
	return plan{journal: j, summary: summary}, nil
}

// previous returns the deployment that served before active, newest first in the journals.
func previous(st State, active Deployment) *Deployment {
	for _, j := range st.Journals {
		cands := []*Deployment{j.From}
		if j.Status == StatusSucceeded {
			cands = []*Deployment{&j.To, j.From}
		}
		for _, d := range cands {
			if d != nil && d.Revision != active.Revision {
				c := *d
				return &c
			}
		}
	}
	return nil
}

func maxRevision(st State) int {
	n := 0
	for _, in := range st.Instances {
		n = max(n, in.Revision)
	}
	for _, j := range st.Journals {
		n = max(n, j.To.Revision)
		if j.From != nil {
			n = max(n, j.From.Revision)
		}
	}
	return n
}

// planAfterInterrupted describes a rollout request made while an interrupted
// run is pending, as recoverPending will act on it: a resume is that run, not
// a new revision. ok is false when the run undoes the interrupted one and then
// plans the request as usual; the caller then plans it and says so first.
func (r *Runner) planAfterInterrupted(st State, req Request, p Journal) (plan, bool) {
	switch pendingActionFor(p, req) {
	case pendingResume:
		return plan{journal: p, summary: fmt.Sprintf("resume the interrupted %s to %s at step %s", p.Op, p.To, p.Step)}, true
	case pendingFinish:
		image := req.Image
		if image == "" {
			image = p.To.Image
		}
		return plan{journal: p, summary: fmt.Sprintf("finish the interrupted %s to %s (traffic may already be on it), then roll out %s from it", p.Op, p.To, image)}, true
	}
	return plan{}, false
}
