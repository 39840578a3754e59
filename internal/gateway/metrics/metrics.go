package metrics

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// maxModels bounds the model label: names come from clients.
const maxModels = 64

// Metrics are the gateway's collectors.
type Metrics struct {
	Registry  *prometheus.Registry
	Requests  *prometheus.CounterVec   // ai_api_requests_total{endpoint,method,status}
	Duration  *prometheus.HistogramVec // ai_api_request_duration_seconds{endpoint}
	Tokens    *prometheus.CounterVec   // ai_tokens_usage_total{model,type}
	Inference *prometheus.HistogramVec // ai_model_inference_duration_seconds{model}
	TTFT      *prometheus.HistogramVec // ai_gateway_time_to_first_token_seconds{model}
	Cache     *prometheus.CounterVec   // ai_gateway_cache_results_total{result,level}
	Limits    *prometheus.CounterVec   // ai_gateway_limit_decisions_total{decision}
	Degraded  *prometheus.CounterVec   // ai_gateway_degraded_total{reason}

	mu     sync.Mutex
	models map[string]struct{}
}

// New registers every collector on a fresh registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_api_requests_total", Help: "Requests answered by the gateway.",
		}, []string{"endpoint", "method", "status"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ai_api_request_duration_seconds", Help: "Time from request to the end of the answer.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_tokens_usage_total", Help: "Tokens reported by the model, by type input or output.",
		}, []string{"model", "type"}),
		Inference: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ai_model_inference_duration_seconds", Help: "Time the upstream model took for a request.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30},
		}, []string{"model"}),
		TTFT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ai_gateway_time_to_first_token_seconds", Help: "Time from request to the first streamed event.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10},
		}, []string{"model"}),
		Cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_cache_results_total", Help: "Cache lookups by result (HIT, MISS, BYPASS, STALE) and level.",
		}, []string{"result", "level"}),
		Limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_limit_decisions_total", Help: "Rate limit decisions: allowed or rejected.",
		}, []string{"decision"}),
		Degraded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_degraded_total", Help: "Answers served without an upstream, by reason.",
		}, []string{"reason"}),
		models: map[string]struct{}{},
	}
	reg.MustRegister(m.Requests, m.Duration, m.Tokens, m.Inference, m.TTFT, m.Cache, m.Limits, m.Degraded,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Model returns name as a label value while fewer than maxModels distinct
// names were seen, then "other" for new ones.
func (m *Metrics) Model(name string) string {
	if name == "" {
		return "unknown"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.models[name]; ok {
		return name
	}
	if len(m.models) >= maxModels {
		return "other"
	}
	m.models[name] = struct{}{}
	return name
}

// statusText avoids an allocation for the usual codes.
var statusText = func() map[int]string {
	out := map[int]string{}
	for c := 100; c < 600; c++ {
		out[c] = strconv.Itoa(c)
	}
	return out
}()

// Status returns the label value of an HTTP status.
func Status(code int) string {
	if s, ok := statusText[code]; ok {
		return s
	}
	return strconv.Itoa(code)
}
