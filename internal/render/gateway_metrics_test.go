package render

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
)

// TestGatewayExportsWhatMonitoringQueries runs a real gateway, sends it a
// miss, a hit and a request past its limit, and checks that its /metrics
// has every gateway metric the rendered alerts and dashboard query, with
// the label values they rely on. The other tests here check the rendered
// queries against ExportedMetrics; this checks ExportedMetrics against the
// gateway, so a renamed metric cannot leave the dashboards blank.
func TestGatewayExportsWhatMonitoringQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a gateway; skipped under -short")
	}
	t.Parallel()
	up := httptest.NewServer(fakemodel.NewHandler(fakemodel.DefaultOptions()))
	defer up.Close()
	cfg := gateway.Default()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Pools = []upstream.PoolConfig{{Name: "default", Targets: []upstream.TargetConfig{{URL: up.URL}}}}
	cfg.Limits.Enabled = true
	cfg.Limits.Default.Requests = 2
	cfg.SetDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- gateway.Run(ctx, cfg, nil, gateway.Options{Started: func(a, b string) { addrs <- [2]string{a, b} }})
	}()
	var gw, admin string
	select {
	case a := <-addrs:
		gw, admin = "http://"+a[0], "http://"+a[1]
	case err := <-done:
		t.Fatal(err)
	}
	// A miss, a hit (which the limit does not count), a second miss, then a
	// third question, past the limit of 2.
	for i, q := range []string{"a", "a", "b", "c"} {
		body := `{"model":"m","temperature":0,"messages":[{"role":"user","content":"` + q + `"}]}` // greedy: cacheable
		resp, err := http.Post(gw+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if want := []int{200, 200, 200, 429}[i]; resp.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(b)
	for _, m := range ExportedMetrics {
		if !strings.HasPrefix(m, "ai_gateway_") {
			continue // the model server's
		}
		if !strings.Contains(metrics, "\n"+m+"{") && !strings.Contains(metrics, "\n"+m+" ") {
			t.Errorf("the gateway's /metrics has no %s, which monitoring/ queries", m)
		}
	}
	// The label values the queries compare against, on a series with a value.
	for _, want := range []struct{ metric, label, value string }{
		{"ai_gateway_limit_decisions_total", `decision="rejected_requests"`, "1"},
		{"ai_gateway_breaker_state", `upstream="` + up.URL + `"`, "0"},
	} {
		found := false
		for _, line := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(line, want.metric+"{") && strings.Contains(line, want.label) && strings.HasSuffix(line, "} "+want.value) {
				found = true
			}
		}
		if !found {
			t.Errorf("the gateway's /metrics has no %s{%s} %s, which monitoring/ relies on:\n%s", want.metric, want.label, want.value, metrics)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
