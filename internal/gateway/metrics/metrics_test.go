package metrics

import (
	"strconv"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestModelLabelIsBounded(t *testing.T) {
	t.Parallel()
	m := New()
	for i := range maxModels {
		if got := m.Model("m" + strconv.Itoa(i)); got != "m"+strconv.Itoa(i) {
			t.Fatalf("model %d labelled %q", i, got)
		}
	}
	if got := m.Model("one-too-many"); got != "other" {
		t.Fatalf("model past the bound labelled %q, want other", got)
	}
	if got := m.Model("m0"); got != "m0" {
		t.Fatalf("a known model lost its label: %q", got)
	}
}

func TestSeedMetricNames(t *testing.T) {
	t.Parallel()
	m := New()
	m.ObserveRequest("/v1/chat/completions", "POST", 200, 0.2)
	m.ObserveRequest("/v1/chat/completions", "POST", 200, 0.3)
	m.Tokens.WithLabelValues("m", "input").Add(3)
	m.Inference.WithLabelValues("m").Observe(1)
	if n := testutil.ToFloat64(m.Requests.WithLabelValues("/v1/chat/completions", "POST", "200")); n != 2 {
		t.Fatalf("ai_api_requests_total = %v, want 2", n)
	}
	m.Registry.MustRegister(Upstreams(func() []adminapi.Pool {
		return []adminapi.Pool{{Name: "default", Queued: 2, Targets: []adminapi.Target{{URL: "http://a", Inflight: 5, Limit: 9, Healthy: true, Breaker: "open"}, {URL: "http://b"}}}}
	}))
	out, err := testutil.GatherAndCount(m.Registry, "ai_api_requests_total", "ai_api_request_duration_seconds",
		"ai_tokens_usage_total", "ai_model_inference_duration_seconds", "ai_gateway_upstream_inflight", "ai_gateway_upstream_queue_depth", "ai_gateway_upstream_limit")
	// b has no limit, so no limit series: 2 inflight, 1 queue, 1 limit.
	if err != nil || out != 8 {
		t.Fatalf("gathered %d series (%v), want 8", out, err)
	}
	err = testutil.GatherAndCompare(m.Registry, strings.NewReader(`
# HELP ai_gateway_upstream_inflight Requests in progress per upstream target.
# TYPE ai_gateway_upstream_inflight gauge
ai_gateway_upstream_inflight{pool="default",target="http://a"} 5
ai_gateway_upstream_inflight{pool="default",target="http://b"} 0
# HELP ai_gateway_upstream_limit Most requests in flight per upstream target now: the adaptive or fixed limit (absent when there is none).
# TYPE ai_gateway_upstream_limit gauge
ai_gateway_upstream_limit{pool="default",target="http://a"} 9
`), "ai_gateway_upstream_inflight", "ai_gateway_upstream_limit")
	if err != nil {
		t.Fatal(err)
	}
}
