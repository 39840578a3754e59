package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/rollout"
)

type verbOptions struct {
	f      *Factory
	target targetFlags
	Verb   rollout.Verb
	Wait   time.Duration
}

var verbHelp = map[rollout.Verb]string{
	rollout.VerbPromote: "Skip the remaining canary steps (or the shadow): all traffic to the new version, the old one drained",
	rollout.VerbAbort:   "Send all traffic back to the serving version at once, drain and remove the new one",
	rollout.VerbPause:   "Hold the running canary at its share; the step's clock stops, the analysis still aborts a failing version",
	rollout.VerbResume:  "Carry on after a pause, or after a hold on too little data (waiting another maxWait for it)",
}

func newCmdRolloutVerb(f *Factory, verb rollout.Verb, runF func(context.Context, *verbOptions) error) *cobra.Command {
	opts := &verbOptions{f: f, Verb: verb}
	cmd := &cobra.Command{
		Use:   string(verb),
		Short: verbHelp[verb],
		Long: verbHelp[verb] + `.

The command is left for the process running the canary or shadow rollout, which
reads it at its next analysis interval; this command waits until the rollout acts
on it (--wait). When no process runs it (killed), abort undoes the interrupted
rollout itself, and the other verbs wait for ` + "`aideploy rollout`" + ` to resume it.`,
		Example: "  aideploy rollout " + string(verb) + "\n  aideploy rollout " + string(verb) + " --output json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Wait < 0 {
				return UsageErrorf("--wait (%s) must not be negative", opts.Wait)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRolloutVerb(cmd.Context(), opts)
		},
	}
	cmd.Flags().DurationVar(&opts.Wait, "wait", time.Minute, "how long to wait for the running rollout to act on it (0: do not wait)")
	opts.target.register(cmd)
	return cmd
}

// verbView is what a verb reports, for --output json as for a person.
type verbView struct {
	Verb    rollout.Verb     `json:"verb"`
	Sent    bool             `json:"sent"`
	Acted   bool             `json:"acted"`             // the rollout did what was asked
	Running bool             `json:"running"`           // a live process runs the rollout
	Journal *rollout.Journal `json:"journal,omitempty"` // the rollout's record afterwards
	Message string           `json:"message"`
}

