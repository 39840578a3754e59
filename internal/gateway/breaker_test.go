package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/units"
)

func TestBreakerOpensDegradesAndRecovers(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	var calls atomic.Int64
	failing.Store(true)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		calls.Add(1)
		if failing.Load() {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"chat.completion","usage":{"prompt_tokens":1,"completion_tokens":1}}`)
	}))
	t.Cleanup(up.Close)
	cfg := testConfig(up.URL)
	cfg.Breaker.ConsecutiveFailures = 3
	cfg.Breaker.Cooldown = units.Duration(300 * time.Millisecond)
	cfg.Cache.Enabled = false
	srv, gw := startGateway(t, cfg, false)
	for i := range 3 {
		if resp, _ := post(t, gw+"/v1/chat/completions", chatBody); resp.StatusCode != 500 {
			t.Fatalf("failing call %d: %d", i, resp.StatusCode)
		}
	}
	if s := srv.Gateway().Pools()["default"].Snapshot().Targets[0].Breaker; s != "open" {
		t.Fatalf("breaker after 3 failures: %s", s)
	}
	resp, body := post(t, gw+"/v1/chat/completions", chatBody)
	if resp.StatusCode != 503 || resp.Header.Get("X-Degraded") != "true" || resp.Header.Get("Retry-After") == "" || calls.Load() != 3 {
		t.Fatalf("open breaker: %d %v %s; upstream calls %d", resp.StatusCode, resp.Header, body, calls.Load())
	}
	failing.Store(false)
	time.Sleep(350 * time.Millisecond)
	if resp, _ := post(t, gw+"/v1/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Fatalf("half-open probe: %d", resp.StatusCode)
	}
	if s := srv.Gateway().Pools()["default"].Snapshot().Targets[0].Breaker; s != "closed" {
		t.Fatalf("breaker after a good probe: %s", s)
	}
}
