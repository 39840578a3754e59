package breaker

import (
	"time"

	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

// Config is the circuit-breaker policy of an upstream (gateway.breaker in aideploy.yaml).
type Config struct {
	// ConsecutiveFailures opens the breaker after this many failures in a row (the seed: 5).
	ConsecutiveFailures uint32 `yaml:"consecutiveFailures" json:"consecutiveFailures"`
	// FailureRatio opens the breaker when this share of requests in the window failed; 0 turns it off.
	FailureRatio float64 `yaml:"failureRatio" json:"failureRatio"`
	// MinRequests is how many requests the window needs before FailureRatio applies.
	MinRequests uint32 `yaml:"minRequests" json:"minRequests"`
	// Window is the rolling window over which the closed breaker counts requests and failures.
	Window units.Duration `yaml:"window" json:"window"`
	// Cooldown is how long the breaker stays open before it lets probes through (the seed: 30s).
	Cooldown units.Duration `yaml:"cooldown" json:"cooldown"`
	// HalfOpenMaxRequests is how many probes may run while half-open; that many successes close it.
	HalfOpenMaxRequests uint32 `yaml:"halfOpenMaxRequests" json:"halfOpenMaxRequests"`
}

// Default returns the seed's breaker: open after 5 failures in a row or half of 20+ requests
// in a minute, probe after 30s with one request.
func Default() Config {
	return Config{
		ConsecutiveFailures: 5,
		FailureRatio:        0.5,
		MinRequests:         20,
		Window:              units.Duration(time.Minute),
		Cooldown:            units.Duration(30 * time.Second),
		HalfOpenMaxRequests: 1,
	}
}

// Validate records every problem of the section; it does no I/O.
func (c Config) Validate(errs validate.Errors) {
	if c.ConsecutiveFailures < 1 {
		errs.Addf("consecutiveFailures", "(%d) must be at least 1", c.ConsecutiveFailures)
	}
	if c.FailureRatio < 0 || c.FailureRatio > 1 {
		errs.Addf("failureRatio", "(%g) must be between 0 (off) and 1", c.FailureRatio)
	}
	if c.FailureRatio > 0 && c.MinRequests < 1 {
		errs.Addf("minRequests", "(%d) must be at least 1 when failureRatio is set", c.MinRequests)
	}
	if c.Window < units.Duration(time.Second) {
		errs.Addf("window", "(%s) must be at least 1s", c.Window)
	}
	if c.Cooldown <= 0 {
		errs.Addf("cooldown", "(%s) must be positive, e.g. 30s", c.Cooldown)
	}
	if c.HalfOpenMaxRequests < 1 {
		errs.Addf("halfOpenMaxRequests", "(%d) must be at least 1", c.HalfOpenMaxRequests)
	}
}
