package cache

import (
	"time"

	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

// Config is the gateway.cache section of aideploy.yaml.
type Config struct {
	// Enabled turns the response cache on for every route unless a route turns it off.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// TTL is how long a stored answer is fresh.
	TTL units.Duration `yaml:"ttl" json:"ttl"`
	// StaleFor is how long past its TTL an answer may still be served as STALE while upstreams are down.
	StaleFor units.Duration `yaml:"staleFor" json:"staleFor"`
	// L1MaxBytes is the in-process tier's memory, allocated at start: stored
	// answers, their keys and 24 bytes each are kept within it.
	L1MaxBytes units.ByteSize `yaml:"l1MaxBytes" json:"l1MaxBytes"`
	// MaxEntryBytes is the largest answer that is stored; larger ones are not cached.
	MaxEntryBytes units.ByteSize `yaml:"maxEntryBytes" json:"maxEntryBytes"`
	// L2 configures the Redis tier.
	L2 L2Config `yaml:"l2" json:"l2"`
	// Sampled is what happens to answers drawn at random: completions with a
	// temperature above 0 or none (the API's default is 1), or n above 1, and
	// no seed. "bypass" (the default) neither stores nor serves them, so every
	// caller gets a draw of their own; "store" caches them like any other,
	// for a team that wants repeats to cost nothing and accepts that every
	// caller then gets the same draw for the TTL.
	Sampled string `yaml:"sampled,omitempty" json:"sampled,omitempty"`
	// Routes overrides the cache policy per route template, e.g. "/v1/chat/completions".
	Routes map[string]RouteConfig `yaml:"routes,omitempty" json:"routes,omitempty"`
}

// The values of Config.Sampled.
const (
	SampledBypass = "bypass"
	SampledStore  = "store"
)

// StoreSampled says whether sampled answers are cached; only an explicit
// "store" turns it on.
func (c Config) StoreSampled() bool { return c.Sampled == SampledStore }

// L2Config is the Redis tier of the cache.
type L2Config struct {
	// Enabled uses Redis when the gateway has a Redis address.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Timeout bounds each Redis call, so a slow Redis never slows a request by more.
	Timeout units.Duration `yaml:"timeout" json:"timeout"`
	// KeyPrefix is put before every cache key in Redis.
	KeyPrefix string `yaml:"keyPrefix" json:"keyPrefix"`
	// BreakAfter is how many consecutive Redis errors make the cache skip L2 for a while.
	BreakAfter int `yaml:"breakAfter" json:"breakAfter"`
	// BreakFor is how long L2 is skipped after BreakAfter consecutive errors.
	BreakFor units.Duration `yaml:"breakFor" json:"breakFor"`
}

// RouteConfig is the cache policy of one route; unset fields inherit the section's values.
type RouteConfig struct {
	// Enabled turns caching on or off for this route; unset inherits cache.enabled.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// TTL overrides cache.ttl for this route; 0 inherits it.
	TTL units.Duration `yaml:"ttl,omitempty" json:"ttl,omitempty"`
	// Shared lets every tenant read the same answers on this route: the key omits the
	// tenant, never the credentials the model server checks.
	Shared bool `yaml:"shared,omitempty" json:"shared,omitempty"`
}

// Policy is the resolved cache policy of one route.
type Policy struct {
	Enabled bool          // whether answers on the route are cached
	TTL     time.Duration // how long they are fresh
	Shared  bool          // whether the key leaves the tenant out
}

// Default returns the cache settings of the seed: on, one hour TTL, 256Mi in process, Redis L2.
func Default() Config {
	return Config{
		Enabled:       true,
		TTL:           units.Duration(time.Hour),
		StaleFor:      units.Duration(10 * time.Minute),
		L1MaxBytes:    256 << 20,
		MaxEntryBytes: 4 << 20,
		Sampled:       SampledBypass,
		L2: L2Config{
			Enabled:    true,
			Timeout:    units.Duration(50 * time.Millisecond),
			KeyPrefix:  "aideploy:cache:",
			BreakAfter: 5,
			BreakFor:   units.Duration(5 * time.Second),
		},
	}
}

// Route resolves the policy of a route template.
func (c Config) Route(route string) Policy {
	p := Policy{Enabled: c.Enabled, TTL: c.TTL.D()}
	if r, ok := c.Routes[route]; ok {
		if r.Enabled != nil {
			p.Enabled = *r.Enabled
		}
		if r.TTL > 0 {
			p.TTL = r.TTL.D()
		}
		p.Shared = r.Shared
	}
	return p
}

// Validate records every problem of the section; it does no I/O.
func (c Config) Validate(errs validate.Errors) {
	if c.TTL <= 0 {
		errs.Addf("ttl", "(%s) must be positive, e.g. 1h", c.TTL)
	}
	if c.StaleFor < 0 {
		errs.Addf("staleFor", "(%s) must not be negative; use 0 to never serve stale answers", c.StaleFor)
	}
	if c.L1MaxBytes < 1<<20 {
		errs.Addf("l1MaxBytes", "(%s) must be at least 1Mi", c.L1MaxBytes)
	}
	if c.MaxEntryBytes <= 0 || c.MaxEntryBytes > c.L1MaxBytes || c.MaxEntryBytes > 1<<31 {
		errs.Addf("maxEntryBytes", "(%s) must be positive, at most l1MaxBytes and at most 2Gi", c.MaxEntryBytes)
	}
	if c.Sampled != "" {
		errs.OneOf("sampled", c.Sampled, SampledBypass, SampledStore)
	}
	l2 := errs.At("l2")
	if c.L2.Timeout <= 0 {
		l2.Addf("timeout", "(%s) must be positive, e.g. 50ms", c.L2.Timeout)
	}
	if c.L2.BreakAfter < 1 {
		l2.Addf("breakAfter", "(%d) must be at least 1", c.L2.BreakAfter)
	}
	if c.L2.BreakFor <= 0 {
		l2.Addf("breakFor", "(%s) must be positive, e.g. 5s", c.L2.BreakFor)
	}
	for route, r := range c.Routes {
		re := errs.At("routes").At(route)
		if route == "" || route[0] != '/' {
			errs.At("routes").Addf(route, "route %q must be a path template starting with /", route)
		}
		if r.TTL < 0 {
			re.Addf("ttl", "(%s) must not be negative; leave it out to inherit cache.ttl", r.TTL)
		}
	}
}
