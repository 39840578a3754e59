package rollout

import (
	"strconv"
	"strings"
	"time"

	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

// Progressive strategies: the new version takes a growing share of traffic
// (canary) or a mirrored copy of it (shadow) and is judged against the serving one.
const (
	StrategyCanary = "canary" // shares of live traffic, step by step
	StrategyShadow = "shadow" // a mirrored share; clients see only the serving version

	StickyNone   = ""       // each request is assigned on its own
	StickyTenant = "tenant" // by API key
	// StickyHeaderPrefix starts a sticky setting that names a request header, e.g. header:X-Session-Id.
	StickyHeaderPrefix = "header:"
)

// Canary holds the steps and the analysis of `rollout.strategy: canary`.
type Canary struct {
	// Steps are the shares of traffic the new version takes in turn, each for a while;
	// after the last one passes, it takes all traffic.
	Steps []CanaryStep `yaml:"steps" json:"steps"`
	// Sticky keeps one caller on one version while the shares hold: "" (none),
	// "tenant" (the API key) or "header:<Name>" (e.g. header:X-Session-Id).
	Sticky string `yaml:"sticky,omitempty" json:"sticky,omitempty"`
	// Analysis compares the new version with the serving one at every step.
	Analysis Analysis `yaml:"analysis" json:"analysis"`
}

// CanaryStep is one share of traffic, held for a while.
type CanaryStep struct {
	// Weight is the new version's share of requests, in percent (1-99).
	Weight int `yaml:"weight" json:"weight"`
	// For is how long the share holds before the analysis may pass the step.
	For units.Duration `yaml:"for" json:"for"`
}

// ShadowConfig holds `rollout.strategy: shadow`: a share of live traffic is
// mirrored to the new version, whose answers are measured and thrown away.
type ShadowConfig struct {
	// Percent is the share of requests mirrored to the new version (1-100).
	Percent int `yaml:"percent" json:"percent"`
	// For is how long the mirror runs before the analysis may pass it.
	For units.Duration `yaml:"for" json:"for"`
}

// Analysis says when a step passes, fails or cannot tell yet.
type Analysis struct {
	// MinSamples is how many requests each version needs in a step before a verdict;
	// with fewer the verdict is inconclusive: the step waits, never rolls back and never promotes.
	MinSamples int `yaml:"minSamples" json:"minSamples"`
	// MaxWait is how long a step may stay inconclusive after its time is up; then the
	// rollout holds (paused) at its share until `aideploy rollout promote|abort|resume`.
	MaxWait units.Duration `yaml:"maxWait" json:"maxWait"`
	// Interval is how often the figures are read and judged.
	Interval units.Duration `yaml:"interval" json:"interval"`
	// Thresholds are relative to the serving version, with optional absolute limits.
	Thresholds Thresholds `yaml:"thresholds" json:"thresholds"`
}

// Thresholds are the limits a new version must keep. Ratios and points compare
// it with the serving version over the same window; absolute limits, when set,
// apply as well. A ratio or a point limit of 0 turns that comparison off.
type Thresholds struct {
	// ErrorRatePoints is how many percentage points the error rate may rise (1 = +1 point).
	ErrorRatePoints float64 `yaml:"errorRatePoints" json:"errorRatePoints"`
	// TTFTP95Ratio is the highest p95 time to first token, as a multiple of the serving version's.
	TTFTP95Ratio float64 `yaml:"ttftP95Ratio" json:"ttftP95Ratio"`
	// TPOTP95Ratio is the highest p95 time per output token, as a multiple of the serving version's.
	TPOTP95Ratio float64 `yaml:"tpotP95Ratio" json:"tpotP95Ratio"`
	// TokensPerSecondRatio is the lowest output rate, as a multiple of the serving version's.
	TokensPerSecondRatio float64 `yaml:"tokensPerSecondRatio" json:"tokensPerSecondRatio"`
	// OutputTokensP50Ratio is the shortest median answer, as a multiple of the serving version's.
	OutputTokensP50Ratio float64 `yaml:"outputTokensP50Ratio" json:"outputTokensP50Ratio"`
	// LengthSharePoints is how many points the share of answers cut at max_tokens
	// (finish_reason "length") may rise.
	LengthSharePoints float64 `yaml:"lengthSharePoints" json:"lengthSharePoints"`

	// MaxErrorRate is the highest error rate (0.02 = 2%), whatever the serving version's.
	MaxErrorRate float64 `yaml:"maxErrorRate,omitempty" json:"maxErrorRate,omitempty"`
	// MaxTTFTP95 is the highest p95 time to first token.
	MaxTTFTP95 units.Duration `yaml:"maxTTFTP95,omitempty" json:"maxTTFTP95,omitempty"`
	// MaxTPOTP95 is the highest p95 time per output token.
	MaxTPOTP95 units.Duration `yaml:"maxTPOTP95,omitempty" json:"maxTPOTP95,omitempty"`
	// MinTokensPerSecond is the lowest output rate.
	MinTokensPerSecond float64 `yaml:"minTokensPerSecond,omitempty" json:"minTokensPerSecond,omitempty"`
	// MinOutputTokensP50 is the shortest median answer, in tokens.
	MinOutputTokensP50 float64 `yaml:"minOutputTokensP50,omitempty" json:"minOutputTokensP50,omitempty"`
	// MaxLengthShare is the highest share of answers cut at max_tokens (0.1 = 10%).
	MaxLengthShare float64 `yaml:"maxLengthShare,omitempty" json:"maxLengthShare,omitempty"`
}

// DefaultCanary is five, twenty-five and fifty percent, then all traffic.
func DefaultCanary() Canary {
	return Canary{
		Steps: []CanaryStep{
			{Weight: 5, For: units.Duration(5 * time.Minute)},
			{Weight: 25, For: units.Duration(10 * time.Minute)},
			{Weight: 50, For: units.Duration(10 * time.Minute)},
		},
		Analysis: DefaultAnalysis(),
	}
}

// DefaultAnalysis judges relative to the serving version.
func DefaultAnalysis() Analysis {
	return Analysis{
		MinSamples: 50,
		MaxWait:    units.Duration(10 * time.Minute),
		Interval:   units.Duration(5 * time.Second),
		Thresholds: Thresholds{
			ErrorRatePoints:      1,
			TTFTP95Ratio:         1.2,
			TPOTP95Ratio:         1.2,
			TokensPerSecondRatio: 0.8,
			OutputTokensP50Ratio: 0.8,
			LengthSharePoints:    10,
		},
	}
}

// DefaultShadow mirrors a fifth of the traffic for ten minutes.
func DefaultShadow() ShadowConfig {
	return ShadowConfig{Percent: 20, For: units.Duration(10 * time.Minute)}
}

// Progressive reports whether the strategy moves traffic by shares (canary or shadow).
func (c Config) Progressive() bool {
	return c.Strategy == StrategyCanary || c.Strategy == StrategyShadow
}

func (c Config) validateProgressive(errs validate.Errors) {
	cn := errs.At("canary")
	if c.Strategy == StrategyCanary && len(c.Canary.Steps) == 0 {
		cn.Addf("steps", "must list at least one step, e.g. [{weight: 5, for: 5m}, {weight: 50, for: 10m}]")
	}
	last := 0
	for i, s := range c.Canary.Steps {
		st := cn.At("steps[" + strconv.Itoa(i) + "]")
		if s.Weight < 1 || s.Weight > 99 {
			st.Addf("weight", "(%d) must be between 1 and 99; after the last step the new version takes all traffic", s.Weight)
		} else if s.Weight <= last {
			st.Addf("weight", "(%d) must be above the step before (%d)", s.Weight, last)
		}
		last = max(last, s.Weight)
		if s.For < 0 {
			st.Addf("for", "(%s) must not be negative", s.For)
		}
	}
	if s := c.Canary.Sticky; s != StickyNone && s != StickyTenant && (!strings.HasPrefix(s, StickyHeaderPrefix) || len(s) == len(StickyHeaderPrefix)) {
		cn.Addf("sticky", "(%q) must be empty, tenant, or header:<Name> such as header:X-Session-Id", s)
	}
	a := cn.At("analysis")
	a.NonNegative("minSamples", c.Canary.Analysis.MinSamples)
	nonNegative(a, "maxWait", c.Canary.Analysis.MaxWait)
	if c.Progressive() {
		positive(a, "interval", c.Canary.Analysis.Interval)
	}
	th := a.At("thresholds")
	t := c.Canary.Analysis.Thresholds
	type field struct {
		name string
		v    float64
	}
	for _, f := range []field{{"errorRatePoints", t.ErrorRatePoints}, {"ttftP95Ratio", t.TTFTP95Ratio}, {"tpotP95Ratio", t.TPOTP95Ratio},
		{"tokensPerSecondRatio", t.TokensPerSecondRatio}, {"outputTokensP50Ratio", t.OutputTokensP50Ratio}, {"lengthSharePoints", t.LengthSharePoints},
		{"minTokensPerSecond", t.MinTokensPerSecond}, {"minOutputTokensP50", t.MinOutputTokensP50}} {
		if f.v < 0 {
			th.Addf(f.name, "(%g) must not be negative; 0 turns the check off", f.v)
		}
	}
	for _, f := range []field{{"maxErrorRate", t.MaxErrorRate}, {"maxLengthShare", t.MaxLengthShare}} {
		if f.v < 0 || f.v > 1 {
			th.Addf(f.name, "(%g) must be between 0 and 1, e.g. 0.02 for 2%%; 0 turns the check off", f.v)
		}
	}
	nonNegative(th, "maxTTFTP95", t.MaxTTFTP95)
	nonNegative(th, "maxTPOTP95", t.MaxTPOTP95)
	sh := errs.At("shadow")
	if c.Shadow.Percent < 0 || c.Shadow.Percent > 100 || (c.Strategy == StrategyShadow && c.Shadow.Percent == 0) {
		sh.Addf("percent", "(%d) must be between 1 and 100", c.Shadow.Percent)
	}
	nonNegative(sh, "for", c.Shadow.For)
	if c.Progressive() && c.Surge > 0 {
		errs.Addf("surge", "(%d) cannot be combined with strategy %s, which runs both versions side by side; set surge to 0 or use bluegreen", c.Surge, c.Strategy)
	}
	if w := c.Webhook; w != "" && !strings.HasPrefix(w, "http://") && !strings.HasPrefix(w, "https://") {
		errs.Addf("webhook", "(%q) must be an http:// or https:// URL", w)
	}
}
