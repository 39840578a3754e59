package rollout

import (
	"context"
	"fmt"
	"time"
)

// Color names one of the two slots of a blue/green service.
type Color string

// The two colours.
const (
	Blue  Color = "blue"
	Green Color = "green"
)

// Other returns the colour that is not c; the first deploy (c empty) is blue.
func (c Color) Other() Color {
	if c == Blue {
		return Green
	}
	return Blue
}

// Deployment is one revision of the service in one colour.
type Deployment struct {
	Color      Color  `json:"color"`
	Revision   int    `json:"revision"`
	Image      string `json:"image"`
	Replicas   int    `json:"replicas"`
	ConfigHash string `json:"configHash,omitempty"`
}

func (d Deployment) String() string {
	return fmt.Sprintf("%s r%d (%s)", d.Color, d.Revision, d.Image)
}

// Instance is what a platform finds of one revision: its deployment and its replicas.
type Instance struct {
	Deployment
	Running int       `json:"running"` // replicas running now
	Ready   int       `json:"ready"`   // of them, how many are ready; platforms that cannot tell report Running
	Total   int       `json:"total"`   // replicas that exist, running or stopped
	Created time.Time `json:"created"`
}

// Holder says who holds a service's rollout lock.
type Holder struct {
	Owner   string    `json:"owner"` // user@host
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Since   time.Time `json:"since"`
	Image   string    `json:"image"`
	Op      Op        `json:"op"`
	Started uint64    `json:"started,omitempty"` // process start time, so a reused pid is not mistaken for the holder
}

func (h Holder) String() string {
	return fmt.Sprintf("%s (pid %d, %s of %s since %s)", h.Owner, h.PID, h.Op, h.Image, h.Since.UTC().Format(time.RFC3339))
}

// LockedError says that another rollout holds the lock.
type LockedError struct {
	Service string
	Holder  Holder
	Dead    bool // the holder's process is gone
}

func (e *LockedError) Error() string {
	if e.Dead {
		return fmt.Sprintf("service %s is locked by %s, whose process is gone; rerun with --force-unlock to break the lock", e.Service, e.Holder)
	}
	return fmt.Sprintf("service %s is locked by %s; wait for it to finish, or rerun with --force-unlock if you are sure it is gone", e.Service, e.Holder)
}

// State is what a platform knows about a service, read at the start of every run.
type State struct {
	Journals  []Journal  // newest first
	Instances []Instance // every revision that still has containers or pods, newest first
	// LiveKnown says the platform read what serves from the objects themselves
	// (a Service's selector and the Deployment behind it); Live is then that, or
	// nil when nothing serves. It wins over the journal: `apply`, an earlier
	// tool or a human may have changed what serves since the last rollout.
	LiveKnown bool
	Live      *Deployment
	// Floor is the fewest replicas a new colour may start with: what the
	// serving colour runs now under its autoscaler, or a prewarmed floor.
	Floor int
}

// Active returns the deployment that serves traffic: what the platform sees
// when it can tell, else what the journal says, or nil.
func (s State) Active() *Deployment {
	if s.LiveKnown {
		return s.Live
	}
	if len(s.Journals) == 0 {
		return nil
	}
	return s.Journals[0].Active
}

// Pending returns the newest journal when it never finished, or nil.
func (s State) Pending() *Journal {
	if len(s.Journals) == 0 || s.Journals[0].Finished() {
		return nil
	}
	j := s.Journals[0]
	return &j
}

// Instance returns what exists of revision rev.
func (s State) Instance(rev int) (Instance, bool) {
	for _, in := range s.Instances {
		if in.Revision == rev {
			return in, true
		}
	}
	return Instance{}, false
}

// Stats is traffic through the service over a recent window.
type Stats struct {
	Requests int64
	Errors   int64
	P99      time.Duration
	// TTFTP95 is the 95th-percentile time to first token of the serving
	// version's answers (first byte for non-streams); 0 when unknown.
	TTFTP95   time.Duration
	Targets   int // targets behind the switch
	Unhealthy int // of them, how many take no traffic (failed health checks, ejected, breaker open)
}

// WarmupResult reports the warm-up requests of a new colour.
type WarmupResult struct {
	TimeToFirstToken time.Duration // slowest replica
	Total            time.Duration // slowest replica
}

// Platform runs a service's colours; internal/compose and internal/k8s implement it.
// Every method must be idempotent: a resumed rollout calls it again.
type Platform interface {
	// Lock takes the service's rollout lock for h, or returns a *LockedError; force breaks any holder.
	Lock(ctx context.Context, h Holder, force bool) error
	// Unlock releases the lock if h still holds it.
	Unlock(ctx context.Context, h Holder) error
	// Current reads the journals and every revision that still exists.
	Current(ctx context.Context) (State, error)
	// Record stores j, replacing an earlier record with the same ID.
	Record(ctx context.Context, j Journal) error
	// Check refuses a deployment the platform cannot run next to from (image missing, not enough GPUs).
	Check(ctx context.Context, to Deployment, from *Deployment) error
	// Create starts d's replicas, reusing any that exist already (retired ones are started again).
	Create(ctx context.Context, d Deployment) error
	// WaitHealthy waits until every replica of d is ready; it fails fast when one dies.
	WaitHealthy(ctx context.Context, d Deployment, budget time.Duration) error
	// Warmup sends the configured request to every replica of d.
	Warmup(ctx context.Context, d Deployment) (WarmupResult, error)
	// Switch sends all traffic to "to", atomically; from is what served before, or nil.
	Switch(ctx context.Context, to Deployment, from *Deployment) error
	// Stats reads traffic figures over the last window.
	Stats(ctx context.Context, window time.Duration) (Stats, error)
	// Drain waits until d has no requests in flight, or the timeout passes.
	Drain(ctx context.Context, d Deployment, timeout time.Duration) error
	// Stop retires d's replicas (stopped or paused) and keeps them for a rollback.
	Stop(ctx context.Context, d Deployment) error
	// Remove deletes every replica of d.
	Remove(ctx context.Context, d Deployment) error
}

// Restorer is a Platform whose colours are single slots (one Deployment per
// colour): creating a colour replaces what ran in that slot, so undoing a
// failed run must put that back rather than leave the slot empty.
type Restorer interface {
	// Restore puts in back in its colour's slot, as it was before this run.
	Restore(ctx context.Context, in Instance) error
}

// WarmKeeper is a Platform that can leave a retired colour running for a
// window (rollout.keepWarm) without the run waiting it out: a rollback within
// it is instant, and the platform scales the colour down after it.
type WarmKeeper interface {
	// KeepWarm marks d to keep running until until.
	KeepWarm(ctx context.Context, d Deployment, until time.Time) error
}

// Surger is a Platform that can replace a colour a few replicas at a time (rollout.surge),
// for hosts without room for both colours at once.
type Surger interface {
	// SwitchPart puts the first n replicas of to in the traffic pool in place of
	// the first n of from, drains those and stops them to free their resources.
	// The pool keeps every other replica of from; it is idempotent.
	SwitchPart(ctx context.Context, to, from Deployment, n int) error
}
