package rollout

import (
	"fmt"
	"strings"
	"time"
)

// Outcome is what the analysis of a step concludes.
type Outcome string

// Outcomes.
const (
	OutcomePass         Outcome = "pass"
	OutcomeFail         Outcome = "fail"
	OutcomeInconclusive Outcome = "inconclusive" // too few samples: wait, never roll back, never promote
)

// Check is one metric of the new version against its limit.
type Check struct {
	Metric    string  `json:"metric"`              // e.g. ttftP95
	Value     float64 `json:"value"`               // the new version's figure
	Baseline  float64 `json:"baseline"`            // the serving version's figure
	Limit     float64 `json:"limit"`               // the figure the value must not cross
	Rule      string  `json:"rule"`                // how the limit was found, e.g. "≤ 1.2× baseline"
	Unit      string  `json:"unit,omitempty"`      // s, %, tokens, tokens/s
	Higher    bool    `json:"higherIsWorse"`       // the limit is a ceiling (else a floor)
	OK        bool    `json:"ok"`                  // within the limit
	Skipped   string  `json:"skipped,omitempty"`   // why the check could not be made
	Candidate Color   `json:"candidate,omitempty"` // the colour judged
	// Low is the value's one-sided 95% lower confidence bound (p95s; 0: none).
	// Noise: the value is past the limit but Low is not, so a few slow answers
	// may be all there is: the verdict waits for more (inconclusive).
	Low   float64 `json:"low,omitempty"`
	Noise bool    `json:"withinNoise,omitempty"`
}

func (c Check) String() string {
	if c.Skipped != "" {
		return fmt.Sprintf("%s n/a (%s)", c.Metric, c.Skipped)
	}
	op := "≥"
	if c.Higher {
		op = "≤"
	}
	mark := "ok"
	switch {
	case c.Noise:
		mark = fmt.Sprintf("within noise (95%% lower bound %s)", fmtVal(c.Low, c.Unit))
	case !c.OK:
		mark = "FAIL"
	}
	return fmt.Sprintf("%s %s vs %s, limit %s %s (%s) %s", c.Metric, fmtVal(c.Value, c.Unit), fmtVal(c.Baseline, c.Unit), op, fmtVal(c.Limit, c.Unit), c.Rule, mark)
}

