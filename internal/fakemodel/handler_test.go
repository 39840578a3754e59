package fakemodel

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func testOptions() Options {
	o := DefaultOptions()
	o.Version = "v9"
	o.Tokens = 3
	return o
}

func newServer(t *testing.T, o Options) (*httptest.Server, *Handler) {
	t.Helper()
	h := NewHandler(o)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h
}

func do(t *testing.T, ctx context.Context, method, url, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, url, b, err)
	}
	return resp, m
}

// get digs into decoded JSON along keys and indexes, e.g. get(m, "choices", 0, "text").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, testOptions())
	usage := map[string]any{"prompt_tokens": 2.0, "completion_tokens": 3.0, "total_tokens": 5.0}
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     map[string]any // path (dot-joined) -> value
		check                    func(t *testing.T, m map[string]any)
	}{
		{name: "chat", method: "POST", path: "/v1/chat/completions", status: 200,
			body: `{"model":"m1","messages":[{"role":"user","content":"hello world"}]}`,
			want: map[string]any{"object": "chat.completion", "model": "m1", "system_fingerprint": "v9",
				"choices.0.message.content": "hello world hello", "choices.0.message.role": "assistant",
				"choices.0.finish_reason": "stop", "usage": usage}},
		{name: "chat content parts and max_tokens", method: "POST", path: "/v1/chat/completions", status: 200,
			body: `{"messages":[{"role":"user","content":[{"type":"text","text":"x y"}]}],"max_tokens":2}`,
			want: map[string]any{"model": "fake-model", "choices.0.message.content": "x y",
				"choices.0.finish_reason": "length", "usage.completion_tokens": 2.0}},
		{name: "completions", method: "POST", path: "/v1/completions", status: 200,
			body: `{"model":"m2","prompt":"hello world"}`,
			want: map[string]any{"object": "text_completion", "model": "m2", "system_fingerprint": "v9",
				"choices.0.text": "hello world hello", "usage": usage}},
		{name: "completions max_completion_tokens", method: "POST", path: "/v1/completions", status: 200,
			body: `{"prompt":["a"],"max_completion_tokens":1}`,
			want: map[string]any{"choices.0.text": "a", "usage.total_tokens": 2.0}},
		{name: "completions empty prompt", method: "POST", path: "/v1/completions", status: 200,
			body: `{"prompt":""}`, want: map[string]any{"choices.0.text": "fake fake fake"}},
		{name: "embeddings", method: "POST", path: "/v1/embeddings", status: 200,
			body: `{"input":["one two","three"]}`,
			want: map[string]any{"object": "list", "model": "fake-model", "usage.prompt_tokens": 3.0,
				"data.1.index": 1.0, "system_fingerprint": "v9"},
			check: func(t *testing.T, m map[string]any) {
				for i := range 2 {
					vec, _ := get(m, "data", i, "embedding").([]any)
					if len(vec) != 8 {
						t.Fatalf("embedding %d has %d dimensions, want 8", i, len(vec))
					}
					var norm float64
					for _, x := range vec {
						norm += x.(float64) * x.(float64)
					}
					if math.Abs(norm-1) > 1e-9 {
						t.Errorf("embedding %d has squared norm %v, want 1", i, norm)
					}
				}
				if get(m, "data", 0, "embedding", 0) == get(m, "data", 1, "embedding", 0) {
					t.Error("different inputs got the same embedding")
				}
			}},
		{name: "models", method: "GET", path: "/v1/models", status: 200,
			want: map[string]any{"object": "list", "data.0.id": "fake-model"}},
		{name: "health", method: "GET", path: "/health", status: 200, want: map[string]any{"status": "ok", "version": "v9"}},
		{name: "ready", method: "GET", path: "/ready", status: 200, want: map[string]any{"status": "ok"}},
		{name: "bad json", method: "POST", path: "/v1/chat/completions", body: `{"messages":`, status: 400,
			want: map[string]any{"error.type": "invalid_request_error"}},
		{name: "bad embeddings input", method: "POST", path: "/v1/embeddings", body: `{"input":5}`, status: 400,
			want: map[string]any{"error.type": "invalid_request_error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, m := do(t, t.Context(), tt.method, srv.URL+tt.path, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %v", resp.StatusCode, tt.status, m)
			}
			if v := resp.Header.Get("X-Model-Version"); v != "v9" {
				t.Errorf("X-Model-Version %q, want v9", v)
			}
			for p, want := range tt.want {
				var path []any
				for _, k := range strings.Split(p, ".") {
					if k >= "0" && k <= "9" {
						path = append(path, int(k[0]-'0'))
					} else {
						path = append(path, k)
					}
				}
				got, _ := json.Marshal(get(m, path...))
				wantJSON, _ := json.Marshal(want)
				if string(got) != string(wantJSON) {
					t.Errorf("%s = %s, want %s", p, got, wantJSON)
				}
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

type event struct {
	at   time.Duration
	data string
}

// readEvents reads SSE data lines until [DONE] or EOF, noting when each arrived.
func readEvents(t *testing.T, body io.Reader, start time.Time) []event {
	t.Helper()
	var out []event
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, event{time.Since(start), d})
			if d == "[DONE]" {
				break
			}
		}
	}
	return out
}

