package adminapi

import "github.com/aideploy/aideploy/internal/units"

// Paths of the admin API, relative to the admin listener. {pool} is a pool name.
const (
	PathPools   = "/admin/pools"                // GET: []Pool
	PathPool    = "/admin/pools/{pool}"         // GET: Pool
	PathTargets = "/admin/pools/{pool}/targets" // PUT ReplaceTargets: health-gated atomic swap
	PathWeights = "/admin/pools/{pool}/weights" // PUT SetWeights
	PathDrain   = "/admin/pools/{pool}/drain"   // POST Drain: blocks until drained or timeout
	PathStats   = "/admin/pools/{pool}/stats"   // GET ?window=30s: Stats
	PathSplit   = "/admin/pools/{pool}/split"   // GET, PUT Split: shares between groups, stickiness, fallback
	PathShadow  = "/admin/pools/{pool}/shadow"  // GET, PUT Shadow: mirror a share of traffic to a group
	TokenEnv    = "AIDEPLOY_ADMIN_TOKEN"        // bearer token, when no token file is given
	DefaultPool = "default"                     // the pool that serves every route unless configured
)

// Target is one upstream of a pool.
type Target struct {
	URL      string `json:"url"`                // http://host:port or unix:///path.sock
	Weight   int    `json:"weight,omitempty"`   // relative share; 0 means 1
	Healthy  bool   `json:"healthy"`            // last active or passive health verdict
	Draining bool   `json:"draining,omitempty"` // no new requests
	Inflight int64  `json:"inflight"`           // requests and streams in progress
	Limit    int64  `json:"limit,omitempty"`    // most requests in flight now: the adaptive or fixed limit; 0 none
	Breaker  string `json:"breaker,omitempty"`  // closed, half-open or open
	// Group names the version the target belongs to (a rollout's colour,
	// "blue" or "green"); empty is the pool's one group. Split, Shadow and
	// Stats.ByGroup work on groups.
	Group string `json:"group,omitempty"`
}

// Pool is a named set of targets.
type Pool struct {
	Name    string   `json:"name"`
	Targets []Target `json:"targets"`
	Queued  int64    `json:"queued"`           // requests waiting for a free slot
	Split   *Split   `json:"split,omitempty"`  // nil: every target by its weight, groups ignored
	Shadow  *Shadow  `json:"shadow,omitempty"` // nil: no mirroring
}

// Split shares a pool's requests between its groups, for a canary: each
// request is assigned a group with probability Percent[group]/100 (the shares
// add up to 100), then balanced over that group's targets. With Sticky the
// assignment is a hash of the caller's key, so one tenant or conversation
// stays on one version while the shares hold.
type Split struct {
	Percent map[string]int `json:"percent"`
	// Sticky is what keeps a caller on one group: "" (none, random per
	// request), "tenant" (the caller's API key) or "header:<Name>" (a request
	// header, e.g. header:X-Session-Id; requests without it fall back to the
	// tenant, then to random).
	Sticky string `json:"sticky,omitempty"`
	// Fallback is the group that takes a request whose assigned group has no
	// usable target (all unhealthy, ejected, breaker open or draining),
	// instead of a 503: the previous version while the new one is on trial.
	Fallback string `json:"fallback,omitempty"`
}

// Shadow mirrors a share of a pool's requests to a group that answers no
// client: the mirror's answers are measured (Stats.ByGroup with Shadow set)
// and discarded. Mirrored requests never count against tenants' limits, never
// read or write the cache, and are dropped (counted in Dropped) rather than
// queued when the group is at its limit or slower than the serving answer.
type Shadow struct {
	Group   string `json:"group"`
	Percent int    `json:"percent"` // of the pool's requests, 0-100
}

