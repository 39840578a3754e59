package render

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
)

// scrapeGateway runs a real gateway in process, sends it a miss, a hit, a
// streamed answer and a request past its limit, and returns its /metrics
// parsed, so every metric the monitoring queries has a series.
func scrapeGateway(t *testing.T) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	up := httptest.NewServer(fakemodel.NewHandler(fakemodel.DefaultOptions()))
	t.Cleanup(up.Close)
	cfg := gateway.Default()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Pools = []upstream.PoolConfig{{Name: "default", Targets: []upstream.TargetConfig{{URL: up.URL}}}}
	cfg.Limits.Enabled = true
	cfg.Limits.Default.Requests = 2
	cfg.SetDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- gateway.Run(ctx, cfg, nil, gateway.Options{Started: func(a, b string) { addrs <- [2]string{a, b} }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	var gw, admin string
	select {
	case a := <-addrs:
		gw, admin = "http://"+a[0], "http://"+a[1]
	case err := <-done:
		t.Fatal(err)
	}
	// A miss, a hit (which the limit does not count), a streamed miss (time
	// to first token), then a fourth question, past the limit of 2; all
	// greedy (temperature 0), so cacheable.
	for i, body := range []string{
		`{"model":"m","temperature":0,"messages":[{"role":"user","content":"a"}]}`,
		`{"model":"m","temperature":0,"messages":[{"role":"user","content":"a"}]}`,
		`{"model":"m","temperature":0,"stream":true,"messages":[{"role":"user","content":"b"}]}`,
		`{"model":"m","temperature":0,"messages":[{"role":"user","content":"c"}]}`,
	} {
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
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("the gateway's /metrics does not parse: %v", err)
	}
	return fams, up.URL
}

// TestMonitoringQueriesNameRealMetrics checks every query of every rendered
// dashboard and alert file against what really exports it: a metric on the
// gateway's job against a real gateway's /metrics, one on the model's job
// against the preset server's list (testdata/metrics), DCGM's against the
// exporter's counters. It also checks that each latency alert's threshold lies
// below the top finite bucket of the histogram it reads, so it can fire.
func TestMonitoringQueriesNameRealMetrics(t *testing.T) {
	fams, upURL := scrapeGateway(t)
	scraped := metricSet{}
	for name, f := range fams {
		if len(f.Metric) > 0 {
			scraped[name] = true
		}
	}
	for _, m := range GatewayMetrics {
		if !scraped[m] {
			t.Errorf("the gateway's /metrics has no series of %s, which monitoring/ queries", m)
		}
	}
	// The label values the queries compare against, on a series with a value.
	for _, want := range []struct {
		metric, label, value string
		v                    float64
	}{
		{"ai_gateway_limit_decisions_total", "decision", "rejected_requests", 1},
		{"ai_gateway_breaker_state", "upstream", upURL, 0},
	} {
		found := false
		for _, m := range fams[want.metric].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == want.label && l.GetValue() == want.value && value(m) == want.v {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("the gateway's /metrics has no %s{%s=%q} %v, which monitoring/ relies on", want.metric, want.label, want.value, want.v)
		}
	}

	for _, name := range goldenConfigs {
		t.Run(name, func(t *testing.T) {
			cfg := loadTestConfig(t, name)
			e := loadExporters(t, scraped, cfg.Server)
			files := renderTest(t, name, Monitoring)
			shown := map[string]bool{}
			for _, p := range readDashboard(t, fileData(t, files, "monitoring/grafana-dashboard.json")).Panels {
				for _, tg := range p.Targets {
					for _, sel := range querySelectors(t, tg.Expr) {
						if msg := e.check(cfg, sel); msg != "" {
							t.Errorf("panel %q queries %s on job %q: %s", p.Title, sel.metric, sel.job, msg)
						}
						shown[strings.TrimSuffix(sel.metric, "_bucket")] = true
					}
				}
			}
			for _, m := range append(slices.Clone(GatewayMetrics), ServerMetrics(cfg.Server)...) {
				if !shown[m] {
					t.Errorf("no panel shows %s", m)
				}
			}
			if !shown[dcgmGPUUtil] || !shown[aideployGPUUtl] {
				t.Errorf("the GPU panel does not read both %s and %s", dcgmGPUUtil, aideployGPUUtl)
			}
			groups, errs := rulefmt.Parse(fileData(t, files, "monitoring/alerts.yaml"), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if len(errs) > 0 {
				t.Fatalf("alerts.yaml: %v", errs)
			}
			for _, r := range groups.Groups[0].Rules {
				for _, sel := range querySelectors(t, r.Expr) {
					if msg := e.check(cfg, sel); msg != "" {
						t.Errorf("alert %s queries %s on job %q: %s", r.Alert, sel.metric, sel.job, msg)
					}
				}
				if metric, threshold, ok := quantileThreshold(t, r.Expr); ok {
					top := topBucket(fams[metric])
					if !(threshold < top) {
						t.Errorf("alert %s fires above %gs, but %s's top finite bucket is %gs: histogram_quantile never exceeds it", r.Alert, threshold, metric, top)
					}
				}
			}
		})
	}
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return math.NaN()
}

// quantileThreshold reads an alert of the form histogram_quantile(...) > N:
// the histogram's base name and N.
func quantileThreshold(t *testing.T, expr string) (string, float64, bool) {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := e.(*parser.BinaryExpr)
	if !ok || b.Op != parser.GTR {
		return "", 0, false
	}
	call, ok := b.LHS.(*parser.Call)
	n, isNum := b.RHS.(*parser.NumberLiteral)
	if !ok || !isNum || call.Func.Name != "histogram_quantile" {
		return "", 0, false
	}
	var metric string
	parser.Inspect(call, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			metric = strings.TrimSuffix(vs.Name, "_bucket")
		}
		return nil
	})
	return metric, n.Val, true
}

// topBucket is the largest finite upper bound of a scraped histogram.
func topBucket(f *dto.MetricFamily) float64 {
	top := math.Inf(-1)
	for _, m := range f.GetMetric() {
		for _, b := range m.GetHistogram().GetBucket() {
			if ub := b.GetUpperBound(); !math.IsInf(ub, 1) && ub > top {
				top = ub
			}
		}
	}
	return top
}
