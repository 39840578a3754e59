package upstream

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
)

func TestFineIndexAndBoundsAgree(t *testing.T) {
	t.Parallel()
	for i := 1; i < fineBuckets-1; i++ {
		lo, hi := fineUpper(i-1, ttftBase), fineUpper(i, ttftBase)
		if got := fineIndex(hi, ttftBase); got != i {
			t.Fatalf("upper bound %v of bucket %d lands in %d", hi, i, got)
		}
		if got := fineIndex(lo*1.000001, ttftBase); got != i {
			t.Fatalf("just above the lower bound %v of bucket %d lands in %d", lo, i, got)
		}
		if r := hi / lo; math.Abs(r-fineFactor) > 1e-9 || r > 1.1 {
			t.Fatalf("bucket %d is %v wide, want %v ≤ 1.1", i, r, fineFactor)
		}
	}
	if fineIndex(1e9, ttftBase) != fineBuckets-1 || fineIndex(-1, ttftBase) != 0 || fineIndex(math.NaN(), ttftBase) != 0 {
		t.Fatal("out-of-range values are not clamped to the end buckets")
	}
}

func TestFineIntQuantileIsExactForSmallCountsAndCloseAbove(t *testing.T) {
	t.Parallel()
	for v := 1; v <= 60000; v++ {
		var h [fineBuckets]uint64
		h[fineIndex(float64(v), 1)] = 10
		got := fineIntQuantile(&h, 0.5)
		if v <= 11 && got != float64(v) {
			t.Fatalf("p50 of %d tokens = %v, want it exact", v, got)
		}
		if got < float64(v) || got > float64(v)*fineFactor {
			t.Fatalf("p50 of %d tokens = %v, want within one bucket above", v, got)
		}
	}
}

// TestFineQuantileHasNoBucketJumps: a narrow distribution moved by 2% moves
// its p95 by about 2% wherever the bucket bounds fall (the coarse 1.5×
// buckets turned such a move into a 1.5× jump at a bound).
func TestFineQuantileHasNoBucketJumps(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range 200 {
		center := 0.1 * math.Exp2(float64(k)/200) // across a whole octave of bound positions
		var a, b [fineBuckets]uint64
		for range 500 {
			v := center * (1 + 0.01*rng.NormFloat64())
			a[fineIndex(v, ttftBase)]++
			b[fineIndex(v*1.02, ttftBase)]++
		}
		pa, pb := fineQuantile(&a, 0.95, ttftBase), fineQuantile(&b, 0.95, ttftBase)
		if r := pb / pa; r < 1 || r > 1.12 {
			t.Fatalf("at %v s: p95 %v against %v after a 2%% shift (×%.3f)", center, pb, pa, r)
		}
		if pa < center*0.95 || pa > center*1.1 {
			t.Fatalf("p95 of values around %v s = %v", center, pa)
		}
	}
}

