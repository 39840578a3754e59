package cache

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(*Config)
		paths []string
	}{
		{"default", func(*Config) {}, nil},
		{"zero", func(c *Config) { *c = Config{} }, []string{"ttl", "l1MaxBytes", "maxEntryBytes", "l2.timeout", "l2.breakAfter", "l2.breakFor"}},
		{"stale", func(c *Config) { c.StaleFor = -1 }, []string{"staleFor"}},
		{"entry over L1", func(c *Config) { c.MaxEntryBytes = c.L1MaxBytes + 1 }, []string{"maxEntryBytes"}},
		{"route", func(c *Config) { c.Routes = map[string]RouteConfig{"/v1/x": {TTL: -1}} }, []string{"routes./v1/x.ttl"}},
		{"route path", func(c *Config) { c.Routes = map[string]RouteConfig{"v1": {}} }, []string{"routes.v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			tt.edit(&cfg)
			errs := validate.New()
			cfg.Validate(errs)
			var got []string
			for _, e := range errs.List() {
				got = append(got, e.Path)
			}
			if strings.Join(got, ",") != strings.Join(tt.paths, ",") {
				t.Errorf("Validate paths = %v, want %v (%v)", got, tt.paths, errs.List())
			}
		})
	}
}

func TestRoutePolicy(t *testing.T) {
	t.Parallel()
	off := false
	cfg := Default()
	cfg.Routes = map[string]RouteConfig{
		"/v1/embeddings":       {TTL: units.Duration(24 * time.Hour), Shared: true},
		"/v1/chat/completions": {Enabled: &off},
	}
	tests := map[string]Policy{
		"/v1/embeddings":       {Enabled: true, TTL: 24 * time.Hour, Shared: true},
		"/v1/chat/completions": {Enabled: false, TTL: time.Hour},
		"/v1/completions":      {Enabled: true, TTL: time.Hour},
	}
	for route, want := range tests {
		if got := cfg.Route(route); got != want {
			t.Errorf("Route(%s) = %+v, want %+v", route, got, want)
		}
	}
}

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	src := `
enabled: true
ttl: 30m
staleFor: 5m
l1MaxBytes: 64Mi
maxEntryBytes: 1Mi
l2: {enabled: true, timeout: 20ms, keyPrefix: "c:", breakAfter: 3, breakFor: 2s}
routes:
  /v1/embeddings: {ttl: 24h, shared: true}
  /v1/chat/completions: {enabled: false}
`
	cfg := Default()
	if err := yaml.Unmarshal([]byte(src), &cfg); err != nil {
		t.Fatal(err)
	}
	errs := validate.New()
	cfg.Validate(errs)
	if len(errs.List()) != 0 {
		t.Fatalf("valid YAML gives errors: %v", errs.List())
	}
	if cfg.L1MaxBytes != 64<<20 || cfg.L2.Timeout.D() != 20*time.Millisecond ||
		cfg.Route("/v1/embeddings") != (Policy{Enabled: true, TTL: 24 * time.Hour, Shared: true}) ||
		cfg.Route("/v1/chat/completions").Enabled {
		t.Errorf("decoded %+v", cfg)
	}
}
