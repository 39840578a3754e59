package rollout

import (
	"errors"
	"fmt"
	"strings"
)

// Failure is a run that failed at a step; its message is the paragraph the CLI prints.
type Failure struct {
	Op         Op
	Step       Step
	Err        error
	To         Deployment
	From       *Deployment
	Active     *Deployment // what serves traffic after the failure
	RolledBack bool        // the old colour serves again and the new one is gone
	UndoErr    error       // undoing failed too
}

func (f *Failure) Unwrap() error { return f.Err }

func (f *Failure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s to %s failed at step %s: %v", f.Op, f.To, f.Step, f.Err)
	switch {
	case f.UndoErr != nil:
		fmt.Fprintf(&b, "\nundoing it failed too: %v; run `aideploy status` to see what serves traffic, then `aideploy rollout` again to converge", f.UndoErr)
	case f.RolledBack && f.Active != nil:
		fmt.Fprintf(&b, "\n%s still serves all traffic; the new colour was removed.", f.Active)
	case f.RolledBack:
		b.WriteString("\nnothing serves traffic yet; the new colour was removed.")
	case f.Active != nil:
		fmt.Fprintf(&b, "\ntraffic stays on %s.", f.Active)
	}
	if h := f.hint(); h != "" {
		b.WriteString("\n" + h)
	}
	return b.String()
}

func (f *Failure) hint() string {
	var we *WatchError
	var ae *AnalysisError
	var ab *AbortError
	switch {
	case errors.As(f.Err, &ae):
		return "The new version was judged against the serving one over the same window: look at its logs and `aideploy status`, or adjust rollout.canary.analysis.thresholds."
	case errors.As(f.Err, &ab):
		return "Run the rollout again when the new version is ready."
	case errors.As(f.Err, &we):
		return "Look at the new version's logs and the gateway's stats for the window, or relax rollout.watch thresholds."
	}
	switch f.Step {
	case StepCheck:
		return "Fix what the check names, then run the rollout again."
	case StepCreate:
		return "Look at the image and the service definition (volumes, devices, ports)."
	case StepHealthy:
		return "Look at the container's log lines above and its health endpoint (rollout.healthCheck); a slow model load may need a larger rollout.startupBudget."
	case StepWarmup:
		return "The new version is healthy but could not answer the warm-up request (rollout.warmup); try it by hand against the new container."
	case StepSwitch:
		return "Look at the gateway (`aideploy gateway serve`) and its admin API."
	case StepRetire:
		return "Stop the old colour by hand or run the rollout again."
	}
	return ""
}
