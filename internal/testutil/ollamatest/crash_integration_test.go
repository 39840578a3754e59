package ollamatest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/testutil/ollamatest"
)

// crashMidStream starts a long stream at url, kills srv's runners once real
// tokens have arrived, and returns the response and what the client read.
func crashMidStream(t *testing.T, srv *ollamatest.Server, url string, body []byte) (*http.Response, sse) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp := post(ctx, t, url, body)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %s before the crash: %s", resp.Status, b)
	}
	var once sync.Once
	s, err := readSSE(resp.Body, func(d string) {
		var c chunk
		if json.Unmarshal([]byte(d), &c) != nil || len(c.Choices) == 0 || c.Choices[0].Delta.Content == "" {
			return // not a real token yet
		}
		once.Do(func() {
			n, err := srv.KillRunners()
			if err != nil || n == 0 {
				t.Errorf("killing the runner mid-stream: %d killed, %v", n, err)
			}
		})
	})
	if err != nil && ctx.Err() != nil {
		t.Fatalf("the stream did not end within 2 minutes of the crash: %v", err)
	}
	return resp, s
}

// A generation long enough to be cut: random weights rarely pick the end
// token, and Ollama shifts the context rather than stop at num_ctx.
var long = map[string]any{"temperature": 0, "seed": 7}

// TestIntegrationOllamaRunnerCrashEndsStreamSilently records the engine's
// behaviour that the gateway must guard against: when the runner dies, the
// /v1 stream still ends as HTTP 200, with no [DONE] and no finish_reason.
func TestIntegrationOllamaRunnerCrashEndsStreamSilently(t *testing.T) {
	t.Parallel()
	srv := ollamatest.Start(t, ollamatest.Options{})
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, s := crashMidStream(t, srv, srv.URL+"/v1/chat/completions", chat(true, 100000, long))
	text, finish := s.content(t)
	if resp.StatusCode != http.StatusOK || s.done || finish != "" || text == "" {
		t.Errorf("Ollama's crashed stream: status %d, [DONE] %v, finish_reason %q, text %d bytes; want 200, no [DONE], none, some",
			resp.StatusCode, s.done, finish, len(text))
	}
	// The runner's death shows only as a last chunk without content or model.
	var last struct {
		Model   string `json:"model"`
		Choices []struct {
			Delta struct{ Content string } `json:"delta"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(s.data[len(s.data)-1]), &last); err != nil || last.Model != "" ||
		len(last.Choices) != 1 || last.Choices[0].Delta.Content != "" {
		t.Errorf("last chunk of the crashed stream %s, want an empty chunk", s.data[len(s.data)-1])
	}
}

// TestIntegrationOllamaRunnerCrashThroughGateway: the same crash behind the
// gateway must reach the client as SSE event: error, and the cut answer must
// not be stored, so the same request afterwards is a miss, not a replay.
func TestIntegrationOllamaRunnerCrashThroughGateway(t *testing.T) {
	t.Parallel()
	srv := ollamatest.Start(t, ollamatest.Options{})
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, srv.URL)
	body := chat(true, 100000, long)
	_, s := crashMidStream(t, srv, gw+"/v1/chat/completions", body)
	if _, finish := s.content(t); finish != "" {
		t.Fatalf("the stream finished (%q) before the runner was killed; the crash was not mid-stream", finish)
	}
	hasError := false
	for _, e := range s.events {
		hasError = hasError || e == "error"
	}
	if !hasError || s.done {
		t.Errorf("client saw events %v and [DONE] %v after the runner crashed; want event: error and no [DONE]", s.events, s.done)
	}

	// Asked again: Ollama reloads the runner; the answer must come from it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp := post(ctx, t, gw+"/v1/chat/completions", body)
	defer resp.Body.Close()
	if x := resp.Header.Get("X-Cache"); strings.HasPrefix(x, "HIT") || strings.HasPrefix(x, "STALE") {
		b := make([]byte, 512)
		n, _ := resp.Body.Read(b)
		t.Errorf("the cut stream was stored: the same request got X-Cache %q: %s", x, b[:n])
	}
	cancel() // the answer would run for 100000 tokens
}

// TestIntegrationOllamaSlotsQueueOnceLoaded: with OLLAMA_NUM_PARALLEL=1 and
// a queue of 1, a loaded model still takes every request: the runner queues
// them without bound and serves them one at a time.
func TestIntegrationOllamaSlotsQueueOnceLoaded(t *testing.T) {
	t.Parallel()
	srv := ollamatest.Start(t, ollamatest.Options{NumParallel: 1, MaxQueue: 1})
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	const n = 4
	type span struct{ first, last time.Time }
	spans := make([]span, n)
	status := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			resp, err := send(ctx, srv.URL+"/v1/chat/completions", chat(true, 24, nil))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			status[i] = resp.StatusCode
			_, _ = readSSE(resp.Body, func(d string) {
				if !strings.Contains(d, `"content"`) {
					return
				}
				now := time.Now()
				if spans[i].first.IsZero() {
					spans[i].first = now
				}
				spans[i].last = now
			})
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if status[i] != http.StatusOK || spans[i].first.IsZero() {
			t.Fatalf("request %d: status %d, tokens from %v; want 200 with tokens (queued, not refused)", i, status[i], spans[i].first)
		}
	}
	// One slot: generations take turns. The client reads each stream on its
	// own goroutine, so a boundary may blur by a scheduling delay; two
	// generations sharing the runner would overlap for most of their length.
	for i := range n {
		for j := i + 1; j < n; j++ {
			overlap := minTime(spans[i].last, spans[j].last).Sub(maxTime(spans[i].first, spans[j].first))
			shorter := min(spans[i].last.Sub(spans[i].first), spans[j].last.Sub(spans[j].first))
			if overlap > 0 && overlap > shorter/2 {
				t.Errorf("requests %d and %d generated together for %s (of %s) with one slot", i, j, overlap, shorter)
			}
		}
	}
}

// TestIntegrationOllamaOverflowWhileLoading: while the model loads, requests
// beyond OLLAMA_MAX_QUEUE are refused at once with 503 and no Retry-After.
func TestIntegrationOllamaOverflowWhileLoading(t *testing.T) {
	t.Parallel()
	srv := ollamatest.Start(t, ollamatest.Options{NumParallel: 1, MaxQueue: 1})
	const n = 8
	type answer struct {
		status     int
		retryAfter string
		body       string
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			resp, err := send(ctx, srv.URL+"/v1/chat/completions", chat(false, 4, nil))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers[i] = answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b)}
		}()
	}
	close(start)
	wg.Wait()
	var ok, busy int
	for _, a := range answers {
		switch a.status {
		case http.StatusOK:
			ok++
		case http.StatusServiceUnavailable:
			busy++
			if a.retryAfter != "" {
				t.Errorf("503 with Retry-After %q; Ollama is known to send none", a.retryAfter)
			}
			var e struct {
				Error struct{ Message string } `json:"error"`
			}
			if err := json.Unmarshal([]byte(a.body), &e); err != nil || !strings.Contains(e.Error.Message, "busy") {
				t.Errorf("503 body %q, want Ollama's server busy error", a.body)
			}
		default:
			t.Errorf("unexpected answer %d: %s", a.status, a.body)
		}
	}
	if ok == 0 || busy == 0 {
		t.Errorf("%d answered, %d refused of %d sent at once while loading; want both", ok, busy, n)
	}
	t.Logf("while loading: %d answered, %d refused with 503", ok, busy)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
