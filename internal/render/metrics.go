package render

import "github.com/aideploy/aideploy/internal/config"

// The metrics the rendered dashboards and alerts query, by who exports them.
// Tests check every rendered query against these lists, and the lists against
// what each exporter really serves: the gateway is scraped in process, and
// so is a real Ollama (which serves none); vLLM's and TGI's names come from
// testdata/metrics/<server>.txt, copied from their documentation (each cites
// it); DCGM's from a copy of the exporter's own default-counters.csv.
// Histograms are listed by base name and queried through their _bucket, _sum
// and _count series.

// GatewayMetrics are aideploy's gateway's, under the job <name>-gateway.
var GatewayMetrics = []string{
	"ai_api_requests_total",                  // {endpoint, method, status}
	"ai_api_request_duration_seconds",        // histogram {endpoint}
	"ai_gateway_time_to_first_token_seconds", // histogram {model}
	"ai_model_inference_duration_seconds",    // histogram {model}
	"ai_tokens_usage_total",                  // {model, type=input|output}
	"ai_gateway_cache_hits_total",            // {level=l1|l2}
	"ai_gateway_cache_misses_total",          //
	"ai_gateway_limit_decisions_total",       // {decision=allowed|rejected_requests|rejected_tokens}, one per request
	"ai_gateway_breaker_state",               // gauge {upstream}: 0 closed, 1 half-open, 2 open
	"ai_gateway_upstream_healthy",            // gauge {pool, target}: 1 healthy, 0 not
	"ai_gateway_upstream_retries_total",      // {pool}: requests sent to another target after a refused connection
}

// GPUMetrics are the GPU utilisation gauges: NVIDIA's DCGM exporter's, and
// `aideploy gpu-metrics`' as the alternative where DCGM does not run.
const (
	dcgmGPUUtil    = "DCGM_FI_DEV_GPU_UTIL"       // gauge {gpu, pod, namespace}, percent
	aideployGPUUtl = "ai_gpu_utilization_percent" // gauge {gpu_id}, percent
)

// serverMetric names one metric of a model server's own /metrics.
type serverMetric struct {
	Name   string
	Title  string // panel title
	Unit   string // Grafana unit
	Legend string
	Quant  bool // a histogram, shown as its p95
}

// ServerMetrics are the metrics of each preset's server that the dashboard
// and alerts query under the job <name>. Ollama serves none, and custom's are
// unknown: their dashboards show the gateway's view of the model.
func ServerMetrics(server string) []string {
	var out []string
	for _, m := range serverMetrics(server) {
		out = append(out, m.Name)
	}
	return out
}

func serverMetrics(server string) []serverMetric {
	switch server {
	case config.ServerVLLM:
		// https://docs.vllm.ai/en/v0.8.5/serving/metrics.html
		return []serverMetric{
			{Name: "vllm:num_requests_running", Title: "vLLM requests running on the GPU", Unit: "short", Legend: "{{pod}}"},
			{Name: "vllm:num_requests_waiting", Title: "vLLM requests waiting", Unit: "short", Legend: "{{pod}}"},
			{Name: "vllm:gpu_cache_usage_perc", Title: "vLLM KV-cache usage", Unit: "percentunit", Legend: "{{pod}}"},
			{Name: "vllm:time_to_first_token_seconds", Title: "vLLM time to first token p95", Unit: "s", Legend: "p95", Quant: true},
		}
	case config.ServerTGI:
		// https://huggingface.co/docs/text-generation-inference/reference/metrics
		return []serverMetric{
			{Name: "tgi_queue_size", Title: "TGI requests queued", Unit: "short", Legend: "{{pod}}"},
			{Name: "tgi_batch_current_size", Title: "TGI batch size", Unit: "short", Legend: "{{pod}}"},
			{Name: "tgi_request_duration", Title: "TGI request duration p95", Unit: "s", Legend: "p95", Quant: true},
		}
	}
	return nil
}

// Label values the rendered queries rely on; the gateway must export these.
const (
	breakerOpen       = 2             // ai_gateway_breaker_state when the breaker is open
	rateLimitRejected = "rejected_.*" // ai_gateway_limit_decisions_total{decision}, a regular expression
)
