package gateway

import (
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/gateway/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const plainStreamBody = `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"temperature":0,"stream":true}`

// The gateway asks the model for a stream's usage, counts it, and gives each
// client the stream it asked for, live and from the cache.
func TestStreamUsageInjectedCountedAndHidden(t *testing.T) {
	_, up := fake(t, nil)
	m := metrics.New()
	_, gw := startGateway(t, testConfig(up), true, func(d *Deps) { d.Metrics = m })

	resp, live := post(t, gw+"/v1/chat/completions", plainStreamBody)
	if resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("first stream: X-Cache %q", resp.Header.Get("X-Cache"))
	}
	if _, ok := usageOfStream(live); ok || !strings.HasSuffix(live, "data: [DONE]\n\n") {
		t.Errorf("a client that did not ask for usage got %q", live)
	}
	if out := testutil.ToFloat64(m.ForModel("fake-model").TokensOut); out != 8 {
		t.Errorf("output tokens counted %v, want the stream's 8", out)
	}

	resp, hit := post(t, gw+"/v1/chat/completions", plainStreamBody)
	if _, ok := usageOfStream(hit); resp.Header.Get("X-Cache") != "HIT" || ok {
		t.Errorf("replay for a client without include_usage: %s %q", resp.Header.Get("X-Cache"), hit)
	}
	resp, hit = post(t, gw+"/v1/chat/completions", streamBody)
	if u, ok := usageOfStream(hit); resp.Header.Get("X-Cache") != "HIT" || !ok || u.CompletionTokens != 8 {
		t.Errorf("replay for a client with include_usage: %s %q", resp.Header.Get("X-Cache"), hit)
	}
}

func TestStreamUsagePassthroughLeavesRequestsAlone(t *testing.T) {
	_, up := fake(t, nil)
	cfg := testConfig(up)
	cfg.StreamUsage = StreamUsagePassthrough
	cfg.Cache.Enabled = false
	m := metrics.New()
	_, gw := startGateway(t, cfg, false, func(d *Deps) { d.Metrics = m })
	_, body := post(t, gw+"/v1/chat/completions", plainStreamBody)
	if _, ok := usageOfStream(body); ok {
		t.Errorf("passthrough: the model was asked for usage: %q", body)
	}
	if out := testutil.ToFloat64(m.ForModel("fake-model").TokensOut); out != 0 {
		t.Errorf("passthrough: %v output tokens counted without usage from the model", out)
	}
}