func TestStreamEventsArriveOneByOne(t *testing.T) {
	t.Parallel()
	const delay = 60 * time.Millisecond
	o := testOptions()
	o.Tokens = 4
	o.TokenDelay = delay
	o.FirstTokenDelay = delay
	srv, _ := newServer(t, o)
	tests := []struct {
		name, path, body, textField string
		usage                       bool // asked for the usage chunk
	}{
		{"chat", "/v1/chat/completions", `{"messages":[{"role":"user","content":"a b c d e"}],"stream":true}`, "delta.content", false},
		{"completions", "/v1/completions", `{"prompt":"a b c d e","stream":true,"stream_options":{"include_usage":true}}`, "text", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			resp, err := http.Post(srv.URL+tt.path, "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("Content-Type %q, want text/event-stream", ct)
			}
			evs := readEvents(t, resp.Body, start)
			want := 4 + 2 // tokens, finish, [DONE]
			if tt.usage {
				want++ // and the usage chunk, only when asked for, as OpenAI and vLLM do
			}
			if len(evs) != want {
				t.Fatalf("got %d events, want %d (4 tokens, finish, usage only if asked, [DONE]): %v", len(evs), want, evs)
			}
			var text strings.Builder
			for i, ev := range evs[:4] {
				// each token arrives on its own, about one delay after the previous one
				lo := time.Duration(i+1) * delay
				if ev.at < lo-5*time.Millisecond || ev.at > lo+delay/2+40*time.Millisecond {
					t.Errorf("token %d arrived at %s, want about %s", i, ev.at, lo)
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
					t.Fatal(err)
				}
				f := strings.Split(tt.textField, ".")
				path := []any{"choices", 0}
				for _, k := range f {
					path = append(path, k)
				}
				s, _ := get(m, path...).(string)
				text.WriteString(s)
				if get(m, "system_fingerprint") != "v9" {
					t.Errorf("chunk %d has no version: %s", i, ev.data)
				}
			}
			if text.String() != "a b c d" {
				t.Errorf("streamed text %q, want %q", text.String(), "a b c d")
			}
			var finish, last map[string]any
			_ = json.Unmarshal([]byte(evs[4].data), &finish)
			if get(finish, "choices", 0, "finish_reason") != "stop" {
				t.Errorf("finish chunk %s has no finish_reason stop", evs[4].data)
			}
			if tt.usage {
				_ = json.Unmarshal([]byte(evs[5].data), &last)
				u, _ := json.Marshal(get(last, "usage"))
				if string(u) != `{"completion_tokens":4,"prompt_tokens":5,"total_tokens":9}` {
					t.Errorf("last chunk usage %s, want 5+4=9", u)
				}
			}
			if evs[len(evs)-1].data != "[DONE]" {
				t.Errorf("stream ends with %q, want [DONE]", evs[len(evs)-1].data)
			}
		})
	}
}

