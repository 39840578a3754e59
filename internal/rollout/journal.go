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
	StepCanary  Step = "canary" // canary strategy: growing shares of traffic, judged at each
	StepShadow  Step = "shadow" // shadow strategy: a mirrored share, judged
	StepSwitch  Step = "switch"
	StepWatch   Step = "watch"
	StepDrain   Step = "drain"
	StepRetire  Step = "retire"
)

// Steps returns the steps that act on the platform, in the order they run.
func Steps() []Step {
	return []Step{StepCheck, StepCreate, StepHealthy, StepWarmup, StepCanary, StepShadow, StepSwitch, StepWatch, StepDrain, StepRetire}
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
	// Strategy is the rollout's strategy (empty: bluegreen); Progress where a canary or shadow stands.
	Strategy string    `json:"strategy,omitempty"`
	Progress *Progress `json:"progress,omitempty"`
}

// Progress is where a canary or shadow rollout stands, so a resumed run goes on from that step.
type Progress struct {
	Joined bool   `json:"joined,omitempty"` // the new colour is in the traffic pool beside the serving one
	Index  int    `json:"index"`            // the canary step running (0-based)
	Steps  int    `json:"steps,omitempty"`  // how many canary steps there are
	Weight int    `json:"weight"`           // the new colour's share of requests (canary) or of mirrored ones (shadow), percent
	Paused bool   `json:"paused,omitempty"` // an operator paused it, or it holds on no data
	Held   string `json:"held,omitempty"`   // why it holds by itself (inconclusive past maxWait)
}

// progressive reports whether j moves traffic by shares: a canary or shadow
// rollout from a serving version (a first deploy or a rollback switches at once).
func (j Journal) progressive() bool {
	return (j.Strategy == StrategyCanary || j.Strategy == StrategyShadow) && j.From != nil && j.Op == OpRollout
}

// Finished reports whether the run ended, one way or another.
func (j Journal) Finished() bool { return j.Status != StatusRunning }
