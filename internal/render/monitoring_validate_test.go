package render

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/aideploy/aideploy/internal/config"
)

// selector is one metric a query selects, with the job it asks for ("" when
// the query names none).
type selector struct{ metric, job string }

// querySelectors parses a PromQL expression and returns what it selects.
func querySelectors(t *testing.T, expr string) []selector {
	t.Helper()
	// Grafana substitutes its interval variable before the query reaches Prometheus.
	expr = strings.ReplaceAll(expr, "$__rate_interval", "5m")
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("query %q does not parse: %v", expr, err)
		return nil
	}
	var out []selector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			sel := selector{metric: vs.Name}
			for _, m := range vs.LabelMatchers {
				if m.Name == "job" {
					sel.job = m.Value
				}
			}
			out = append(out, sel)
		}
		return nil
	})
	if len(out) == 0 {
		t.Errorf("query %q selects no metric", expr)
	}
	return out
}

// metricSet holds metric names by base name: a histogram's series match it
// through their _bucket, _sum and _count suffixes.
type metricSet map[string]bool

func (s metricSet) has(series string) bool {
	for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && s[base] {
			return true
		}
	}
	return false
}

// readMetricList reads testdata/metrics/<name>.txt: one name a line, with
// '#' comments that cite where the names come from.
func readMetricList(t *testing.T, name string) metricSet {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "metrics", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	set := metricSet{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			set[line] = true
		}
	}
	return set
}

// exporters says who serves the metrics a rendered query of cfg may select:
// the gateway (scraped), the preset's server, DCGM and `aideploy gpu-metrics`.
type exporters struct {
	gateway, server, dcgm, gpu metricSet
}

func loadExporters(t *testing.T, gateway metricSet, server string) exporters {
	return exporters{gateway: gateway, server: readMetricList(t, server), dcgm: readDCGMCounters(t), gpu: readMetricList(t, "aideploy-gpu")}
}

// dcgmCounters is NVIDIA's DCGM exporter's etc/default-counters.csv: the
// metrics it serves unless told otherwise.
const dcgmCounters = "testdata/metrics/dcgm-default-counters.csv"

// readDCGMCounters reads dcgmCounters as the exporter reads it: '#' starts a
// comment (a counter commented out is not served), else the first
// comma-separated field is the DCGM field, which names the metric.
func readDCGMCounters(t *testing.T) metricSet {
	t.Helper()
	data, err := os.ReadFile(dcgmCounters)
	if err != nil {
		t.Fatal(err)
	}
	set := metricSet{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		field, _, ok := strings.Cut(line, ",")
		if field = strings.TrimSpace(field); !ok || !strings.HasPrefix(field, "DCGM_FI_") {
			t.Fatalf("%s: %q is not a line of the exporter's format (DCGM field, type, help)", dcgmCounters, line)
		}
		set[field] = true
	}
	if len(set) == 0 {
		t.Fatalf("%s lists no counter", dcgmCounters)
	}
	return set
}

// check reports a selector whose metric its job's exporter does not serve.
func (e exporters) check(cfg *config.Config, sel selector) string {
	switch {
	case strings.HasPrefix(sel.metric, "DCGM_"):
		if !e.dcgm.has(sel.metric) {
			return "DCGM's exporter does not serve it by default (" + dcgmCounters + ")"
		}
	case e.gpu.has(sel.metric):
		// aideploy gpu-metrics, the alternative to DCGM.
	case sel.job == cfg.Name+"-gateway":
		if !e.gateway.has(sel.metric) {
			return "the gateway's /metrics does not have it"
		}
	case sel.job == cfg.Name:
		if !e.server.has(sel.metric) {
			return "the " + cfg.Server + " server does not serve it (testdata/metrics/" + cfg.Server + ".txt)"
		}
	default:
		return "it names no job of this service (" + sel.job + ")"
	}
	return ""
}

func TestAlertRulesParse(t *testing.T) {
	t.Parallel()
	for _, name := range goldenConfigs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := fileData(t, renderTest(t, name, Monitoring), "monitoring/alerts.yaml")
			groups, errs := rulefmt.Parse(data, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if len(errs) > 0 {
				t.Fatalf("rulefmt rejects alerts.yaml: %v", errs)
			}
			var alerts []string
			for _, g := range groups.Groups {
				for _, r := range g.Rules {
					alerts = append(alerts, r.Alert)
					if r.For == 0 || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
						t.Errorf("%s lacks for, severity or summary", r.Alert)
					}
				}
			}
			for _, want := range []string{"AIDeployHighErrorRate", "AIDeployHighP99Latency", "AIDeploySlowFirstToken", "AIDeployBreakerOpen", "AIDeployGPUSaturated", "AIDeployLowCacheHitRate", "AIDeployRateLimiterRejecting"} {
				if !slices.Contains(alerts, want) {
					t.Errorf("alert %s missing; have %v", want, alerts)
				}
			}
		})
	}
}

