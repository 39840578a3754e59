package render

import (
	"fmt"

	"github.com/aideploy/aideploy/internal/config"
)

// alertRule is one Prometheus alerting rule of monitoring/alerts.yaml.
type alertRule struct {
	Name        string
	Expr        string
	For         string
	Severity    string
	Summary     string
	Description string
}

// Alert thresholds. Each latency threshold sits on a bucket boundary of its
// histogram, well below the top one, so histogram_quantile can cross it (a
// threshold at the top bucket can never be exceeded).
const (
	p99LatencySeconds = 60 // ai_api_request_duration_seconds reaches 600s
	p95TTFTSeconds    = 10 // ai_gateway_time_to_first_token_seconds reaches 60s
)

// alertRules are the alerts the seed's incident review asked for: errors, slow
// answers, a slow first token, an open breaker, saturated GPUs, a cold cache,
// a replica the gateway cannot use, a limiter that rejects, and a server that
// queues. What clients see is read from the gateway's job; what the model
// server does, from its own metrics under the model's job.
func alertRules(d *renderData) []alertRule {
	model := fmt.Sprintf(`job=%q`, d.Name)
	gw := fmt.Sprintf(`job=%q`, gatewayJob(d))
	rules := []alertRule{
		{
			Name: "AIDeployHighErrorRate", For: "5m", Severity: "critical",
			Expr:        fmt.Sprintf(`sum(rate(ai_api_requests_total{%s,status=~"5.."}[5m])) / sum(rate(ai_api_requests_total{%s}[5m])) > 0.05`, gw, gw),
			Summary:     d.Name + ": more than 5% of requests fail",
			Description: "{{ $value | humanizePercentage }} of requests answered 5xx over 5 minutes.",
		},
		{
			Name: "AIDeployHighP99Latency", For: "10m", Severity: "warning",
			Expr:        fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(ai_api_request_duration_seconds_bucket{%s}[5m]))) > %d`, gw, p99LatencySeconds),
			Summary:     fmt.Sprintf("%s: p99 latency above %ds", d.Name, p99LatencySeconds),
			Description: "p99 request latency is {{ $value | humanizeDuration }}; scale out or check the model.",
		},
		{
			Name: "AIDeploySlowFirstToken", For: "10m", Severity: "warning",
			Expr:        fmt.Sprintf(`histogram_quantile(0.95, sum by (le) (rate(ai_gateway_time_to_first_token_seconds_bucket{%s}[5m]))) > %d`, gw, p95TTFTSeconds),
			Summary:     fmt.Sprintf("%s: p95 time to first token above %ds", d.Name, p95TTFTSeconds),
			Description: "Streaming clients wait {{ $value | humanizeDuration }} for the first token; requests queue in the model server.",
		},
		{
			Name: "AIDeployBreakerOpen", For: "1m", Severity: "critical",
			Expr:        fmt.Sprintf(`max by (upstream) (ai_gateway_breaker_state{%s}) == %d`, gw, breakerOpen),
			Summary:     d.Name + ": the gateway's circuit breaker is open",
			Description: "Upstream {{ $labels.upstream }} failed repeatedly; the gateway is shedding its requests.",
		},
		{
			Name: "AIDeployGPUSaturated", For: "15m", Severity: "warning",
			Expr:        gpuUtilization(d, "avg") + " > 90",
			Summary:     d.Name + ": GPUs above 90% for 15 minutes",
			Description: "Average GPU utilisation is {{ $value }}%; add replicas before latency grows (a new GPU replica takes minutes to start).",
		},
		{
			Name: "AIDeployLowCacheHitRate", For: "30m", Severity: "info",
			Expr:        fmt.Sprintf(`sum(rate(ai_gateway_cache_hits_total{%s}[15m])) / (sum(rate(ai_gateway_cache_hits_total{%s}[15m])) + sum(rate(ai_gateway_cache_misses_total{%s}[15m]))) < 0.2`, gw, gw, gw),
			Summary:     d.Name + ": cache hit rate below 20%",
			Description: "Only {{ $value | humanizePercentage }} of requests hit the cache; review the cache key and TTL.",
		},
		{
			Name: "AIDeployUpstreamTargetDown", For: "5m", Severity: "warning",
			Expr:        fmt.Sprintf(`min by (pool, target) (ai_gateway_upstream_healthy{%s}) == 0`, gw),
			Summary:     d.Name + ": a model replica behind the gateway is unhealthy",
			Description: "Target {{ $labels.target }} of pool {{ $labels.pool }} has failed its health checks or refused connections for 5 minutes; the gateway sends it nothing. Check the replica, or remove it from the pool.",
		},
		{
			Name: "AIDeployRateLimiterRejecting", For: "10m", Severity: "warning",
			Expr:        fmt.Sprintf(`sum(rate(ai_gateway_limit_decisions_total{%s,decision=~%q}[5m])) / sum(rate(ai_gateway_limit_decisions_total{%s}[5m])) > 0.1`, gw, rateLimitRejected, gw),
			Summary:     d.Name + ": the rate limiter rejects more than 10% of requests",
			Description: "{{ $value | humanizePercentage }} of requests were rejected by the limiter; raise limits or capacity.",
		},
	}
	if queue := queueMetric(d.Server); queue != "" {
		rules = append(rules, alertRule{
			Name: "AIDeployModelQueueing", For: "15m", Severity: "warning",
			Expr:        fmt.Sprintf(`sum(%s{%s}) > 0`, queue, model),
			Summary:     d.Name + ": requests wait in the model server's queue",
			Description: "{{ $value }} requests have waited for a batch slot for 15 minutes: the replicas are saturated; add replicas.",
		})
	}
	return rules
}

// queueMetric is the preset server's gauge of requests waiting for a slot.
func queueMetric(server string) string {
	switch server {
	case config.ServerVLLM:
		return "vllm:num_requests_waiting"
	case config.ServerTGI:
		return "tgi_queue_size"
	}
	return ""
}

// gpuUtilization reads DCGM exporter's gauge for this service's pods (its
// Kubernetes mapping labels each GPU with the pod using it) or, where DCGM
// does not run, `aideploy gpu-metrics`' gauge under the model's job.
func gpuUtilization(d *renderData, agg string) string {
	return fmt.Sprintf(`(%s(%s{pod=~%q}) or %s(%s{job=%q}))`, agg, dcgmGPUUtil, d.Name+"-.+", agg, aideployGPUUtl, d.Name)
}

func gatewayJob(d *renderData) string { return d.Name + "-gateway" }

// panel is one Grafana time-series panel.
type panel struct {
	ID      int
	Title   string
	Unit    string
	Targets []target
	X, Y    int
}

type target struct {
	Expr   string
	Legend string
	RefID  string
}

// dashboardPanels lays the panels out two to a row, 12 columns wide each:
// what clients see (from the gateway), the GPUs, the gateway's own state, then
// the model server's own metrics when its preset exports any.
func dashboardPanels(d *renderData) []panel {
	model := fmt.Sprintf(`job=%q`, d.Name)
	gw := fmt.Sprintf(`job=%q`, gatewayJob(d))
	const rate = "$__rate_interval"
	quantile := func(q, metric, sel, by string) string {
		return fmt.Sprintf(`histogram_quantile(%s, sum by (le%s) (rate(%s_bucket{%s}[%s])))`, q, by, metric, sel, rate)
	}
	ps := []panel{
		{Title: "Requests per second by status", Unit: "reqps", Targets: []target{
			{Expr: fmt.Sprintf(`sum by (status) (rate(ai_api_requests_total{%s}[%s]))`, gw, rate), Legend: "{{status}}"}}},
		{Title: "Error ratio (5xx)", Unit: "percentunit", Targets: []target{
			{Expr: fmt.Sprintf(`sum(rate(ai_api_requests_total{%s,status=~"5.."}[%s])) / sum(rate(ai_api_requests_total{%s}[%s]))`, gw, rate, gw, rate), Legend: "5xx"}}},
		{Title: "Request latency", Unit: "s", Targets: []target{
			{Expr: quantile("0.5", "ai_api_request_duration_seconds", gw, ""), Legend: "p50"},
			{Expr: quantile("0.99", "ai_api_request_duration_seconds", gw, ""), Legend: "p99"}}},
		{Title: "Time to first token", Unit: "s", Targets: []target{
			{Expr: quantile("0.5", "ai_gateway_time_to_first_token_seconds", gw, ""), Legend: "p50"},
			{Expr: quantile("0.95", "ai_gateway_time_to_first_token_seconds", gw, ""), Legend: "p95"}}},
		{Title: "Inference latency p99 by model", Unit: "s", Targets: []target{
			{Expr: quantile("0.99", "ai_model_inference_duration_seconds", gw, ", model"), Legend: "{{model}}"}}},
		{Title: "Tokens per second", Unit: "short", Targets: []target{
			{Expr: fmt.Sprintf(`sum by (type) (rate(ai_tokens_usage_total{%s}[%s]))`, gw, rate), Legend: "{{type}}"}}},
		{Title: "GPU utilisation (DCGM, or aideploy gpu-metrics)", Unit: "percent", Targets: []target{
			{Expr: fmt.Sprintf(`avg by (pod, gpu) (%s{pod=~%q})`, dcgmGPUUtil, d.Name+"-.+"), Legend: "{{pod}} GPU {{gpu}}"},
			{Expr: fmt.Sprintf(`avg by (gpu_id) (%s{%s})`, aideployGPUUtl, model), Legend: "GPU {{gpu_id}}"}}},
		{Title: "Cache hit rate", Unit: "percentunit", Targets: []target{
			{Expr: fmt.Sprintf(`sum(rate(ai_gateway_cache_hits_total{%s}[%s])) / (sum(rate(ai_gateway_cache_hits_total{%s}[%s])) + sum(rate(ai_gateway_cache_misses_total{%s}[%s])))`, gw, rate, gw, rate, gw, rate), Legend: "hit rate"},
			{Expr: fmt.Sprintf(`sum by (level) (rate(ai_gateway_cache_hits_total{%s}[%s]))`, gw, rate), Legend: "hits {{level}}"}}},
		{Title: "Rate limiter decisions", Unit: "reqps", Targets: []target{
			{Expr: fmt.Sprintf(`sum by (decision) (rate(ai_gateway_limit_decisions_total{%s}[%s]))`, gw, rate), Legend: "{{decision}}"}}},
		{Title: "Circuit breaker state (0 closed, 1 half-open, 2 open)", Unit: "none", Targets: []target{
			{Expr: fmt.Sprintf(`max by (upstream) (ai_gateway_breaker_state{%s})`, gw), Legend: "{{upstream}}"}}},
		{Title: "Healthy model replicas, and requests moved off unreachable ones", Unit: "short", Targets: []target{
			{Expr: fmt.Sprintf(`sum by (pool) (ai_gateway_upstream_healthy{%s})`, gw), Legend: "healthy {{pool}}"},
			{Expr: fmt.Sprintf(`sum by (pool) (rate(ai_gateway_upstream_retries_total{%s}[%s]))`, gw, rate), Legend: "retries/s {{pool}}"}}},
	}
	for _, m := range serverMetrics(d.Server) {
		expr := fmt.Sprintf(`sum by (pod) (%s{%s})`, m.Name, model)
		if m.Quant {
			expr = quantile("0.95", m.Name, model, "")
		}
		ps = append(ps, panel{Title: m.Title, Unit: m.Unit, Targets: []target{{Expr: expr, Legend: m.Legend}}})
	}
	for i := range ps {
		ps[i].ID = i + 1
		ps[i].X, ps[i].Y = (i%2)*12, (i/2)*8
		for j := range ps[i].Targets {
			ps[i].Targets[j].RefID = string(rune('A' + j))
		}
	}
	return ps
}
