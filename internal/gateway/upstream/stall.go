package upstream

import (
	"math"
	"runtime/metrics"
	"sync"
	"time"
)

// schedLatencies is the Go runtime's histogram of how long goroutines waited
// to run once they could: on a host whose other work takes the CPU, the
// operating system stops the gateway's threads, and it grows with the stalls.
const schedLatencies = "/sched/latencies:seconds"

// stallMeter reads, at most once a stallEvery, how long this process's
// goroutines waited to run over the last interval (its 99th percentile).
// A queued request's wait must outlast such a stall: while the host stops
// the gateway and the model, no slot frees, and the clients the stall held
// up all arrive together when it ends. Reading the runtime's histogram
// allocates, so only the queue's slow path asks.
type stallMeter struct {
	mu     sync.Mutex
	at     time.Time
	prev   []uint64
	stall  time.Duration
	sample [1]metrics.Sample
}

const stallEvery = time.Second

// p99 returns the 99th percentile of the scheduling delays since the last
// read that is at least stallEvery old; 0 before the second read.
func (m *stallMeter) p99(now time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.at.IsZero() && now.Sub(m.at) < stallEvery {
		return m.stall
	}
	m.sample[0].Name = schedLatencies
	metrics.Read(m.sample[:])
	if m.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	h := m.sample[0].Value.Float64Histogram()
	if m.prev != nil && len(m.prev) == len(h.Counts) {
		m.stall = quantile(h, m.prev, 0.99)
	}
	m.prev = append(m.prev[:0], h.Counts...)
	m.at = now
	return m.stall
}

// quantile is the upper bound of the bucket that holds the q-quantile of the
// counts added since prev.
func quantile(h *metrics.Float64Histogram, prev []uint64, q float64) time.Duration {
	var total uint64
	for i, c := range h.Counts {
		total += c - prev[i]
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range h.Counts {
		seen += c - prev[i]
		if seen >= want {
			upper := h.Buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = h.Buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return 0
}
