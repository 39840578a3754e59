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
}

// Pool is a named set of targets.
type Pool struct {
	Name    string   `json:"name"`
	Targets []Target `json:"targets"`
	Queued  int64    `json:"queued"` // requests waiting for a free slot
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
