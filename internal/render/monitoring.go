package render

import "fmt"

// alertRule is one Prometheus alerting rule of monitoring/alerts.yaml.
type alertRule struct {
	Name        string
	Expr        string
	For         string
	Severity    string
	Summary     string
	Description string
}

// alertRules are the alerts the seed's incident review asked for: errors, slow
// answers, an open breaker, saturated GPUs, a cold cache, a replica the gateway
// cannot use and a limiter that rejects.
func alertRules(d *renderData) []alertRule {
	model := fmt.Sprintf(`job=%q`, d.Name)
	gw := fmt.Sprintf(`job=%q`, gatewayJob(d))
	return []alertRule{
		{
			Name: "AIDeployHighErrorRate", For: "5m", Severity: "critical",
			Expr:        fmt.Sprintf(`sum(rate(ai_api_requests_total{%s,status=~"5.."}[5m])) / sum(rate(ai_api_requests_total{%s}[5m])) > 0.05`, model, model),
			Summary:     d.Name + ": more than 5% of requests fail",
			Description: "{{ $value | humanizePercentage }} of requests answered 5xx over 5 minutes.",
		},
		{
			Name: "AIDeployHighP99Latency", For: "10m", Severity: "warning",
			Expr:        fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(ai_api_request_duration_seconds_bucket{%s}[5m]))) > 10`, model),
			Summary:     d.Name + ": p99 latency above 10s",
			Description: "p99 request latency is {{ $value | humanizeDuration }}; scale out or check the model.",
		},
		{
			Name: "AIDeployBreakerOpen", For: "1m", Severity: "critical",
			Expr:        fmt.Sprintf(`max by (upstream) (ai_gateway_breaker_state{%s}) == %d`, gw, breakerOpen),
			Summary:     d.Name + ": the gateway's circuit breaker is open",
			Description: "Upstream {{ $labels.upstream }} failed repeatedly; the gateway is shedding its requests.",
		},
		{
			Name: "AIDeployGPUSaturated", For: "15m", Severity: "warning",
			Expr:        fmt.Sprintf(`avg(ai_gpu_utilization_percent{%s}) > 90`, model),
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

// dashboardPanels lays the panels out two to a row, 12 columns wide each.
func dashboardPanels(d *renderData) []panel {
	model := fmt.Sprintf(`job=%q`, d.Name)
	gw := fmt.Sprintf(`job=%q`, gatewayJob(d))
	const rate = "$__rate_interval"
	ps := []panel{
		{Title: "Requests per second by status", Unit: "reqps", Targets: []target{
			{Expr: fmt.Sprintf(`sum by (status) (rate(ai_api_requests_total{%s}[%s]))`, model, rate), Legend: "{{status}}"}}},
		{Title: "Error ratio (5xx)", Unit: "percentunit", Targets: []target{
			{Expr: fmt.Sprintf(`sum(rate(ai_api_requests_total{%s,status=~"5.."}[%s])) / sum(rate(ai_api_requests_total{%s}[%s]))`, model, rate, model, rate), Legend: "5xx"}}},
		{Title: "Request latency", Unit: "s", Targets: []target{
			{Expr: fmt.Sprintf(`histogram_quantile(0.5, sum by (le) (rate(ai_api_request_duration_seconds_bucket{%s}[%s])))`, model, rate), Legend: "p50"},
			{Expr: fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(ai_api_request_duration_seconds_bucket{%s}[%s])))`, model, rate), Legend: "p99"}}},
		{Title: "Inference latency p99 by model", Unit: "s", Targets: []target{
			{Expr: fmt.Sprintf(`histogram_quantile(0.99, sum by (le, model) (rate(ai_model_inference_duration_seconds_bucket{%s}[%s])))`, model, rate), Legend: "{{model}}"}}},
		{Title: "GPU utilisation", Unit: "percent", Targets: []target{
			{Expr: fmt.Sprintf(`avg by (gpu_id) (ai_gpu_utilization_percent{%s})`, model), Legend: "GPU {{gpu_id}}"}}},
		{Title: "Tokens per second", Unit: "short", Targets: []target{
			{Expr: fmt.Sprintf(`sum by (type) (rate(ai_tokens_usage_total{%s}[%s]))`, model, rate), Legend: "{{type}}"}}},
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
	for i := range ps {
		ps[i].ID = i + 1
		ps[i].X, ps[i].Y = (i%2)*12, (i/2)*8
		for j := range ps[i].Targets {
			ps[i].Targets[j].RefID = string(rune('A' + j))
		}
	}
	return ps
}
