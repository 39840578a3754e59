package render

import (
	"encoding/json"
	"io"
	"log/slog"
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

// queryMetrics parses a PromQL expression and returns the metric names it selects.
func queryMetrics(t *testing.T, expr string) []string {
	t.Helper()
	// Grafana substitutes its interval variable before the query reaches Prometheus.
	expr = strings.ReplaceAll(expr, "$__rate_interval", "5m")
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("query %q does not parse: %v", expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	if len(names) == 0 {
		t.Errorf("query %q selects no metric", expr)
	}
	return names
}

// exported says whether name is a series of an exported metric (histograms
// are exported by base name).
func exported(name string) bool {
	for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(ExportedMetrics, base) {
			return true
		}
	}
	return false
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
					for _, m := range queryMetrics(t, r.Expr) {
						if !exported(m) {
							t.Errorf("%s queries %s, which aideploy does not export (ExportedMetrics)", r.Alert, m)
						}
					}
				}
			}
			for _, want := range []string{"AIDeployHighErrorRate", "AIDeployHighP99Latency", "AIDeployBreakerOpen", "AIDeployGPUSaturated", "AIDeployLowCacheHitRate", "AIDeployRateLimiterRejecting"} {
				if !slices.Contains(alerts, want) {
					t.Errorf("alert %s missing; have %v", want, alerts)
				}
			}
		})
	}
}

func TestDashboardQueriesUseExportedMetrics(t *testing.T) {
	t.Parallel()
	for _, name := range goldenConfigs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := fileData(t, renderTest(t, name, Monitoring), "monitoring/grafana-dashboard.json")
			var dash struct {
				UID    string
				Panels []struct {
					ID      int
					Title   string
					Targets []struct{ Expr, RefID string }
				}
			}
			dec := json.NewDecoder(strings.NewReader(string(data)))
			if err := dec.Decode(&dash); err != nil {
				t.Fatal(err)
			}
			if len(dash.Panels) < 8 || dash.UID == "" {
				t.Fatalf("dashboard has %d panels, uid %q", len(dash.Panels), dash.UID)
			}
			seen := map[string]bool{}
			ids := map[int]bool{}
			for _, p := range dash.Panels {
				if ids[p.ID] {
					t.Errorf("panel id %d used twice", p.ID)
				}
				ids[p.ID] = true
				for _, tg := range p.Targets {
					for _, m := range queryMetrics(t, tg.Expr) {
						if !exported(m) {
							t.Errorf("panel %q queries %s, which aideploy does not export (ExportedMetrics)", p.Title, m)
						}
						seen[strings.TrimSuffix(m, "_bucket")] = true
					}
				}
			}
			for _, m := range ExportedMetrics {
				if !seen[m] {
					t.Errorf("no panel shows %s", m)
				}
			}
		})
	}
}

// TestExportedCheckCatchesUnknownMetrics proves the check above can fail.
func TestExportedCheckCatchesUnknownMetrics(t *testing.T) {
	t.Parallel()
	for _, m := range []string{"http_requests_total", "ai_api_requests", "ai_gpu_utilization_percent_bucket_x"} {
		if exported(m) {
			t.Errorf("%s counted as exported", m)
		}
	}
	if !exported("ai_api_request_duration_seconds_bucket") {
		t.Error("histogram bucket series not counted as exported")
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
	if !slices.Equal(prom.RuleFiles, []string{"alerts.yaml"}) || len(prom.ScrapeConfigs) != 2 {
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
	if gw.JobName != "chat-gateway" || gw.MetricsPath != "/metrics" || len(gw.StaticConfigs) != 1 || gw.StaticConfigs[0].Targets[0] != config.Default().Gateway.AdminListen {
		t.Errorf("gateway job %+v", gw)
	}
}
