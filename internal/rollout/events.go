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
)

// Event is one line of progress; the CLI draws it as a step list, a log line or JSON.
type Event struct {
	Time    time.Time     `json:"time"`
	Step    Step          `json:"step"`
	Kind    EventKind     `json:"kind"`
	Elapsed time.Duration `json:"elapsedNs,omitempty"` // time spent in the step, on done and failed
	Message string        `json:"message,omitempty"`
}
