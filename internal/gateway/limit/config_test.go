package limit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
		{"backend and share", func(c *Config) { c.Backend, c.LocalShare = "memcached", 0 }, []string{"backend", "localShare"}},
		{"redis", func(c *Config) { c.Redis.Timeout, c.Redis.RetryAfter = 0, -1 }, []string{"redis.timeout", "redis.retryAfter"}},
		{"rule", func(c *Config) { c.Default = Rule{Algorithm: "leaky", Requests: 5, Burst: -1, TokensPerMinute: -1} },
			[]string{"default.algorithm", "default.window", "default.burst", "default.tokensPerMinute"}},
		{"no request limit needs no algorithm", func(c *Config) { c.Default = Rule{TokensPerMinute: 1000} }, nil},
		{"tenant", func(c *Config) { c.Tenants = map[string]Rule{"acme": {Requests: -1}} }, []string{"tenants.acme.requests"}},
		{"routes", func(c *Config) {
			ok := Rule{Algorithm: TokenBucket, Requests: 1, Window: units.Duration(time.Second)}
			c.Routes = []RouteRule{{Route: "/v1/x", Rule: ok}, {Route: "/v1/x", Rule: ok}, {Route: "v1", Rule: ok}}
		}, []string{"routes[1].route", "routes[2].route"}},
		{"maxKeys", func(c *Config) { c.MaxKeys = 0 }, []string{"maxKeys"}},
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

func TestShare(t *testing.T) {
	t.Parallel()
	r := Rule{Requests: 100, Burst: 7, TokensPerMinute: 0}.share(0.33)
	if r.Requests != 33 || r.Burst != 3 || r.TokensPerMinute != 0 {
		t.Errorf("share(0.33) = %+v, want 33 requests, burst 3, no token budget", r)
	}
	if r := (Rule{Requests: 1}).share(0.1); r.Requests != 1 {
		t.Errorf("share never goes below 1: got %d", r.Requests)
	}
}

// TestLocalKeysBounded checks that many tenants do not grow memory without bound.
func TestLocalKeysBounded(t *testing.T) {
	t.Parallel()
	cfg := rule(SlidingWindow, 10, time.Minute)
	cfg.Enabled, cfg.MaxKeys = true, 100
	l := New(cfg, nil, nil, nil)
	t.Cleanup(l.Close)
	for i := range 5000 {
		l.AllowRequest(context.Background(), fmt.Sprint("tenant-", i), "/")
	}
	l.local.c.CleanUp()
	if n := l.local.c.EstimatedSize(); n > 100 {
		t.Errorf("%d counters kept, bound is 100", n)
	}
}

func TestWithPerMinute(t *testing.T) {
	t.Parallel()
	base := Rule{Algorithm: TokenBucket, Requests: 10, Window: units.Duration(time.Second), Burst: 50, TokensPerMinute: 1000}
	tests := []struct {
		name             string
		base             Rule
		requests, tokens int64
		want             Rule
	}{
		{"both", base, 120, 5000, Rule{Algorithm: TokenBucket, Requests: 120, Window: units.Duration(time.Minute), TokensPerMinute: 5000}},
		{"tokens only", base, 0, 5000, Rule{Algorithm: TokenBucket, Requests: 10, Window: units.Duration(time.Second), Burst: 50, TokensPerMinute: 5000}},
		{"none", base, 0, 0, base},
		{"from no rule", Rule{}, 60, 0, Rule{Algorithm: SlidingWindow, Requests: 60, Window: units.Duration(time.Minute)}},
	}
	for _, tt := range tests {
		if got := tt.base.WithPerMinute(tt.requests, tt.tokens); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
