package limit

import (
	"encoding/json"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aideploy/aideploy/internal/units"
)

func TestConfigYAMLAndJSON(t *testing.T) {
	t.Parallel()
	src := `
enabled: true
backend: redis
localShare: 0.34
redis: {timeout: 20ms, keyPrefix: "rl:", retryAfter: 2s}
maxKeys: 1000
default: {algorithm: slidingwindow, requests: 100, window: 1m, tokensPerMinute: 90000}
tenants:
  acme: {algorithm: tokenbucket, requests: 10, window: 1s, burst: 20}
routes:
  - route: /v1/embeddings
    algorithm: tokenbucket
    requests: 600
    window: 1m
`
	var cfg Config
	if err := yaml.Unmarshal([]byte(src), &cfg); err != nil {
		t.Fatal(err)
	}
	want := Rule{Algorithm: TokenBucket, Requests: 600, Window: units.Duration(time.Minute)}
	if len(cfg.Routes) != 1 || cfg.Routes[0].Route != "/v1/embeddings" || cfg.Routes[0].Rule != want ||
		cfg.Tenants["acme"].Burst != 20 || cfg.Default.TokensPerMinute != 90000 || cfg.Redis.Timeout.D() != 20*time.Millisecond {
		t.Fatalf("decoded %+v", cfg)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if back.Routes[0].Rule != want || back.Routes[0].Route != "/v1/embeddings" {
		t.Errorf("JSON round trip lost the route rule: %s", b)
	}
}
