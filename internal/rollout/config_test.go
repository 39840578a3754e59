package rollout

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // field paths with an error
	}{
		{"defaults are valid", func(*Config) {}, nil},
		{"unknown strategy", func(c *Config) { c.Strategy = "rainbow" }, []string{"strategy"}},
		{"unknown target", func(c *Config) { c.Target = "nomad" }, []string{"target"}},
		{"health path", func(c *Config) { c.HealthCheck.Path = "health" }, []string{"healthCheck.path"}},
		{"zero interval and timeout", func(c *Config) { c.HealthCheck.Interval, c.HealthCheck.Timeout = 0, 0 },
			[]string{"healthCheck.interval", "healthCheck.timeout"}},
		{"budget below a check", func(c *Config) { c.StartupBudget = units.Duration(time.Second) }, []string{"startupBudget"}},
		{"warm-up path only when enabled", func(c *Config) { c.Warmup.Enabled, c.Warmup.Path = false, "" }, nil},
		{"warm-up path", func(c *Config) { c.Warmup.Path = "" }, []string{"warmup.path"}},
		{"error rate above 1", func(c *Config) { c.Watch.MaxErrorRate = 5 }, []string{"watch.maxErrorRate"}},
		{"negative latency limits", func(c *Config) { c.Watch.MaxP99, c.Watch.MaxTTFT = -1, -1 }, []string{"watch.maxP99", "watch.maxTTFT"}},
		{"negative delays", func(c *Config) {
			c.DrainTimeout, c.ScaleDownDelay, c.Watch.Window = -1, -1, -1
		}, []string{"drainTimeout", "scaleDownDelay", "watch.window"}},
		{"keep no revision", func(c *Config) { c.KeepRevisions = 0 }, []string{"keepRevisions"}},
		{"negative surge", func(c *Config) { c.Surge = -1 }, []string{"surge"}},
		{"canary defaults are valid", func(c *Config) { c.Strategy = StrategyCanary }, nil},
		{"shadow defaults are valid", func(c *Config) { c.Strategy = StrategyShadow }, nil},
		{"canary without steps", func(c *Config) { c.Strategy, c.Canary.Steps = StrategyCanary, nil }, []string{"canary.steps"}},
		{"canary weights must grow and stay below 100", func(c *Config) {
			c.Canary.Steps = []CanaryStep{{Weight: 50}, {Weight: 25}, {Weight: 100}}
		}, []string{"canary.steps[1].weight", "canary.steps[2].weight"}},
		{"sticky by an unnamed header", func(c *Config) { c.Canary.Sticky = "header:" }, []string{"canary.sticky"}},
		{"sticky by a header", func(c *Config) { c.Canary.Sticky = "header:X-Session-Id" }, nil},
		{"negative thresholds", func(c *Config) {
			c.Canary.Analysis.Thresholds.TTFTP95Ratio, c.Canary.Analysis.Thresholds.MaxErrorRate = -1, 2
		}, []string{"canary.analysis.thresholds.ttftP95Ratio", "canary.analysis.thresholds.maxErrorRate"}},
		{"shadow of nothing", func(c *Config) { c.Strategy, c.Shadow.Percent = StrategyShadow, 0 }, []string{"shadow.percent"}},
		{"canary with surge", func(c *Config) { c.Strategy, c.Surge = StrategyCanary, 1 }, []string{"surge"}},
		{"webhook not a URL", func(c *Config) { c.Webhook = "hooks.example.com" }, []string{"webhook"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tt.change(&c)
			errs := validate.New()
			c.Validate(errs.At("rollout"))
			var got []string
			for _, e := range errs.List() {
				got = append(got, strings.TrimPrefix(e.Path, "rollout."))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("errors at %v, want %v (%v)", got, tt.want, errs.List())
			}
		})
	}
}

func TestConfigYAMLRoundTrip(t *testing.T) {
	t.Parallel()
	in := "strategy: bluegreen\ntarget: docker\nhealthCheck: {path: /ready, interval: 2s, timeout: 3s}\nstartupBudget: 15m\ndrainTimeout: 5m\nwatch: {window: 1m, maxErrorRate: 0.01, maxP99: 800ms, maxTTFT: 400ms}\nkeepRevisions: 3\n"
	c := Default()
	if err := yaml.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.StartupBudget.D() != 15*time.Minute || c.HealthCheck.Path != "/ready" || c.Watch.MaxP99.D() != 800*time.Millisecond || c.Watch.MaxTTFT.D() != 400*time.Millisecond || c.KeepRevisions != 3 {
		t.Errorf("decoded %+v", c)
	}
	if !c.Warmup.Enabled || c.ScaleDownDelay.D() != 30*time.Second {
		t.Errorf("defaults lost: %+v", c)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"startupBudget":"15m"`, `"healthCheck":{"path":"/ready"`, `"maxP99":"800ms"`, `"maxTTFT":"400ms"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("json %s lacks %s", b, want)
		}
	}
}