func TestDashboardStructure(t *testing.T) {
	t.Parallel()
	for _, name := range goldenConfigs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dash := readDashboard(t, fileData(t, renderTest(t, name, Monitoring), "monitoring/grafana-dashboard.json"))
			if len(dash.Panels) < 8 || dash.UID == "" {
				t.Fatalf("dashboard has %d panels, uid %q", len(dash.Panels), dash.UID)
			}
			ids := map[int]bool{}
			for _, p := range dash.Panels {
				if ids[p.ID] {
					t.Errorf("panel id %d used twice", p.ID)
				}
				ids[p.ID] = true
			}
		})
	}
}

type dashboard struct {
	UID    string
	Panels []struct {
		ID      int
		Title   string
		Targets []struct{ Expr, RefID string }
	}
}

func readDashboard(t *testing.T, data []byte) dashboard {
	t.Helper()
	var dash dashboard
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	return dash
}

// TestMetricCheckCatchesUnknownMetrics proves the query check can fail.
func TestMetricCheckCatchesUnknownMetrics(t *testing.T) {
	t.Parallel()
	cfg := loadTestConfig(t, "vllm")
	e := loadExporters(t, metricSet{"ai_api_requests_total": true, "ai_api_request_duration_seconds": true}, cfg.Server)
	for _, sel := range []selector{
		{"http_requests_total", "qwen-gateway"},
		{"ai_api_requests", "qwen-gateway"},
		{"vllm:num_requests_running", "qwen-gateway"}, // the server's metric on the gateway's job
		{"ai_api_requests_total", "qwen"},             // the gateway's metric on the server's job
		{"tgi_queue_size", "qwen"},
		{"DCGM_FI_DEV_GPU_UTILIZATION", ""},
		{"ai_api_requests_total", "chat-gateway"}, // another service's job
	} {
		if e.check(cfg, sel) == "" {
			t.Errorf("%+v passes the check", sel)
		}
	}
	for _, sel := range []selector{{"ai_api_request_duration_seconds_bucket", "qwen-gateway"}, {"vllm:num_requests_waiting", "qwen"}, {"DCGM_FI_DEV_GPU_UTIL", ""}} {
		if msg := e.check(cfg, sel); msg != "" {
			t.Errorf("%+v fails the check: %s", sel, msg)
		}
	}
}

// TestPrometheusScrapeConfig checks the scrape config's structure: the model
// job keeps only this service's annotated pods, the gateway job scrapes the admin address.
func TestPrometheusScrapeConfig(t *testing.T) {
	t.Parallel()
	files := renderTest(t, "gpu1", Monitoring)
	var prom struct {
		Global        map[string]string `json:"global"`
		RuleFiles     []string          `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName             string              `json:"job_name"`
			HonorLabels         bool                `json:"honor_labels"`
			MetricsPath         string              `json:"metrics_path"`
			KubernetesSDConfigs []map[string]string `json:"kubernetes_sd_configs"`
			StaticConfigs       []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
			RelabelConfigs []struct {
				SourceLabels []string `json:"source_labels"`
				Regex        string   `json:"regex"`
				Replacement  string   `json:"replacement"`
				TargetLabel  string   `json:"target_label"`
				Action       string   `json:"action"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict(fileData(t, files, "monitoring/prometheus.yml"), &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	if !slices.Equal(prom.RuleFiles, []string{"alerts.yaml"}) || len(prom.ScrapeConfigs) != 3 {
		t.Fatalf("rule files %v, %d scrape configs", prom.RuleFiles, len(prom.ScrapeConfigs))
	}
	model, gw := prom.ScrapeConfigs[0], prom.ScrapeConfigs[1]
	if model.JobName != "chat" || model.KubernetesSDConfigs[0]["role"] != "pod" {
		t.Errorf("model job %q sd %v", model.JobName, model.KubernetesSDConfigs)
	}
	kept := map[string]string{}
	for _, r := range model.RelabelConfigs {
		if r.Regex != "" {
			if _, err := regexp.Compile("^(?:" + r.Regex + ")$"); err != nil {
				t.Errorf("relabel regex %q: %v", r.Regex, err)
			}
		}
		if r.Action == "keep" {
			kept[r.SourceLabels[0]] = r.Regex
		}
	}
	if kept["__meta_kubernetes_pod_label_app_kubernetes_io_name"] != "chat" || kept["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] != "true" {
		t.Errorf("model job keeps %v, want only chat's annotated pods", kept)
	}
	// The GPU exporter's own pod label (the pod using the GPU) must survive the scrape.
	if dcgm := prom.ScrapeConfigs[2]; dcgm.JobName != "dcgm-exporter" || !dcgm.HonorLabels || len(dcgm.RelabelConfigs) != 1 || dcgm.RelabelConfigs[0].Regex != "dcgm-exporter" {
		t.Errorf("DCGM job %+v", dcgm)
	}
	if gw.JobName != "chat-gateway" || gw.MetricsPath != "/metrics" || len(gw.StaticConfigs) != 1 || gw.StaticConfigs[0].Targets[0] != config.Default().Gateway.AdminListen {
		t.Errorf("gateway job %+v", gw)
	}
}
