package upstream

import "math"

// The per-group figures a canary's analysis compares (p95 time to first
// token, p95 time per token, median output length) come from fixed log
// histograms whose buckets are 2^(1/8) ≈ 9% apart: finer than any ratio an
// analysis sensibly uses (1.2× by default), so two equal distributions never
// differ by a whole coarse bucket (the pool's latency histogram is 1.5× apart,
// which alone can read 195 ms against 292 ms). 128 buckets span 2^16 times the
// base: 1 ms to 65 s for the first token, 0.1 ms to 6.5 s per token, 1 to
// 65536 output tokens; larger values count in the last bucket.

const (
	fineBuckets   = 128
	fineSubOctave = 8 // buckets per doubling
)

var fineFactor = math.Pow(2, 1.0/fineSubOctave)

// fineIndex is the bucket of v: 0 holds [0, base], bucket i (base·f^(i-1), base·f^i].
func fineIndex(v, base float64) int {
	if !(v > base) { // NaN counts in the first bucket too
		return 0
	}
	i := int(math.Ceil(math.Log2(v/base)*fineSubOctave - 1e-9))
	return min(i, fineBuckets-1)
}

// fineUpper is the upper bound of bucket i.
func fineUpper(i int, base float64) float64 {
	return base * math.Exp2(float64(i)/fineSubOctave)
}

// fineRank finds the bucket holding the q-quantile of h and how far into the
// bucket's count (0..1] the quantile's rank falls; ok false when h is empty.
func fineRank(h *[fineBuckets]uint64, q float64) (bucket int, frac float64, ok bool) {
	var total uint64
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return 0, 0, false
	}
	rank := q * float64(total)
	var acc float64
	for i, n := range h {
		if n == 0 {
			continue
		}
		if acc+float64(n) >= rank {
			return i, math.Max(rank-acc, 0) / float64(n), true
		}
		acc += float64(n)
	}
	return fineBuckets - 1, 1, true
}

// fineQuantile is the q-quantile of h, interpolated within its bucket on the
// log scale (the bucket's share of the rank maps to its share of the ratio
// between the bounds), so the figure moves smoothly with the samples instead
// of jumping from bound to bound; 0 when empty.
func fineQuantile(h *[fineBuckets]uint64, q, base float64) float64 {
	i, frac, ok := fineRank(h, q)
	switch {
	case !ok:
		return 0
	case i == 0:
		return base * frac
	case i == fineBuckets-1:
		return fineUpper(i, base) // at least this: the last bucket has no upper bound
	}
	return fineUpper(i-1, base) * math.Exp2(frac/fineSubOctave)
}

// fineIntQuantile is the q-quantile of a histogram of whole numbers (base 1):
// the largest whole number of the bucket holding it, which is exact up to 11
// (every bucket there holds at most one) and within 9% above.
func fineIntQuantile(h *[fineBuckets]uint64, q float64) float64 {
	i, _, ok := fineRank(h, q)
	if !ok {
		return 0
	}
	return math.Floor(fineUpper(i, 1) + 1e-9)
}

// lowRank is the rank (as a share of the answers) of the one-sided 95% lower
// confidence bound of h's q-quantile: of n answers, the number below the true
// q-quantile is binomial(n, q), so the answer at rank n·q − 1.645·√(n·q·(1−q))
// is below it 95 times in 100 (the normal approximation; distribution-free).
func lowRank(h *[fineBuckets]uint64, q float64) float64 {
	var n float64
	for _, c := range h {
		n += float64(c)
	}
	if n == 0 {
		return q
	}
	return max(n*q-1.645*math.Sqrt(n*q*(1-q)), 1) / n
}