func fmtVal(v float64, unit string) string {
	switch unit {
	case "s":
		return time.Duration(v * float64(time.Second)).Round(time.Millisecond).String()
	case "%":
		return fmt.Sprintf("%.1f%%", v*100)
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

// Verdict is the analysis of a step.
type Verdict struct {
	Outcome   Outcome    `json:"outcome"`
	Reason    string     `json:"reason"` // one line; names the metric on a failure
	Samples   int64      `json:"samples"`
	Baseline  int64      `json:"baselineSamples"`
	Checks    []Check    `json:"checks,omitempty"`
	Candidate GroupStats `json:"candidate"`
	Serving   GroupStats `json:"serving"`
}

// Judge compares the new colour's figures with the serving colour's. Fewer
// than MinSamples requests on either side is inconclusive whatever the figures,
// so a quiet hour neither rolls back nor promotes. So is a p95 past its limit
// whose lower confidence bound is not: it may rest on a few slow answers.
func Judge(a Analysis, serving, cand GroupStats) Verdict {
	v := Verdict{Samples: cand.Requests, Baseline: serving.Requests, Candidate: cand, Serving: serving}
	v.Checks = checks(a.Thresholds, serving, cand)
	min := int64(max(a.MinSamples, 1))
	if cand.Requests < min || serving.Requests < min {
		v.Outcome = OutcomeInconclusive
		v.Reason = fmt.Sprintf("inconclusive: %d request(s) on %s and %d on %s, %d needed on each (rollout.canary.analysis.minSamples)",
			cand.Requests, orName(cand.Color, "the new version"), serving.Requests, orName(serving.Color, "the serving version"), min)
		return v
	}
	var failed, noise []string
	for _, c := range v.Checks {
		switch {
		case c.failed():
			failed = append(failed, c.String())
		case c.Noise:
			noise = append(noise, c.String())
		}
	}
	if len(failed) > 0 {
		v.Outcome, v.Reason = OutcomeFail, "failed: "+strings.Join(failed, "; ")
		return v
	}
	if len(noise) > 0 {
		v.Outcome = OutcomeInconclusive
		v.Reason = fmt.Sprintf("inconclusive: %s; %d request(s) on %s cannot tell it from chance yet",
			strings.Join(noise, "; "), cand.Requests, orName(cand.Color, "the new version"))
		return v
	}
	v.Outcome = OutcomePass
	v.Reason = fmt.Sprintf("pass: %d request(s) on %s, %d on %s, every metric within its limit", cand.Requests, orName(cand.Color, "the new version"), serving.Requests, orName(serving.Color, "the serving version"))
	return v
}

// FailedMetric names the first failing metric of a failed verdict, or "".
func (v Verdict) FailedMetric() string {
	if v.Outcome != OutcomeFail {
		return ""
	}
	for _, c := range v.Checks {
		if c.failed() {
			return c.Metric
		}
	}
	return ""
}

// failed: a check made, past its limit beyond noise.
func (c Check) failed() bool { return c.Skipped == "" && !c.OK && !c.Noise }

func orName(c Color, def string) string {
	if c == "" {
		return def
	}
	return string(c)
}

// checks builds every metric's comparison, in the order a failure is named.
func checks(t Thresholds, s, c GroupStats) []Check {
	var out []Check
	// Error rate: a rise of points, and an absolute ceiling.
	if t.ErrorRatePoints > 0 || t.MaxErrorRate > 0 {
		out = append(out, limitCheck("errorRate", "%", true, c.ErrorRate(), s.ErrorRate(),
			t.ErrorRatePoints > 0, s.ErrorRate()+t.ErrorRatePoints/100, fmt.Sprintf("baseline + %g point(s)", t.ErrorRatePoints),
			t.MaxErrorRate, "rollout.canary.analysis.thresholds.maxErrorRate"))
	}
	secs := func(d time.Duration) float64 { return d.Seconds() }
	if t.TTFTP95Ratio > 0 || t.MaxTTFTP95 > 0 {
		out = append(out, withLow(ratioCheck("ttftP95", "s", true, secs(c.TTFTP95), secs(s.TTFTP95), t.TTFTP95Ratio, t.MaxTTFTP95.D().Seconds(), "maxTTFTP95"), secs(c.TTFTP95Low)))
	}
	if t.TPOTP95Ratio > 0 || t.MaxTPOTP95 > 0 {
		out = append(out, withLow(ratioCheck("tpotP95", "s", true, secs(c.TPOTP95), secs(s.TPOTP95), t.TPOTP95Ratio, t.MaxTPOTP95.D().Seconds(), "maxTPOTP95"), secs(c.TPOTP95Low)))
	}
	if t.TokensPerSecondRatio > 0 || t.MinTokensPerSecond > 0 {
		out = append(out, ratioCheck("tokensPerSecond", "tokens/s", false, c.TokensPerSecond, s.TokensPerSecond, t.TokensPerSecondRatio, t.MinTokensPerSecond, "minTokensPerSecond"))
	}
	if t.OutputTokensP50Ratio > 0 || t.MinOutputTokensP50 > 0 {
		out = append(out, ratioCheck("outputTokensP50", "tokens", false, c.OutputTokensP50, s.OutputTokensP50, t.OutputTokensP50Ratio, t.MinOutputTokensP50, "minOutputTokensP50"))
	}
	if t.LengthSharePoints > 0 || t.MaxLengthShare > 0 {
		ck := limitCheck("finishLengthShare", "%", true, c.LengthShare(), s.LengthShare(),
			t.LengthSharePoints > 0, s.LengthShare()+t.LengthSharePoints/100, fmt.Sprintf("baseline + %g point(s)", t.LengthSharePoints),
			t.MaxLengthShare, "rollout.canary.analysis.thresholds.maxLengthShare")
		if len(c.FinishReasons) == 0 && ck.Skipped == "" {
			ck.Skipped, ck.OK = "no finish_reason reported", true
		}
		out = append(out, ck)
	}
	for i := range out {
		out[i].Candidate = c.Color
	}
	return out
}

// withLow adds a ceiling check's lower confidence bound: past the limit with
// the bound within it is noise, not a failure.
func withLow(c Check, low float64) Check {
	if low <= 0 || c.Skipped != "" || !c.Higher {
		return c
	}
	c.Low = low
	c.Noise = !c.OK && low <= c.Limit
	return c
}

// limitCheck is a metric with a limit found from the baseline (relOn) and an absolute one (abs > 0);
// the stricter applies.
func limitCheck(metric, unit string, higher bool, v, base float64, relOn bool, rel float64, relRule string, abs float64, absName string) Check {
	c := Check{Metric: metric, Unit: unit, Higher: higher, Value: v, Baseline: base}
	switch {
	case relOn && abs > 0:
		c.Limit, c.Rule = rel, relRule
		if (higher && abs < rel) || (!higher && abs > rel) {
			c.Limit, c.Rule = abs, "absolute "+absName
		}
	case relOn:
		c.Limit, c.Rule = rel, relRule
	default:
		c.Limit, c.Rule = abs, "absolute "+absName
	}
	if higher {
		c.OK = v <= c.Limit
	} else {
		c.OK = v >= c.Limit
	}
	return c
}

// ratioCheck is a metric whose relative limit is a multiple of the baseline;
// without a baseline figure (0: nothing measured) only the absolute limit applies.
func ratioCheck(metric, unit string, higher bool, v, base, ratio, abs float64, absName string) Check {
	relOn := ratio > 0 && base > 0
	if !relOn && abs <= 0 {
		return Check{Metric: metric, Unit: unit, Higher: higher, Value: v, Baseline: base, OK: true, Skipped: "the serving version reported no " + metric}
	}
	if v == 0 && !higher {
		// Nothing measured on the new version is no evidence it is slow or short.
		return Check{Metric: metric, Unit: unit, Higher: higher, Value: v, Baseline: base, OK: true, Skipped: "the new version reported no " + metric}
	}
	return limitCheck(metric, unit, higher, v, base, relOn, base*ratio, fmt.Sprintf("%g× baseline", ratio), abs, "rollout.canary.analysis.thresholds."+absName)
}
