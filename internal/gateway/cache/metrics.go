package cache

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the cache's Prometheus series; build them once per registry with NewMetrics.
type Metrics struct {
	hits      *prometheus.CounterVec
	l1Hits    prometheus.Counter // hits{level="L1"}, resolved once: it is on every hit's path
	l2Hits    prometheus.Counter
	staleHits *prometheus.CounterVec
	misses    prometheus.Counter
	l2Errors  prometheus.Counter
	l2Skipped prometheus.Counter
	l1Evicted prometheus.CounterFunc
	l1Entries prometheus.GaugeFunc
	l1        atomic.Pointer[l1] // the L1 tier the gauges read; the latest New wins
}

// NewMetrics creates the cache series and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_cache_hits_total",
			Help: "Cache lookups that found a fresh answer, by level (L1, L2).",
		}, []string{"level"}),
		staleHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_cache_stale_hits_total",
			Help: "Cache lookups that found only an answer past its TTL but within staleFor, by level.",
		}, []string{"level"}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ai_gateway_cache_misses_total",
			Help: "Cache lookups that found nothing usable.",
		}),
		l2Errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ai_gateway_cache_l2_errors_total",
			Help: "Redis calls of the cache that failed or timed out.",
		}),
		l2Skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ai_gateway_cache_l2_skipped_total",
			Help: "Redis calls of the cache skipped because Redis failed repeatedly just before.",
		}),
	}
	m.l1Evicted = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "ai_gateway_cache_l1_evictions_total",
		Help: "Answers (or parts of large ones) the in-process cache dropped to make room; steady growth means it is full.",
	}, func() float64 {
		if l1 := m.l1.Load(); l1 != nil {
			return float64(l1.fc.EvacuateCount())
		}
		return 0
	})
	m.l1Entries = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ai_gateway_cache_l1_entries",
		Help: "Answers held in the in-process cache; a large answer stored in parts counts once per part.",
	}, func() float64 {
		if l1 := m.l1.Load(); l1 != nil {
			return float64(l1.fc.EntryCount())
		}
		return 0
	})
	m.l1Hits, m.l2Hits = m.hits.WithLabelValues(LevelL1), m.hits.WithLabelValues(LevelL2)
	for _, l := range []string{LevelL1, LevelL2} {
		m.staleHits.WithLabelValues(l)
	}
	if reg != nil {
		reg.MustRegister(m.hits, m.staleHits, m.misses, m.l2Errors, m.l2Skipped, m.l1Evicted, m.l1Entries)
	}
	return m
}
