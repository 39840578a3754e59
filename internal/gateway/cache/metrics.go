package cache

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the cache's Prometheus series; build them once per registry with NewMetrics.
type Metrics struct {
	hits      *prometheus.CounterVec
	staleHits *prometheus.CounterVec
	misses    prometheus.Counter
	l2Errors  prometheus.Counter
	l2Skipped prometheus.Counter
	l1Bytes   prometheus.Gauge
	l1Entries prometheus.Gauge
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
		l1Bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ai_gateway_cache_l1_bytes",
			Help: "Bytes of answers held in the in-process cache.",
		}),
		l1Entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ai_gateway_cache_l1_entries",
			Help: "Answers held in the in-process cache.",
		}),
	}
	for _, l := range []string{LevelL1, LevelL2} {
		m.hits.WithLabelValues(l)
		m.staleHits.WithLabelValues(l)
	}
	if reg != nil {
		reg.MustRegister(m.hits, m.staleHits, m.misses, m.l2Errors, m.l2Skipped, m.l1Bytes, m.l1Entries)
	}
	return m
}
