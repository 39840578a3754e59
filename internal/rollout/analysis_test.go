package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/units"
)

func TestJudge(t *testing.T) {
	t.Parallel()
	a := DefaultAnalysis()
	abs := DefaultAnalysis()
	abs.Thresholds.MaxTTFTP95 = units.Duration(220 * time.Millisecond)
	abs.Thresholds.MaxErrorRate = 0.005
	noTokens := goodStats(Green, 200)
	noTokens.TokensPerSecond, noTokens.OutputTokensP50, noTokens.FinishReasons = 0, 0, nil
	tests := []struct {
		name     string
		a        Analysis
		serving  GroupStats
		cand     GroupStats
		want     Outcome
		metric   string
		contains string
	}{
		{"equal versions pass", a, goodStats(Blue, 200), goodStats(Green, 200), OutcomePass, "", "every metric within its limit"},
		{"too few on the new version", a, goodStats(Blue, 200), goodStats(Green, 49), OutcomeInconclusive, "", "49 request(s) on green"},
		{"too few on the serving one", a, goodStats(Blue, 10), goodStats(Green, 200), OutcomeInconclusive, "", "10 on blue"},
		{"a failing figure on too few samples is still inconclusive", a, goodStats(Blue, 200), GroupStats{Color: Green, Requests: 5, Errors: 5}, OutcomeInconclusive, "", "50 needed"},
		{"ttft 1.2x is the limit itself", a, goodStats(Blue, 200), func() GroupStats { g := goodStats(Green, 200); g.TTFTP95 = 240 * time.Millisecond; return g }(), OutcomePass, "", ""},
		{"an absolute limit stricter than the ratio wins", abs, goodStats(Blue, 200), func() GroupStats { g := goodStats(Green, 200); g.TTFTP95 = 230 * time.Millisecond; return g }(),
			OutcomeFail, "ttftP95", "absolute rollout.canary.analysis.thresholds.maxTTFTP95"},
		{"an absolute error ceiling", abs, goodStats(Blue, 200), GroupStats{Color: Green, Requests: 200, Errors: 2, TTFTP95: 200 * time.Millisecond}, OutcomeFail, "errorRate", "limit ≤ 0.5%"},
		{"slower output per token", a, goodStats(Blue, 200), func() GroupStats {
			g := goodStats(Green, 200)
			g.TPOTP95 = 40 * time.Millisecond
			g.TokensPerSecond = 25
			return g
		}(),
			OutcomeFail, "tpotP95", "tokensPerSecond 25.0 tokens/s"},
		{"no token figures on the new version are no evidence", a, goodStats(Blue, 200), noTokens, OutcomePass, "", ""},
		{"a p95 past its limit within noise waits", a, goodStats(Blue, 200), func() GroupStats {
			g := goodStats(Green, 60)
			g.TTFTP95, g.TTFTP95Low = 300*time.Millisecond, 230*time.Millisecond
			return g
		}(), OutcomeInconclusive, "", "ttftP95 300ms vs 200ms, limit ≤ 240ms (1.2× baseline) within noise (95% lower bound 230ms)"},
		{"a p95 past its limit beyond noise fails", a, goodStats(Blue, 200), func() GroupStats {
			g := goodStats(Green, 60)
			g.TTFTP95, g.TTFTP95Low = 300*time.Millisecond, 250*time.Millisecond
			return g
		}(), OutcomeFail, "ttftP95", "ttftP95 300ms vs 200ms, limit ≤ 240ms (1.2× baseline) FAIL"},
		{"noise does not hide another metric's failure", a, goodStats(Blue, 200), func() GroupStats {
			g := goodStats(Green, 60)
			g.TTFTP95, g.TTFTP95Low = 300*time.Millisecond, 230*time.Millisecond
			g.OutputTokensP50 = 60
			return g
		}(), OutcomeFail, "outputTokensP50", "outputTokensP50 60.0 tokens"},
		{"no serving figure skips the ratio", a, GroupStats{Color: Blue, Requests: 200}, goodStats(Green, 200), OutcomePass, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := Judge(tt.a, tt.serving, tt.cand)
			if v.Outcome != tt.want || v.FailedMetric() != tt.metric || !strings.Contains(v.Reason, tt.contains) {
				t.Errorf("Judge = %s, metric %q, reason %q; want %s, %q, containing %q", v.Outcome, v.FailedMetric(), v.Reason, tt.want, tt.metric, tt.contains)
			}
		})
	}
}
