package limit

import (
	"math"
	"strconv"
	"time"

	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

// The algorithms a Rule may name.
const (
	TokenBucket   = "tokenbucket"
	SlidingWindow = "slidingwindow"
)

// The backends a Config may name, and the extra one a Decision may report.
const (
	BackendLocal    = "local"
	BackendRedis    = "redis"
	BackendFallback = "local-fallback" // Redis failed: local limits at localShare
)

// Config is the gateway.limits section of aideploy.yaml.
type Config struct {
	// Enabled turns rate limiting on.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Backend is where counters live: local (each replica alone) or redis (shared by all replicas).
	Backend string `yaml:"backend" json:"backend"`
	// LocalShare is the fraction of each limit a replica enforces on its own while Redis is unavailable.
	LocalShare float64 `yaml:"localShare" json:"localShare"`
	// Redis tunes the shared backend.
	Redis RedisConfig `yaml:"redis" json:"redis"`
	// MaxKeys bounds how many tenant and route counters a replica keeps in memory; idle ones go first.
	MaxKeys int `yaml:"maxKeys" json:"maxKeys"`
	// Default is the rule of every tenant that has none of its own.
	Default Rule `yaml:"default" json:"default"`
	// Tenants gives named tenants their own rule instead of the default.
	Tenants map[string]Rule `yaml:"tenants,omitempty" json:"tenants,omitempty"`
	// Routes gives route templates their own rule, counted per tenant, instead of the tenant's rule.
	Routes []RouteRule `yaml:"routes,omitempty" json:"routes,omitempty"`
}

// RedisConfig tunes the shared backend.
type RedisConfig struct {
	// Timeout bounds each Redis call; past it the decision is made locally.
	Timeout units.Duration `yaml:"timeout" json:"timeout"`
	// KeyPrefix is put before every limiter key in Redis.
	KeyPrefix string `yaml:"keyPrefix" json:"keyPrefix"`
	// RetryAfter is how long the limiter stays on local limits after a Redis error before trying Redis again.
	RetryAfter units.Duration `yaml:"retryAfter" json:"retryAfter"`
}

// Rule is one set of limits. A zero Requests or TokensPerMinute means no limit of that kind.
type Rule struct {
	// Algorithm counts requests with a token bucket (smooth, allows bursts) or a sliding window (exact per window).
	Algorithm string `yaml:"algorithm" json:"algorithm"`
	// Requests is how many requests a tenant may make per Window; 0 means unlimited.
	Requests int64 `yaml:"requests" json:"requests"`
	// Window is the period Requests is counted over.
	Window units.Duration `yaml:"window" json:"window"`
	// Burst is how many requests a token bucket admits at once; 0 means Requests.
	Burst int64 `yaml:"burst,omitempty" json:"burst,omitempty"`
	// TokensPerMinute is the model-token budget (prompt plus completion) per minute; 0 means unlimited.
	TokensPerMinute int64 `yaml:"tokensPerMinute,omitempty" json:"tokensPerMinute,omitempty"`
}

// RouteRule is a rule for one route template.
type RouteRule struct {
	// Route is the route template, e.g. /v1/chat/completions.
	Route string `yaml:"route" json:"route"`
	// Rule is the limits on that route, counted per tenant.
	Rule `yaml:",inline" json:",inline"`
}

// Default returns limits off, and when turned on the seed's rule: a sliding window of 100
// requests a minute per tenant, counted locally, with half the limit per replica while
// Redis is unavailable.
func Default() Config {
	return Config{
		Backend:    BackendLocal,
		LocalShare: 0.5,
		Redis: RedisConfig{
			Timeout:    units.Duration(50 * time.Millisecond),
			KeyPrefix:  "aideploy:ratelimit:",
			RetryAfter: units.Duration(time.Second),
		},
		MaxKeys: 100_000,
		Default: Rule{Algorithm: SlidingWindow, Requests: 100, Window: units.Duration(time.Minute)},
	}
}

// Validate records every problem of the section; it does no I/O.
func (c Config) Validate(errs validate.Errors) {
	errs.OneOf("backend", c.Backend, BackendLocal, BackendRedis)
	if !(c.LocalShare > 0 && c.LocalShare <= 1) {
		errs.Addf("localShare", "(%g) must be in (0, 1], e.g. 1/replicas", c.LocalShare)
	}
	if c.Redis.Timeout <= 0 {
		errs.At("redis").Addf("timeout", "(%s) must be positive, e.g. 50ms", c.Redis.Timeout)
	}
	if c.Redis.RetryAfter <= 0 {
		errs.At("redis").Addf("retryAfter", "(%s) must be positive, e.g. 1s", c.Redis.RetryAfter)
	}
	errs.Positive("maxKeys", c.MaxKeys)
	c.Default.validate(errs.At("default"))
	for name, r := range c.Tenants {
		r.validate(errs.At("tenants").At(name))
	}
	seen := map[string]bool{}
	for i, r := range c.Routes {
		re := errs.At("routes").At("[" + strconv.Itoa(i) + "]")
		if r.Route == "" || r.Route[0] != '/' {
			re.Addf("route", "(%q) must be a route template starting with /", r.Route)
		}
		if seen[r.Route] {
			re.Addf("route", "(%q) is listed twice", r.Route)
		}
		seen[r.Route] = true
		r.Rule.validate(re)
	}
}

func (r Rule) validate(errs validate.Errors) {
	if r.Requests < 0 {
		errs.Addf("requests", "(%d) must not be negative; use 0 for no request limit", r.Requests)
	}
	if r.Requests > 0 {
		errs.OneOf("algorithm", r.Algorithm, TokenBucket, SlidingWindow)
		if r.Window < units.Duration(time.Millisecond) {
			errs.Addf("window", "(%s) must be at least 1ms, e.g. 1m", r.Window)
		}
	}
	if r.Burst < 0 {
		errs.Addf("burst", "(%d) must not be negative; 0 means requests", r.Burst)
	}
	if r.TokensPerMinute < 0 || r.TokensPerMinute > 1e9 {
		errs.Addf("tokensPerMinute", "(%d) must be between 0 (no token budget) and 1000000000", r.TokensPerMinute)
	}
}

// burst is the bucket size of a token bucket rule.
func (r Rule) burst() int64 {
	if r.Burst > 0 {
		return r.Burst
	}
	return r.Requests
}

// share scales the rule's limits to f of themselves, never below 1.
func (r Rule) share(f float64) Rule {
	scale := func(n int64) int64 {
		if n <= 0 {
			return n
		}
		return max(1, int64(math.Ceil(float64(n)*f)))
	}
	r.Requests, r.Burst, r.TokensPerMinute = scale(r.Requests), scale(r.Burst), scale(r.TokensPerMinute)
	return r
}

// WithPerMinute returns r with its own requests and tokens per minute where they are
// positive (the request window becomes one minute, the burst the new count); zeros keep
// r's. It turns an API key's limits into an entry of Config.Tenants.
func (r Rule) WithPerMinute(requests, tokens int64) Rule {
	if requests > 0 {
		r.Requests, r.Window, r.Burst = requests, units.Duration(time.Minute), 0
		if r.Algorithm == "" {
			r.Algorithm = SlidingWindow
		}
	}
	if tokens > 0 {
		r.TokensPerMinute = tokens
	}
	return r
}
