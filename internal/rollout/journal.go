package rollout

import "time"

// Op is what a run does.
type Op string

// Operations.
const (
	OpRollout  Op = "rollout"
	OpRollback Op = "rollback"
)

// Step is one stage of a rollout.
type Step string

// The steps, in order.
const (
	StepPlan    Step = "plan"
	StepLock    Step = "lock"
	StepCheck   Step = "check"
	StepCreate  Step = "create"
	StepHealthy Step = "healthy"
	StepWarmup  Step = "warmup"
	StepSwitch  Step = "switch"
	StepWatch   Step = "watch"
	StepDrain   Step = "drain"
	StepRetire  Step = "retire"
)

// Steps returns the steps that act on the platform, in the order they run.
func Steps() []Step {
	return []Step{StepCheck, StepCreate, StepHealthy, StepWarmup, StepSwitch, StepWatch, StepDrain, StepRetire}
}

func stepIndex(s Step) int {
	for i, x := range Steps() {
		if x == s {
			return i
		}
	}
	return 0
}

// Before reports whether s comes before t.
func (s Step) Before(t Step) bool { return stepIndex(s) < stepIndex(t) }

// Status of a journal.
type Status string

// Statuses; every one but StatusRunning is final.
const (
	StatusRunning    Status = "running"
	StatusSucceeded  Status = "succeeded"
	StatusRolledBack Status = "rolled-back" // failed, and the old colour serves again
	StatusFailed     Status = "failed"      // failed after the switch, traffic stays on the new colour
)

// Journal records a run step by step, so an interrupted one can be resumed or undone.
type Journal struct {
	ID       string        `json:"id"`
	Op       Op            `json:"op"`
	Step     Step          `json:"step"`   // the step running or last run
	Status   Status        `json:"status"` // running until the run ends
	From     *Deployment   `json:"from,omitempty"`
	To       Deployment    `json:"to"`
	Active   *Deployment   `json:"active,omitempty"`   // what serves traffic now
	Switched bool          `json:"switched,omitempty"` // traffic went to To at least once
	Surged   int           `json:"surged,omitempty"`   // replicas of To put in the pool by a surge, in place of as many of From
	Replaced *Instance     `json:"replaced,omitempty"` // what ran in To's slot before this run (Restorer platforms), put back on undo
	Reason   string        `json:"reason,omitempty"`   // why it failed
	Holder   Holder        `json:"holder"`
	Started  time.Time     `json:"started"`
	Updated  time.Time     `json:"updated"`
	TTFT     time.Duration `json:"ttft,omitempty"` // warm-up time to first token
}

// Finished reports whether the run ended, one way or another.
func (j Journal) Finished() bool { return j.Status != StatusRunning }
