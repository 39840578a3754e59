package render

import (
	"strconv"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/config"
)

// checkScaledObject checks KEDA's ScaledObject against the configuration: it
// scales the Deployment between the configured bounds with the HPA's
// behaviour, and has one Prometheus trigger per gateway target, each asking
// the configured Prometheus about the gateway's own scrape job.
func checkScaledObject(t *testing.T, so *scaledObject, cfg *config.Config) {
	t.Helper()
	if so == nil {
		t.Fatal("no ScaledObject with autoscaling.engine keda")
	}
	a := cfg.Autoscaling
	s := so.Spec
	if so.Metadata.Name != cfg.Name || s.ScaleTargetRef.Kind != "Deployment" || s.ScaleTargetRef.Name != cfg.Name || s.ScaleTargetRef.APIVersion != "apps/v1" {
		t.Errorf("ScaledObject %s targets %+v, want Deployment %s", so.Metadata.Name, s.ScaleTargetRef, cfg.Name)
	}
	if int(s.MinReplicaCount) != a.MinReplicas || int(s.MaxReplicaCount) != a.MaxReplicas {
		t.Errorf("replica counts %d..%d, want %d..%d", s.MinReplicaCount, s.MaxReplicaCount, a.MinReplicas, a.MaxReplicas)
	}
	b := s.Advanced.HorizontalPodAutoscalerConfig.Behavior
	if b.ScaleUp == nil || b.ScaleDown == nil || *b.ScaleDown.StabilizationWindowSeconds != int32(a.ScaleDown.StabilizationWindow.Seconds()) ||
		b.ScaleUp.Policies[0].Value != int32(a.ScaleUp.Percent) {
		t.Errorf("behaviour %+v does not follow autoscaling.scaleUp/scaleDown", b)
	}
	want := map[string]struct{ metric, threshold, metricType string }{}
	if a.RequestsInFlight > 0 {
		want["requests-in-flight"] = struct{ metric, threshold, metricType string }{"ai_gateway_upstream_inflight", strconv.Itoa(a.RequestsInFlight), "AverageValue"}
	}
	if a.QueueDepth > 0 {
		want["queue-depth"] = struct{ metric, threshold, metricType string }{"ai_gateway_upstream_queue_depth", strconv.Itoa(a.QueueDepth), "AverageValue"}
	}
	if a.TimeToFirstToken > 0 {
		want["time-to-first-token-p95"] = struct{ metric, threshold, metricType string }{"ai_gateway_time_to_first_token_seconds_bucket", strconv.FormatFloat(a.TimeToFirstToken.D().Seconds(), 'f', -1, 64), "Value"}
	}
	if a.RequestsPerSecond > 0 {
		want["requests-per-second"] = struct{ metric, threshold, metricType string }{"ai_api_requests_total", strconv.Itoa(a.RequestsPerSecond), "AverageValue"}
	}
	prom, cpu := 0, false
	for _, tr := range s.Triggers {
		switch tr.Type {
		case "prometheus":
			prom++
			w, ok := want[tr.Name]
			if !ok {
				t.Errorf("unexpected Prometheus trigger %q", tr.Name)
				continue
			}
			q := tr.Metadata["query"]
			if !strings.Contains(q, w.metric+`{job="`+cfg.Name+`-gateway"}`) || tr.Metadata["threshold"] != w.threshold || tr.MetricType != w.metricType {
				t.Errorf("trigger %s: query %q threshold %q type %s; want %s of the gateway's job, %s, %s", tr.Name, q, tr.Metadata["threshold"], tr.MetricType, w.metric, w.threshold, w.metricType)
			}
			if tr.Metadata["serverAddress"] != a.PrometheusURL {
				t.Errorf("trigger %s asks %q, want %q", tr.Name, tr.Metadata["serverAddress"], a.PrometheusURL)
			}
		case "cpu":
			cpu = tr.MetricType == "Utilization" && tr.Metadata["value"] == strconv.Itoa(a.CPUTarget)
		}
	}
	if prom != len(want) {
		t.Errorf("%d Prometheus triggers, want %d (%v)", prom, len(want), want)
	}
	if cpu != (a.CPUTarget > 0) {
		t.Errorf("cpu trigger %v, want one at %d%%: %v", cpu, a.CPUTarget, a.CPUTarget > 0)
	}
}

// A keda file that sets no target renders triggers on the gateway's in-flight
// and queue, for a server without a gauge of its own too; an hpa file with the
// same targets renders no ScaledObject.
func TestKEDADefaultTriggers(t *testing.T) {
	t.Parallel()
	for _, server := range []string{"ollama", "vllm"} {
		t.Run(server, func(t *testing.T) {
			t.Parallel()
			doc := "apiVersion: aideploy.dev/v1\nname: chat\nserver: " + server + "\nmodel:\n  name: m\n  concurrency: 8\nautoscaling:\n  engine: keda\n"
			cfg, err := config.Parse("aideploy.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			files, err := render(cfg, config.DefaultFile, testVersion, []Kind{Kubernetes})
			if err != nil {
				t.Fatal(err)
			}
			objs := decodeK8s(t, files)
			if objs.hpa != nil {
				t.Error("an HPA beside the ScaledObject")
			}
			checkScaledObject(t, objs.keda, cfg)
			if len(objs.keda.Spec.Triggers) != 2 || objs.keda.Spec.Triggers[0].Metadata["threshold"] != "6" || objs.keda.Spec.Triggers[1].Metadata["threshold"] != "2" {
				t.Errorf("triggers %+v, want in-flight 6 and queue 2 per replica", objs.keda.Spec.Triggers)
			}
		})
	}
}
