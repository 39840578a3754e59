package gateway

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway/sse"
)

func TestProxyPassesAnOpenedPath(t *testing.T) {
	t.Parallel()
	seen := make(chan *http.Request, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		seen <- r.Clone(context.Background())
		w.Header().Set("X-Up", "1")
		w.Header().Set("Connection", "x-hop")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "tea")
	}))
	t.Cleanup(up.Close)
	cfg := testConfig(up.URL)
	cfg.Routes = []Route{{Path: "/some/path", Methods: []string{http.MethodGet}}}
	_, gw := startGateway(t, cfg, false)
	req, _ := http.NewRequest(http.MethodGet, gw+"/some/path?q=1", nil)
	req.Header.Set("X-Request-Id", "abc")
	req.Header.Set("X-Client", "c")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || string(b) != "tea" || resp.Header.Get("X-Up") != "1" {
		t.Fatalf("got %d %q %v", resp.StatusCode, b, resp.Header)
	}
	got := <-seen
	if got.URL.Path != "/some/path" || got.URL.RawQuery != "q=1" || got.Header.Get("X-Request-Id") != "abc" || got.Header.Get("X-Client") != "c" {
		t.Fatalf("upstream saw %s %v", got.URL, got.Header)
	}
	if resp.Header.Get("X-Request-Id") != "abc" {
		t.Errorf("request id not echoed: %v", resp.Header)
	}
}

func TestStreamIsUnbuffered(t *testing.T) {
	t.Parallel()
	fm, up := fake(t, func(o *fakemodel.Options) { o.TokenDelay = 50 * time.Millisecond; o.Tokens = 10 })
	_, gw := startGateway(t, testConfig(up), false)
	start := time.Now()
	resp, err := http.Post(gw+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","stream":true,"max_tokens":10,"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q %v", line, err)
	}
	first := time.Since(start)
	rest, _ := io.ReadAll(br)
	total := time.Since(start)
	// 10 tokens at 50ms: the upstream writes its last event after ~450ms.
	if first > 200*time.Millisecond || total < 400*time.Millisecond {
		t.Fatalf("first event after %v, whole stream %v: the stream was buffered", first, total)
	}
	if !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("stream did not end with [DONE]: %q", rest)
	}
	_ = fm
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	fm, up := fake(t, func(o *fakemodel.Options) { o.TokenDelay = 100 * time.Millisecond; o.Tokens = 50 })
	_, gw := startGateway(t, testConfig(up), false)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true,"max_tokens":50}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(3 * time.Second)
	for fm.Stats().Cancelled != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("upstream not cancelled: %+v", fm.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A model still queueing the request (no status line yet) is abandoned once
// its client goes away: the request context's hook cuts the upstream read.
func TestClientDisconnectCancelsUpstreamBeforeItAnswers(t *testing.T) {
	t.Parallel()
	started, abandoned := make(chan struct{}, 1), make(chan time.Duration, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		_, _ = io.ReadAll(r.Body)
		t0 := time.Now()
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			abandoned <- time.Since(t0)
		case <-time.After(10 * time.Second):
			abandoned <- -1
		}
	}))
	t.Cleanup(up.Close)
	_, gw := startGateway(t, testConfig(up.URL), false)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/v1/chat/completions", strings.NewReader(`{"model":"m","max_tokens":5}`))
	go func() { <-started; cancel() }()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the request was answered")
	}
	if d := <-abandoned; d < 0 || d > 3*time.Second {
		t.Fatalf("the upstream request was not abandoned (%v)", d)
	}
}

func TestUpstreamCutEndsWithErrorEvent(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "data: {\"a\":1}\n\n")
		http.NewResponseController(w).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // cut mid-stream: the chunked body never terminates
		}
	}))
	t.Cleanup(up.Close)
	_, gw := startGateway(t, testConfig(up.URL), false)
	resp, err := http.Post(gw+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	evs := sse.Parse(b)
	if len(evs) != 2 || evs[1].Name != "error" {
		t.Fatalf("want a data event then an error event, got %q", b)
	}
}

func TestInputErrors(t *testing.T) {
	t.Parallel()
	_, up := fake(t, nil)
	cfg := testConfig(up)
	cfg.MaxBodyBytes = 1024
	cfg.Auth.Enabled = true
	cfg.Auth.Keys = []Key{{Name: "acme", SHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}} // "foo"
	_, gw := startGateway(t, cfg, false)
	tests := []struct {
		name, body, key string
		want            int
		wantIn          string
	}{
		{"no key", chatBody, "", 401, "invalid_api_key"},
		{"wrong key", chatBody, "bar", 401, "invalid_api_key"},
		{"malformed json", `{"model":`, "foo", 400, "invalid_request_error"},
		{"too large", `{"x":"` + strings.Repeat("a", 2000) + `"}`, "foo", 413, "request_too_large"},
		{"ok", chatBody, "foo", 200, "chat.completion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := []string{}
			if tt.key != "" {
				hdr = []string{"Authorization", "Bearer " + tt.key}
			}
			resp, body := post(t, gw+"/v1/chat/completions", tt.body, hdr...)
			if resp.StatusCode != tt.want || !strings.Contains(body, tt.wantIn) {
				t.Fatalf("got %d %s, want %d with %q", resp.StatusCode, body, tt.want, tt.wantIn)
			}
		})
	}
}

func TestSaturationGetsFast503(t *testing.T) {
	t.Parallel()
	_, up := fake(t, func(o *fakemodel.Options) { o.TokenDelay = 100 * time.Millisecond; o.Tokens = 10 })
	cfg := testConfig(up)
	cfg.Pools[0].MaxInflight = 1
	cfg.Pools[0].Queue.Size = 1
	cfg.Pools[0].Queue.Timeout = 50_000_000 // 50ms
	_, gw := startGateway(t, cfg, false)
	done := make(chan int, 1)
	go func() {
		resp, _ := post(t, gw+"/v1/chat/completions", chatBody)
		done <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond) // the first request holds the only slot for ~1s
	start := time.Now()
	resp, body := post(t, gw+"/v1/chat/completions", chatBody)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("X-Degraded") != "true" || !strings.Contains(body, "error") {
		t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("503 took %v; it must come after the 50ms queue timeout", d)
	}
	if code := <-done; code != 200 {
		t.Fatalf("first request got %d", code)
	}
}