// TestRatioThresholdOnGroupFigures runs the gateway's per-group figures into
// the rollout's analysis with its default 1.2× limits: two groups drawing from
// the same distributions pass, wherever the distribution sits against the
// bucket bounds; twice the time to first token fails on ttftP95.
func TestRatioThresholdOnGroupFigures(t *testing.T) {
	t.Parallel()
	// answer draws one answer: first token around ttft (a skewed spread like a
	// busy machine's), 8 streamed tokens 5 ms apart.
	answer := func(rng *rand.Rand, ttft time.Duration) Answer {
		first := time.Duration(float64(ttft) * (1 + 0.3*rng.ExpFloat64()/3))
		return Answer{TTFT: first, Total: first + 7*time.Duration(float64(5*time.Millisecond)*(1+0.2*rng.Float64())), Tokens: 8, Streamed: true, Finish: "stop"}
	}
	// judge sends n answers, one in every to green (the new version).
	judge := func(seed uint64, n, every int, blueTTFT, greenTTFT time.Duration) rollout.Verdict {
		p := &Pool{}
		rng := rand.New(rand.NewPCG(seed, 7))
		for i := range n {
			g, ttft := "blue", blueTTFT
			if i%every == 0 {
				g, ttft = "green", greenTTFT
			}
			p.countGroup(g, false, false, false, false)
			p.observeGroup(g, false, answer(rng, ttft))
		}
		byColor := map[string]rollout.GroupStats{}
		for _, g := range p.groupStats(time.Now(), time.Minute) {
			byColor[g.Group] = rolloutFigures(g)
		}
		return rollout.Judge(rollout.DefaultAnalysis(), byColor["blue"], byColor["green"])
	}
	for k := range 24 {
		// 195 ms and around it, a whole octave of positions against the bounds.
		ttft := time.Duration(float64(195*time.Millisecond) * math.Exp2(float64(k)/24))
		// A first canary step: 5% of 1,000 answers, 50 on the new version.
		if v := judge(uint64(k), 1000, 20, ttft, ttft); v.Outcome != rollout.OutcomePass {
			t.Errorf("equal versions with ttft %s, 5%% on the new one: %s", ttft, v.Reason)
		}
		if v := judge(uint64(k), 2000, 2, ttft, ttft); v.Outcome != rollout.OutcomePass {
			t.Errorf("equal versions with ttft %s, half on each: %s", ttft, v.Reason)
		}
		v := judge(uint64(k), 1000, 20, ttft, 2*ttft)
		if v.Outcome != rollout.OutcomeFail || v.FailedMetric() != "ttftP95" {
			t.Errorf("a version twice as slow to its first token (%s): %s, %s", 2*ttft, v.Outcome, v.Reason)
		}
	}
	// Few answers on the new version (25: a first step at low traffic) and a
	// long tail (a busy machine's stalls): a p95 over its limit by the draw
	// of a few slow answers is inconclusive, never a failure, in any of 200
	// draws; twice as slow still fails.
	tail := func(rng *rand.Rand, ttft time.Duration) Answer {
		a := answer(rng, ttft)
		a.TTFT = time.Duration(float64(ttft) * (1 + 0.5*rng.ExpFloat64()))
		a.Total = a.TTFT + 35*time.Millisecond
		return a
	}
	minSamples := rollout.DefaultAnalysis()
	minSamples.MinSamples = 20
	var waited, slowTTFT int
	for seed := range uint64(200) {
		p := judgeFew(seed, 195*time.Millisecond, 195*time.Millisecond, tail)
		v := rollout.Judge(minSamples, p[0], p[1])
		if v.Outcome == rollout.OutcomeFail {
			t.Fatalf("draw %d: equal versions, 25 answers on the new one: %s", seed, v.Reason)
		}
		if v.Outcome == rollout.OutcomeInconclusive {
			waited++
		}
		p = judgeFew(seed, 195*time.Millisecond, 390*time.Millisecond, tail)
		v = rollout.Judge(minSamples, p[0], p[1])
		if v.Outcome != rollout.OutcomeFail {
			t.Fatalf("draw %d: twice as slow, 25 answers: %s, %s", seed, v.Outcome, v.Reason)
		}
		if v.FailedMetric() == "ttftP95" {
			slowTTFT++
		}
	}
	// Without the bound, each waited draw would have failed a good version.
	if waited == 0 {
		t.Error("no draw of equal versions came past the limit: the case does not test the noise")
	}
	if slowTTFT < 180 {
		t.Errorf("twice as slow failed on ttftP95 in %d of 200 draws only", slowTTFT)
	}
	t.Logf("equal versions at 25 answers: %d of 200 draws past the limit within noise (waited), none failed; twice as slow: all failed, %d on ttftP95", waited, slowTTFT)
}

// judgeFew returns blue's figures over 475 answers and green's over 25.
func judgeFew(seed uint64, blueTTFT, greenTTFT time.Duration, answer func(*rand.Rand, time.Duration) Answer) [2]rollout.GroupStats {
	p := &Pool{}
	rng := rand.New(rand.NewPCG(seed, 11))
	for i := range 500 {
		g, ttft := "blue", blueTTFT
		if i%20 == 0 {
			g, ttft = "green", greenTTFT
		}
		p.countGroup(g, false, false, false, false)
		p.observeGroup(g, false, answer(rng, ttft))
	}
	var out [2]rollout.GroupStats
	for _, g := range p.groupStats(time.Now(), time.Minute) {
		if g.Group == "green" {
			out[1] = rolloutFigures(g)
		} else {
			out[0] = rolloutFigures(g)
		}
	}
	return out
}

// TestLowRankBoundsTheQuantile: the lower bound sits under the true p95 in
// about 95 of 100 draws of n answers, at any n.
func TestLowRankBoundsTheQuantile(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	truth := -math.Log(0.05) * 0.1 // the p95 of an exponential with mean 100 ms
	for _, n := range []int{20, 50, 200, 2000} {
		under := 0
		const draws = 1000
		for range draws {
			var h [fineBuckets]uint64
			for range n {
				h[fineIndex(0.1*rng.ExpFloat64(), ttftBase)]++
			}
			if fineQuantile(&h, lowRank(&h, 0.95), ttftBase) <= truth {
				under++
			}
		}
		// 95% by design; the normal approximation and the buckets move it a little.
		if share := float64(under) / draws; share < 0.9 || share > 0.995 {
			t.Errorf("n=%d: the bound was under the true p95 in %.1f%% of draws, want about 95%%", n, share*100)
		}
	}
}

func rolloutFigures(g adminapi.GroupStats) rollout.GroupStats {
	secs := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	return rollout.GroupStats{Color: rollout.Color(g.Group), Requests: g.Requests, Errors: g.Errors,
		TTFTP95: secs(g.TTFTP95Seconds), TPOTP95: secs(g.TPOTP95Seconds), TokensPerSecond: g.TokensPerSecond,
		TTFTP95Low: secs(g.TTFTP95LowSeconds), TPOTP95Low: secs(g.TPOTP95LowSeconds),
		OutputTokensP50: g.OutputTokensP50, OutputTokensMean: g.OutputTokensMean, FinishReasons: g.FinishReasons}
}
