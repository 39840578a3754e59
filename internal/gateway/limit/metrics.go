package limit

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the limiter's Prometheus series; build them once per registry with NewMetrics.
type Metrics struct {
	decisions         *prometheus.CounterVec
	byOutcome         map[outcome]prometheus.Counter // decisions' children, resolved once
	fallback          prometheus.Gauge
	fallbackDecisions prometheus.Counter
	redisErrors       prometheus.Counter
}

// NewMetrics creates the limiter series and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_ratelimit_decisions_total",
			Help: "Rate-limit checks by result (allowed, rejected), kind (requests, tokens) and backend; a request may make two checks. Share of requests rejected: ai_gateway_limit_decisions_total.",
		}, []string{"result", "kind", "backend"}),
		fallback: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ai_gateway_ratelimit_fallback",
			Help: "1 while rate limits are enforced by local counters because Redis is unavailable.",
		}),
		fallbackDecisions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ai_gateway_ratelimit_fallback_decisions_total",
			Help: "Rate-limit decisions made by local counters because Redis was unavailable.",
		}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ai_gateway_ratelimit_redis_errors_total",
			Help: "Redis calls of the rate limiter that failed or timed out.",
		}),
	}
	m.byOutcome = map[outcome]prometheus.Counter{}
	for _, result := range []string{"allowed", "rejected"} {
		for _, kind := range []string{KindRequests, KindTokens} {
			for _, backend := range []string{BackendLocal, BackendRedis, BackendFallback} {
				m.byOutcome[outcome{result == "allowed", kind, backend}] = m.decisions.WithLabelValues(result, kind, backend)
			}
		}
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.fallback, m.fallbackDecisions, m.redisErrors)
	}
	return m
}

// outcome is the label set of one decision.
type outcome struct {
	allowed       bool
	kind, backend string
}

func (m *Metrics) decision(d Decision) {
	m.byOutcome[outcome{d.Allowed, d.Kind, d.Backend}].Inc()
}