func TestClientDisconnectCancelsStream(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.Tokens = 1000
	o.TokenDelay = 20 * time.Millisecond
	srv, h := newServer(t, o)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("reading first event: %v", err)
	}
	if s := h.Stats(); s.Inflight != 1 || s.Cancelled != 0 {
		t.Fatalf("stats mid-stream %+v, want 1 in flight, 0 cancelled", s)
	}
	cancel()
	resp.Body.Close()
	waitFor(t, 2*time.Second, func() bool { s := h.Stats(); return s.Cancelled == 1 && s.Inflight == 0 })
	// /stats reports the same counters over HTTP
	_, m := do(t, t.Context(), "GET", srv.URL+"/stats", "")
	if m["cancelled"] != 1.0 || m["requests"] != 1.0 || m["inflight"] != 0.0 {
		t.Errorf("GET /stats = %v, want 1 request, 1 cancelled, 0 in flight", m)
	}
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartupDelay(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.StartupDelay = 300 * time.Millisecond
	srv, _ := newServer(t, o)
	for _, p := range []string{"/health", "/ready"} {
		resp, m := do(t, t.Context(), "GET", srv.URL+p, "")
		if resp.StatusCode != 503 || m["status"] != "loading" {
			t.Errorf("%s during startup: %d %v, want 503 loading", p, resp.StatusCode, m)
		}
	}
	if resp, _ := do(t, t.Context(), "POST", srv.URL+"/v1/completions", `{"prompt":"x"}`); resp.StatusCode != 503 {
		t.Errorf("completion during startup: %d, want 503", resp.StatusCode)
	}
	time.Sleep(320 * time.Millisecond)
	if resp, m := do(t, t.Context(), "GET", srv.URL+"/health", ""); resp.StatusCode != 200 || m["status"] != "ok" {
		t.Errorf("health after startup: %d %v, want 200 ok", resp.StatusCode, m)
	}
}

func TestFailureKnobs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		rate       float64
		failAfter  time.Duration
		wait       time.Duration
		healthFail bool
		wantFailed int // of 20 model requests
		wantHealth int // status of /health
	}{
		{name: "none", wantFailed: 0, wantHealth: 200},
		{name: "quarter", rate: 0.25, wantFailed: 5, wantHealth: 200},
		{name: "half", rate: 0.5, wantFailed: 10, wantHealth: 200},
		{name: "all", rate: 1, wantFailed: 20, wantHealth: 200},
		{name: "fail after not yet", failAfter: time.Hour, wantFailed: 0, wantHealth: 200},
		{name: "fail after passed", failAfter: 50 * time.Millisecond, wait: 80 * time.Millisecond, wantFailed: 20, wantHealth: 200},
		{name: "health fail", healthFail: true, wantFailed: 0, wantHealth: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			o.FailureRate, o.FailAfter, o.HealthFail = tt.rate, tt.failAfter, tt.healthFail
			srv, h := newServer(t, o)
			time.Sleep(tt.wait)
			failed := 0
			for range 20 {
				resp, m := do(t, t.Context(), "POST", srv.URL+"/v1/completions", `{"prompt":"x"}`)
				switch resp.StatusCode {
				case 500:
					failed++
					if get(m, "error", "type") != "server_error" {
						t.Errorf("500 body %v is not an OpenAI-style error", m)
					}
				case 200:
				default:
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			if failed != tt.wantFailed || h.Stats().Failed != int64(tt.wantFailed) {
				t.Errorf("%d of 20 failed (stats %d), want %d", failed, h.Stats().Failed, tt.wantFailed)
			}
			resp, m := do(t, t.Context(), "GET", srv.URL+"/health", "")
			if resp.StatusCode != tt.wantHealth {
				t.Errorf("health %d %v, want %d", resp.StatusCode, m, tt.wantHealth)
			}
			if tt.healthFail && m["status"] != "unhealthy" {
				t.Errorf("health body %v, want status unhealthy", m)
			}
		})
	}
}

func TestHang(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.Hang = true
	srv, h := newServer(t, o)
	for _, p := range []string{"/v1/completions", "/health"} {
		ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+p, strings.NewReader(`{"prompt":"x"}`))
		if p == "/health" {
			req.Method = "GET"
		}
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s answered %d, want no answer", p, resp.StatusCode)
		}
	}
	waitFor(t, 2*time.Second, func() bool { s := h.Stats(); return s.Cancelled == 1 && s.Inflight == 0 })
	if resp, m := do(t, t.Context(), "GET", srv.URL+"/stats", ""); resp.StatusCode != 200 || m["requests"] != 1.0 {
		t.Errorf("/stats while hanging: %d %v, want 200 with 1 request", resp.StatusCode, m)
	}
}

func TestSlotsQueueTheRest(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.Slots = 2
	o.FirstTokenDelay = time.Minute // the requests in slots stay there until cancelled
	srv, h := newServer(t, o)
	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/completions", strings.NewReader(`{"prompt":"x"}`))
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	waitFor(t, 5*time.Second, func() bool { s := h.Stats(); return s.Inflight == 5 && s.Queued == 3 })
	cancel()
	for range 5 {
		<-errs
	}
	waitFor(t, 5*time.Second, func() bool { s := h.Stats(); return s.Inflight == 0 && s.Queued == 0 && s.Cancelled == 5 })
}
