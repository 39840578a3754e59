package metrics

import (
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	inflightDesc = prometheus.NewDesc("ai_gateway_upstream_inflight", "Requests in progress per upstream target.", []string{"pool", "target"}, nil)
	healthyDesc  = prometheus.NewDesc("ai_gateway_upstream_healthy", "1 when the target is healthy.", []string{"pool", "target"}, nil)
	breakerDesc  = prometheus.NewDesc("ai_gateway_breaker_open", "1 when the target's breaker is open, 0.5 half-open.", []string{"pool", "target"}, nil)
	limitDesc    = prometheus.NewDesc("ai_gateway_upstream_limit", "Most requests in flight per upstream target now: the adaptive or fixed limit (absent when there is none).", []string{"pool", "target"}, nil)
	queueDesc    = prometheus.NewDesc("ai_gateway_upstream_queue_depth", "Requests waiting for a free upstream slot.", []string{"pool"}, nil)
)

// Upstreams exports pool state read at scrape time, so the hot path pays nothing.
type Upstreams func() []adminapi.Pool

// Describe implements prometheus.Collector.
func (u Upstreams) Describe(ch chan<- *prometheus.Desc) {
	ch <- inflightDesc
	ch <- healthyDesc
	ch <- breakerDesc
	ch <- queueDesc
	ch <- limitDesc
}

// Collect implements prometheus.Collector.
func (u Upstreams) Collect(ch chan<- prometheus.Metric) {
	for _, p := range u() {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(p.Queued), p.Name)
		for _, t := range p.Targets {
			ch <- prometheus.MustNewConstMetric(inflightDesc, prometheus.GaugeValue, float64(t.Inflight), p.Name, t.URL)
			if t.Limit > 0 {
				ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(t.Limit), p.Name, t.URL)
			}
			h := 0.0
			if t.Healthy {
				h = 1
			}
			ch <- prometheus.MustNewConstMetric(healthyDesc, prometheus.GaugeValue, h, p.Name, t.URL)
			b := 0.0
			switch t.Breaker {
			case "open":
				b = 1
			case "half-open":
				b = 0.5
			}
			ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, b, p.Name, t.URL)
		}
	}
}