func runRolloutVerb(ctx context.Context, o *verbOptions) error {
	t, err := newDeployTarget(ctx, o.f, o.target, nil)
	if err != nil {
		return err
	}
	p := t.runner()
	cm, ok := p.(rollout.Commander)
	if !ok {
		return errors.New("this target runs no canary or shadow rollout (they need the gateway's traffic split); use `aideploy rollback` to undo a blue/green rollout")
	}
	st, err := p.Current(ctx)
	if err != nil {
		return fmt.Errorf("reading the current deployment: %w", err)
	}
	pending := st.Pending()
	switch {
	case pending == nil || pending.Strategy == "" || pending.Strategy == rollout.StrategyBlueGreen:
		return fmt.Errorf("no canary or shadow rollout of %s is in progress: nothing to %s (see `aideploy status`)", t.cfg.Name, o.Verb)
	case pending.Progress == nil:
		return fmt.Errorf("the %s rollout to %s is at step %s and takes no traffic yet: nothing to %s; stop it with Ctrl-C in its shell, which leaves the serving version as it is", pending.Strategy, pending.To, pending.Step, o.Verb)
	}
	// The rollout's process holds the lock (Docker's state container,
	// Kubernetes' Lease) while it runs: nobody holding it, or a holder gone,
	// means no process will read the command.
	running := true
	if lh, ok := p.(interface {
		LockHolder(context.Context) (*rollout.Holder, bool, error)
	}); ok {
		h, dead, err := lh.LockHolder(ctx)
		if err != nil {
			return err
		}
		running = h != nil && !dead
	}
	me := holder()
	if sp, ok := p.(rollout.Splitter); ok && running && o.Verb == rollout.VerbAbort && pending.From != nil {
		// Traffic goes back at once, in one admin call; the rollout then drains and removes the new colour.
		share := map[rollout.Color]int{pending.From.Color: 100, pending.To.Color: 0}
		if err := sp.SetSplit(ctx, share, t.settings.Canary.Sticky, pending.From.Color); err != nil {
			fmt.Fprintf(o.f.IO.ErrOut, "aideploy: sending all requests back to %s at once failed (%v); the rollout does it when it reads the abort\n", pending.From, err)
		}
	}
	if err := cm.SendCommand(ctx, rollout.Command{Verb: o.Verb, By: me.Owner, At: time.Now()}); err != nil {
		return err
	}
	v := verbView{Verb: o.Verb, Sent: true, Running: running}
	switch {
	case !running && o.Verb == rollout.VerbAbort:
		// Nobody will read it: undo the interrupted rollout here, as a rollback would.
		if _, err := cm.TakeCommand(ctx); err != nil {
			return err
		}
		r := &rollout.Runner{Platform: p, Config: t.settings, Holder: me}
		res, err := r.Run(ctx, rollout.Request{Op: rollout.OpRollback})
		if err != nil {
			return fmt.Errorf("aborting the interrupted %s: %w", pending.Strategy, err)
		}
		v.Acted, v.Journal = true, &res.Journal
		v.Message = fmt.Sprintf("no process ran the %s rollout to %s: undid it here; %s serves all traffic", pending.Strategy, pending.To, describeActive(res.Journal.Active))
	case !running:
		v.Message = fmt.Sprintf("no process runs the %s rollout to %s (killed?): %s waits for `aideploy rollout` to resume it, which obeys it first", pending.Strategy, pending.To, o.Verb)
	default:
		j, acted, err := waitActed(ctx, p, pending.ID, o.Verb, o.Wait)
		if err != nil {
			return err
		}
		v.Acted, v.Journal = acted, j
		if acted {
			v.Message = actedText(o.Verb, *j)
		} else {
			v.Message = fmt.Sprintf("%s sent; the rollout has not acted on it within %s (it reads commands every rollout.canary.analysis.interval, %s, during its canary or shadow step)", o.Verb, o.Wait, t.settings.Canary.Analysis.Interval)
		}
	}
	return printOutput(o.f.IO.Out, o.f.Output, v, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, v.Message)
		return err
	})
}

// waitActed polls the rollout's journal until it shows verb was obeyed, or wait passes.
func waitActed(ctx context.Context, p rollout.Platform, id string, verb rollout.Verb, wait time.Duration) (*rollout.Journal, bool, error) {
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last *rollout.Journal
	for {
		st, err := p.Current(ctx)
		if err != nil {
			return nil, false, err
		}
		for _, j := range st.Journals {
			if j.ID == id {
				j := j
				last = &j
				break
			}
		}
		if last != nil && obeyed(*last, verb) {
			return last, true, nil
		}
		if !time.Now().Before(deadline) {
			return last, false, nil
		}
		select {
		case <-ctx.Done():
			return last, false, ctx.Err()
		case <-tick.C:
		}
	}
}

func obeyed(j rollout.Journal, verb rollout.Verb) bool {
	switch verb {
	case rollout.VerbAbort:
		return j.Finished() && j.Status != rollout.StatusSucceeded
	case rollout.VerbPromote:
		return j.Switched || j.Finished()
	case rollout.VerbPause:
		return j.Progress != nil && j.Progress.Paused || j.Finished()
	case rollout.VerbResume:
		return j.Progress != nil && !j.Progress.Paused || j.Finished()
	}
	return false
}

func actedText(verb rollout.Verb, j rollout.Journal) string {
	switch verb {
	case rollout.VerbAbort:
		return fmt.Sprintf("aborted: %s serves all traffic, %s was removed", describeActive(j.Active), j.To)
	case rollout.VerbPromote:
		return fmt.Sprintf("promoted: %s takes all traffic; the rollout drains and retires %s", j.To, describeActive(j.From))
	case rollout.VerbPause:
		return fmt.Sprintf("paused at %d%% on %s; `aideploy rollout resume` carries on", j.Progress.Weight, j.To)
	}
	return fmt.Sprintf("resumed at %d%% on %s", j.Progress.Weight, j.To)
}

func describeActive(d *rollout.Deployment) string {
	if d == nil {
		return "nothing"
	}
	return d.String()
}
