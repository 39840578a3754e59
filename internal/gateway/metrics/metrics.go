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
	Retries   *prometheus.CounterVec   // ai_gateway_upstream_retries_total{pool}
	// Fallbacks counts requests served by a split's fallback group because
	// their assigned group had no usable target or dropped them unanswered.
	Fallbacks *prometheus.CounterVec // ai_gateway_upstream_fallbacks_total{pool}
	// LimitAllowed is Limits{decision="allowed"}, resolved once: it is on every admitted request's path.
	LimitAllowed prometheus.Counter

	mu       sync.Mutex // serialises admitting new model names
	models   map[string]struct{}
	series   sync.Map // model name -> *ModelSeries, so the hot path skips label hashing
	requests sync.Map // requestKey -> prometheus.Counter
	duration sync.Map // endpoint -> prometheus.Observer
	results  sync.Map // [2]string{result, level} -> prometheus.Counter
}

// ModelSeries are the per-model series of one model label, resolved once.
type ModelSeries struct {
	Label     string
	Inference prometheus.Observer
	TTFT      prometheus.Observer
	TokensIn  prometheus.Counter
	TokensOut prometheus.Counter
}

// ForModel returns the series of a model name as the request named it; names
// past the bound share the series of "other" (see Model).
func (m *Metrics) ForModel(name string) *ModelSeries {
	if s, ok := m.series.Load(name); ok {
		return s.(*ModelSeries)
	}
	label := m.Model(name)
	s := &ModelSeries{
		Label:     label,
		Inference: m.Inference.WithLabelValues(label),
		TTFT:      m.TTFT.WithLabelValues(label),
		TokensIn:  m.Tokens.WithLabelValues(label, "input"),
		TokensOut: m.Tokens.WithLabelValues(label, "output"),
	}
	if label != name {
		return s // do not remember unbounded names
	}
	v, _ := m.series.LoadOrStore(name, s)
	return v.(*ModelSeries)
}

// CacheResult counts one cache lookup by result and level.
func (m *Metrics) CacheResult(result, level string) {
	k := [2]string{result, level}
	c, ok := m.results.Load(k)
	if !ok {
		c, _ = m.results.LoadOrStore(k, m.Cache.WithLabelValues(result, level))
	}
	c.(prometheus.Counter).Inc()
}

type requestKey struct {
	endpoint, method string
	status           int
}

// ObserveRequest counts one answered request and its duration.
func (m *Metrics) ObserveRequest(endpoint, method string, status int, seconds float64) {
	k := requestKey{endpoint, method, status}
	c, ok := m.requests.Load(k)
	if !ok {
		c, _ = m.requests.LoadOrStore(k, m.Requests.WithLabelValues(endpoint, method, Status(status)))
	}
	c.(prometheus.Counter).Inc()
	o, ok := m.duration.Load(endpoint)
	if !ok {
		o, _ = m.duration.LoadOrStore(endpoint, m.Duration.WithLabelValues(endpoint))
	}
	o.(prometheus.Observer).Observe(seconds)
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
			// The seed's buckets from 0.1s, below them the cache hits and the
			// gateway's own overhead (a few milliseconds), and above them the
			// long generations LLM calls have, up to the 10m request timeout:
			// an alert threshold must lie below the top bucket to ever fire.
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"endpoint"}),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_tokens_usage_total", Help: "Tokens reported by the model, by type input or output.",
		}, []string{"model", "type"}),
		Inference: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ai_model_inference_duration_seconds", Help: "Time the upstream model took for a request.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600},
		}, []string{"model"}),
		TTFT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ai_gateway_time_to_first_token_seconds", Help: "Time from request to the first streamed event.",
			// A first token queued behind a full batch can take a minute.
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
		}, []string{"model"}),
		Cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_cache_results_total", Help: "Cache lookups by result (HIT, MISS, BYPASS, STALE) and level.",
		}, []string{"result", "level"}),
		Limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_limit_decisions_total", Help: "Requests by rate-limit outcome, one per request: allowed, rejected_requests or rejected_tokens.",
		}, []string{"decision"}),
		Degraded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_degraded_total", Help: "Answers served without an upstream, by reason.",
		}, []string{"reason"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_upstream_retries_total", Help: "Requests sent to another target because theirs could not be connected to.",
		}, []string{"pool"}),
		Fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_upstream_fallbacks_total", Help: "Requests served by the split's fallback group because theirs had no usable target or dropped them unanswered.",
		}, []string{"pool"}),
		models: map[string]struct{}{},
	}
	m.LimitAllowed = m.Limits.WithLabelValues("allowed")
	reg.MustRegister(m.Requests, m.Duration, m.Tokens, m.Inference, m.TTFT, m.Cache, m.Limits, m.Degraded, m.Retries, m.Fallbacks,
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
