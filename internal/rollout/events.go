package rollout

import "time"

// EventKind says what happened to a step.
type EventKind string

// Event kinds.
const (
	EventStart   EventKind = "start"
	EventDone    EventKind = "done"
	EventSkipped EventKind = "skipped"
	EventFailed  EventKind = "failed"
	EventInfo    EventKind = "info"
	// EventProgress says how far a running step is (the health step's count
	// and remaining startup budget); a terminal shows it on the step's line.
	EventProgress EventKind = "progress"
)

// Event is one line of progress; the CLI draws it as a step list, a log line or JSON.
type Event struct {
	Time    time.Time     `json:"time"`
	Step    Step          `json:"step"`
	Kind    EventKind     `json:"kind"`
	Elapsed time.Duration `json:"elapsedNs,omitempty"` // time spent in the step, on done and failed
	Message string        `json:"message,omitempty"`
	// Progress is where a canary or shadow stands, with the step's verdict when there is one.
	Progress *StepReport `json:"progress,omitempty"`
}
