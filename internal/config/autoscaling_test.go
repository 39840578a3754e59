package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// With engine keda a file that sets no target scales on what the gateway sees
// of each replica, for any server; targets it writes stay as written.
func TestAutoscalingKEDADefaults(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: aideploy.dev/v1\nname: chat\nimage: r/chat:1\nmodel:\n  concurrency: 16\n"
	tests := []struct {
		name, yaml             string
		inFlight, queue, cpu   int
		ttft                   time.Duration
		prometheus, wantEngine string
	}{
		{"hpa stays the default", head, 0, 0, 0, 0, "", EngineHPA},
		{"keda scales on in-flight and queue", head + "autoscaling:\n  engine: keda\n", 12, 4, 0, 0, DefaultPrometheusURL, EngineKEDA},
		{"keda on ollama (no server gauge)", head + "server: ollama\nautoscaling:\n  engine: keda\n", 12, 4, 0, 0, DefaultPrometheusURL, EngineKEDA},
		{"written target wins", head + "autoscaling:\n  engine: keda\n  cpuTarget: 60\n", 0, 0, 60, 0, DefaultPrometheusURL, EngineKEDA},
		{"ttft alone", head + "autoscaling:\n  engine: keda\n  timeToFirstToken: 2s\n  prometheusURL: http://prom.obs:9090\n", 0, 0, 0, 2 * time.Second, "http://prom.obs:9090", EngineKEDA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse("aideploy.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			a := cfg.Autoscaling
			if a.Engine != tt.wantEngine || a.RequestsInFlight != tt.inFlight || a.QueueDepth != tt.queue || a.CPUTarget != tt.cpu ||
				a.TimeToFirstToken.D() != tt.ttft || a.PrometheusURL != tt.prometheus {
				t.Errorf("got engine %s in-flight %d queue %d cpu %d ttft %s prometheus %q; want %s %d %d %d %s %q",
					a.Engine, a.RequestsInFlight, a.QueueDepth, a.CPUTarget, a.TimeToFirstToken, a.PrometheusURL,
					tt.wantEngine, tt.inFlight, tt.queue, tt.cpu, tt.ttft, tt.prometheus)
			}
		})
	}
}

// Each mistake names the file, line and field, and says what to do.
func TestAutoscalingEngineProblems(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: aideploy.dev/v1\nname: chat\nimage: r/chat:1\n"
	tests := []struct{ name, yaml, want string }{
		{"unknown engine", head + "autoscaling:\n  engine: vpa\n", `aideploy.yaml:5:3: autoscaling.engine ("vpa") must be one of hpa, keda`},
		{"keda without the gateway", head + "gateway:\n  enabled: false\nautoscaling:\n  engine: keda\n", "autoscaling.engine (keda) scales on the gateway's metrics, but gateway.enabled is false"},
		{"bad prometheus", head + "autoscaling:\n  engine: keda\n  prometheusURL: prometheus:9090\n", `aideploy.yaml:6:3: autoscaling.prometheusURL ("prometheus:9090") must be the http(s) URL`},
		{"queue on hpa", head + "autoscaling:\n  queueDepth: 2\n", "aideploy.yaml:5:3: autoscaling.queueDepth (2) is read from the gateway's metrics through KEDA; set autoscaling.engine: keda"},
		{"ttft on hpa", head + "autoscaling:\n  timeToFirstToken: 2s\n", "autoscaling.timeToFirstToken (2s) is read from the gateway's metrics through KEDA"},
		{"negative queue", head + "autoscaling:\n  engine: keda\n  queueDepth: -1\n", "autoscaling.queueDepth (-1) must not be negative"},
		{"every target off", head + "autoscaling:\n  engine: keda\n  requestsInFlight: 0\n  queueDepth: 0\n", "set at least one target or disable autoscaling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("aideploy.yaml", []byte(tt.yaml))
			var cfgErr *Error
			if !errors.As(err, &cfgErr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