// ReplaceTargets asks for an atomic swap of a pool's targets. The new targets
// must all pass their health check within HealthTimeout; otherwise nothing changes
// and the server answers 409 with an Error naming the failing target.
type ReplaceTargets struct {
	Targets       []Target       `json:"targets"`
	HealthTimeout units.Duration `json:"healthTimeout,omitempty"`
	// Drain says whether targets that leave the pool are drained before the call returns.
	Drain        bool           `json:"drain,omitempty"`
	DrainTimeout units.Duration `json:"drainTimeout,omitempty"`
	// Split, when set, is installed with the targets in the same swap (an
	// empty Percent removes the split): a rollout that adds the new colour
	// next to the old one sends it no request by weight alone. Without it,
	// the pool's split and shadow stay while the targets still hold every
	// group they name, and are removed otherwise.
	Split *Split `json:"split,omitempty"`
}

// SetWeights changes weights of existing targets, keyed by URL.
type SetWeights struct {
	Weights map[string]int `json:"weights"`
}

// Drain stops new requests to a target and waits for its in-flight ones.
type Drain struct {
	URL     string         `json:"url"`
	Timeout units.Duration `json:"timeout,omitempty"`
}

// DrainResult reports what was left when the drain ended.
type DrainResult struct {
	URL       string `json:"url"`
	Remaining int64  `json:"remaining"` // in-flight requests still running at the deadline
	Drained   bool   `json:"drained"`
}

// Stats summarises traffic through a pool over a recent window, for the
// watch window after a switch.
type Stats struct {
	Window     units.Duration `json:"window"`
	Requests   int64          `json:"requests"`
	Errors     int64          `json:"errors"` // 5xx answered by targets, timeouts, connection errors
	P99Seconds float64        `json:"p99Seconds"`
	ByTarget   []TargetStats  `json:"byTarget,omitempty"`
	ByGroup    []GroupStats   `json:"byGroup,omitempty"`
}

// GroupStats is what one group's answers looked like over the window: the
// figures a canary analysis compares between the serving and the new version.
// Latency figures come from the gateway's own measurements of each answer;
// token figures from the answer's usage (or, for streams, its chunks).
type GroupStats struct {
	Group    string `json:"group"`
	Shadow   bool   `json:"shadow,omitempty"` // mirrored traffic: answers discarded
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"`
	// Dropped counts mirrored requests not sent because the shadow was at its
	// limit or too slow (Shadow only).
	Dropped int64 `json:"dropped,omitempty"`
	// FellBack counts requests assigned to this group that found no usable
	// target in it and went to the split's fallback group (counted there in
	// Requests). They are not in this group's Requests.
	FellBack int64 `json:"fellBack,omitempty"`
	// P95 time to first token (first byte of the answer for non-streams).
	TTFTP95Seconds float64 `json:"ttftP95Seconds"`
	// P95 time per output token after the first (streams with two or more tokens).
	TPOTP95Seconds float64 `json:"tpotP95Seconds"`
	// The p95s' lower confidence bounds (one-sided 95%): the answer at the
	// lowest rank this group's p95 could sit at by the draw of its answers
	// alone. With few answers the p95 is nearly the slowest one; an analysis
	// calls a p95 over its limit noise while this bound stays under it.
	TTFTP95LowSeconds float64 `json:"ttftP95LowSeconds,omitempty"`
	TPOTP95LowSeconds float64 `json:"tpotP95LowSeconds,omitempty"`
	// Output tokens per second of generation, over answers that reported tokens.
	TokensPerSecond float64 `json:"tokensPerSecond"`
	// OutputTokensP50 and OutputTokensMean describe how long the answers were.
	OutputTokensP50  float64 `json:"outputTokensP50"`
	OutputTokensMean float64 `json:"outputTokensMean"`
	// FinishReasons counts answers by finish_reason (stop, length, ...; "" unknown).
	FinishReasons map[string]int64 `json:"finishReasons,omitempty"`
}

// TargetStats is Stats for one target.
type TargetStats struct {
	URL        string  `json:"url"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	P99Seconds float64 `json:"p99Seconds"`
}

// Error is the body of every non-2xx admin answer.
type Error struct {
	Error string `json:"error"`
}
