package render

// ExportedMetrics names every metric the rendered dashboards and alerts may
// query: the model server's (the seed's names) and aideploy's gateway's. Tests
// fail when a rendered query names anything else; histograms are listed by base
// name and queried through their _bucket, _sum and _count series.
var ExportedMetrics = []string{
	// Model server, as the seed's FastAPI app exports them.
	"ai_api_requests_total",               // {endpoint, method, status}
	"ai_api_request_duration_seconds",     // histogram {endpoint}
	"ai_gpu_utilization_percent",          // gauge {gpu_id}
	"ai_tokens_usage_total",               // {model, type=input|output}
	"ai_model_inference_duration_seconds", // histogram {model}
	// aideploy gateway.
	"ai_gateway_cache_hits_total",       // {level=l1|l2}
	"ai_gateway_cache_misses_total",     //
	"ai_gateway_limit_decisions_total",  // {decision=allowed|rejected_requests|rejected_tokens}, one per request
	"ai_gateway_breaker_state",          // gauge {upstream}: 0 closed, 1 half-open, 2 open
	"ai_gateway_upstream_healthy",       // gauge {pool, target}: 1 healthy, 0 not
	"ai_gateway_upstream_retries_total", // {pool}: requests sent to another target after a refused connection
}

// Label values the rendered queries rely on; the gateway must export these.
const (
	breakerOpen       = 2             // ai_gateway_breaker_state when the breaker is open
	rateLimitRejected = "rejected_.*" // ai_gateway_limit_decisions_total{decision}, a regular expression
)
