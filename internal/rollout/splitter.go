package rollout

import (
	"context"
	"time"
)

// Splitter is a Platform whose traffic switch can share requests between two
// colours (canary), mirror a share to one (shadow) and measure each colour
// apart. The canary and shadow strategies need it; blue/green does not.
// Every method must be idempotent: a resumed rollout calls it again.
type Splitter interface {
	// Join puts to's replicas in the traffic pool beside from's, each tagged
	// with its colour, with a split that gives to no share yet.
	Join(ctx context.Context, to, from Deployment) error
	// SetSplit sets each colour's share of requests in percent (they add up to
	// 100) in one call; sticky is the Canary.Sticky setting and fallback the
	// colour that takes requests whose colour has no usable replica.
	SetSplit(ctx context.Context, percent map[Color]int, sticky string, fallback Color) error
	// SetShadow mirrors percent of the requests to c; 0 stops mirroring.
	SetShadow(ctx context.Context, c Color, percent int) error
	// Keep leaves only keep's replicas in the pool, drains drop's, and clears
	// the split and the mirror: the end of a canary, promoted or aborted.
	Keep(ctx context.Context, keep, drop Deployment) error
	// GroupStats reads each colour's figures over the last window.
	GroupStats(ctx context.Context, window time.Duration) ([]GroupStats, error)
}

// Commander is a Platform that carries operator commands (promote, abort,
// pause, resume) to the process running a rollout, which polls for them.
type Commander interface {
	// SendCommand leaves c for the running rollout, replacing an unread one.
	SendCommand(ctx context.Context, c Command) error
	// TakeCommand returns the command left since the last call, or nil, and clears it.
	TakeCommand(ctx context.Context) (*Command, error)
}

// Verb is what an operator asks of a running progressive rollout.
type Verb string

// Operator verbs.
const (
	VerbPromote Verb = "promote" // skip the remaining steps: all traffic to the new version
	VerbAbort   Verb = "abort"   // all traffic back to the serving version at once, then remove the new one
	VerbPause   Verb = "pause"   // hold the current share; the step's clock stops
	VerbResume  Verb = "resume"  // carry on after a pause or a hold on no data
)

// Command is an operator's verb with who gave it and when.
type Command struct {
	Verb Verb      `json:"verb"`
	By   string    `json:"by,omitempty"`
	At   time.Time `json:"at"`
}

// GroupStats is one colour's traffic over a window, as the gateway measured it.
type GroupStats struct {
	Color    Color `json:"color"`
	Shadow   bool  `json:"shadow,omitempty"` // mirrored traffic, answers discarded
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	Dropped  int64 `json:"dropped,omitempty"` // mirrored requests not sent

	TTFTP95 time.Duration `json:"ttftP95Ns"`
	TPOTP95 time.Duration `json:"tpotP95Ns"`
	// TTFTP95Low and TPOTP95Low are the p95s' one-sided 95% lower confidence
	// bounds given the answers counted (0: not reported): a p95 past its limit
	// with its bound under it may be the draw of a few slow answers.
	TTFTP95Low       time.Duration    `json:"ttftP95LowNs,omitempty"`
	TPOTP95Low       time.Duration    `json:"tpotP95LowNs,omitempty"`
	TokensPerSecond  float64          `json:"tokensPerSecond"`
	OutputTokensP50  float64          `json:"outputTokensP50"`
	OutputTokensMean float64          `json:"outputTokensMean"`
	FinishReasons    map[string]int64 `json:"finishReasons,omitempty"`
}

// ErrorRate is the share of failed requests, 0 without requests.
func (g GroupStats) ErrorRate() float64 {
	if g.Requests == 0 {
		return 0
	}
	return float64(g.Errors) / float64(g.Requests)
}

// LengthShare is the share of answers cut at max_tokens among answers with a finish reason.
func (g GroupStats) LengthShare() float64 {
	var n int64
	for _, c := range g.FinishReasons {
		n += c
	}
	if n == 0 {
		return 0
	}
	return float64(g.FinishReasons["length"]) / float64(n)
}
