package k8s

import (
	"context"
	"fmt"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
)

// GroupStats reads each colour's figures over the window from every gateway
// pod and merges them (see MergeGroupStats).
func (p *Platform) GroupStats(ctx context.Context, window time.Duration) ([]rollout.GroupStats, error) {
	pods, err := p.splitGateway(ctx)
	if err != nil {
		return nil, err
	}
	per := make([]adminapi.Stats, len(pods))
	g, gctx := errgroup.WithContext(ctx)
	for i, gp := range pods {
		g.Go(func() error {
			st, err := gp.admin.Stats(gctx, adminapi.DefaultPool, window)
			if err != nil {
				return fmt.Errorf("reading the stats of gateway pod %s: %w", gp.name, err)
			}
			per[i] = st
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return MergeGroupStats(per), nil
}

// MergeGroupStats adds up what several gateway pods measured of each group
// (and of each group's mirror apart): requests, errors, drops and finish
// reasons are summed; every other figure, the p95s (TTFT, TPOT) included, is
// the pods' figures weighted by their requests. The pods report percentiles,
// not histograms, so the merged p95s and p50 are estimates: fair ones, since
// every gateway pod sends to the same model pods. The worst pod's p95 would
// be biased upwards for the version with fewer requests (a canary at 10%),
// more so the more gateway pods there are, and abort good versions. The p95s'
// lower confidence bounds merge the same way, so each is that of fewer
// answers than the merged p95's, hence lower: a slow draw of a few answers is
// called noise somewhat more readily than on one gateway, never less. A pod
// that saw the group but reported no bound leaves the merged one out (0).
func MergeGroupStats(per []adminapi.Stats) []rollout.GroupStats {
	type key struct {
		group  string
		shadow bool
	}
	secs := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	merged := map[key]*rollout.GroupStats{}
	weight := map[key]float64{} // requests behind the weighted means
	noLow := map[key][2]bool{}  // a pod with requests reported no TTFT, TPOT bound
	for _, st := range per {
		for _, g := range st.ByGroup {
			k := key{g.Group, g.Shadow}
			m := merged[k]
			if m == nil {
				m = &rollout.GroupStats{Color: rollout.Color(g.Group), Shadow: g.Shadow}
				merged[k] = m
			}
			m.Requests += g.Requests
			m.Errors += g.Errors
			m.Dropped += g.Dropped
			for r, n := range g.FinishReasons {
				if m.FinishReasons == nil {
					m.FinishReasons = map[string]int64{}
				}
				m.FinishReasons[r] += n
			}
			if g.Requests == 0 {
				continue
			}
			w, n := weight[k], float64(g.Requests)
			mean := func(old, v float64) float64 { return (old*w + v*n) / (w + n) }
			m.TTFTP95 = secs(mean(m.TTFTP95.Seconds(), g.TTFTP95Seconds))
			m.TPOTP95 = secs(mean(m.TPOTP95.Seconds(), g.TPOTP95Seconds))
			m.TTFTP95Low = secs(mean(m.TTFTP95Low.Seconds(), g.TTFTP95LowSeconds))
			m.TPOTP95Low = secs(mean(m.TPOTP95Low.Seconds(), g.TPOTP95LowSeconds))
			nl := noLow[k]
			noLow[k] = [2]bool{nl[0] || g.TTFTP95LowSeconds == 0, nl[1] || g.TPOTP95LowSeconds == 0}
			m.TokensPerSecond = mean(m.TokensPerSecond, g.TokensPerSecond)
			m.OutputTokensP50 = mean(m.OutputTokensP50, g.OutputTokensP50)
			m.OutputTokensMean = mean(m.OutputTokensMean, g.OutputTokensMean)
			weight[k] = w + n
		}
	}
	out := make([]rollout.GroupStats, 0, len(merged))
	for k, m := range merged {
		if noLow[k][0] {
			m.TTFTP95Low = 0
		}
		if noLow[k][1] {
			m.TPOTP95Low = 0
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Color != out[b].Color {
			return out[a].Color < out[b].Color
		}
		return !out[a].Shadow && out[b].Shadow
	})
	return out
}
