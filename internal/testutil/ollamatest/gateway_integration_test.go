package ollamatest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/testutil/ollamatest"
	"github.com/aideploy/aideploy/internal/units"
)

// startGateway runs the real gateway in-process, on its defaults (cache
// included), with one Ollama server as the default pool's only target.
func startGateway(t *testing.T, target string) string {
	t.Helper()
	cfg := gateway.Default()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.ShutdownTimeout = units.Duration(5 * time.Second)
	cfg.AdminTokenFile = filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(cfg.AdminTokenFile, []byte("test-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Ollama answers GET / with 200 "Ollama is running" as soon as it listens.
	cfg.Pools = []upstream.PoolConfig{{Name: "default", Targets: []upstream.TargetConfig{{URL: target}},
		HealthCheck: upstream.HealthCheck{Path: "/", Interval: units.Duration(200 * time.Millisecond),
			Timeout: units.Duration(2 * time.Second), HealthyThreshold: 1, UnhealthyThreshold: 3}}}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- gateway.Run(ctx, cfg, nil, gateway.Options{Started: func(listen, _ string) { started <- listen }})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case a := <-started:
		return "http://" + a
	case err := <-done:
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not start within 30s")
	}
	return ""
}

// chat is an OpenAI chat request for the tiny model.
func chat(stream bool, maxTokens int, extra map[string]any) []byte {
	req := map[string]any{
		"model":      ollamatest.Model,
		"messages":   []map[string]string{{"role": "user", "content": "Say something about rollouts."}},
		"stream":     stream,
		"max_tokens": maxTokens,
	}
	for k, v := range extra {
		req[k] = v
	}
	b, _ := json.Marshal(req)
	return b
}

func post(ctx context.Context, t *testing.T, url string, body []byte) *http.Response {
	t.Helper()
	resp, err := send(ctx, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// send is post for goroutines other than the test's, which must not call t.Fatal.
func send(ctx context.Context, url string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", url, err)
	}
	return resp, nil
}

// sse reads an event stream as its data payloads and event names.
type sse struct {
	data   []string
	events []string
	done   bool // saw data: [DONE]
}

func readSSE(r io.Reader, onData func(string)) (sse, error) {
	var s sse
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event:"):
			s.events = append(s.events, strings.TrimSpace(strings.TrimPrefix(line, "event:")))
		case strings.HasPrefix(line, "data:"):
			d := strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			if d == "[DONE]" {
				s.done = true
				continue
			}
			s.data = append(s.data, d)
			if onData != nil {
				onData(d)
			}
		}
	}
	return s, sc.Err()
}

// chunk is the part of a streamed chat chunk the tests read.
type chunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

func (s sse) content(t *testing.T) (text string, finish string) {
	t.Helper()
	for _, d := range s.data {
		var c chunk
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			continue // an error event's payload
		}
		for _, ch := range c.Choices {
			text += ch.Delta.Content
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	return text, finish
}

func TestIntegrationOllamaCompletionsThroughGateway(t *testing.T) {
	t.Parallel()
	srv := ollamatest.Start(t, ollamatest.Options{})
	gw := startGateway(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("non-streaming", func(t *testing.T) {
		resp := post(ctx, t, gw+"/v1/chat/completions", chat(false, 16, nil))
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %s: %s\nollama log:\n%s", resp.Status, body, srv.Log())
		}
		var out struct {
			Model   string `json:"model"`
			Choices []struct {
				Message      struct{ Content string } `json:"message"`
				FinishReason string                   `json:"finish_reason"`
			} `json:"choices"`
			Usage struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("answer is not a chat completion: %v: %s", err, body)
		}
		if len(out.Choices) != 1 || out.Usage.CompletionTokens == 0 || out.Usage.PromptTokens == 0 {
			t.Fatalf("answer has no generated tokens: %s", body)
		}
		// Random weights seldom pick the end token: most answers stop at max_tokens.
		if f := out.Choices[0].FinishReason; f != "length" && f != "stop" {
			t.Errorf("finish_reason %q, want length or stop", f)
		}
		if out.Usage.CompletionTokens > 16 {
			t.Errorf("%d completion tokens for max_tokens 16", out.Usage.CompletionTokens)
		}
		t.Logf("%d prompt tokens, %d completion tokens: %q", out.Usage.PromptTokens, out.Usage.CompletionTokens, out.Choices[0].Message.Content)
	})

	t.Run("streaming", func(t *testing.T) {
		resp := post(ctx, t, gw+"/v1/chat/completions", chat(true, 24, nil))
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("status %s, type %q: %s", resp.Status, resp.Header.Get("Content-Type"), b)
		}
		s, err := readSSE(resp.Body, nil)
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		text, finish := s.content(t)
		if !s.done || finish == "" || len(s.events) != 0 {
			t.Errorf("stream ended done=%v finish_reason=%q events=%v, want [DONE], a finish_reason and no events", s.done, finish, s.events)
		}
		if text == "" || len(s.data) < 3 {
			t.Errorf("stream carried %d chunks and text %q, want several chunks of real tokens", len(s.data), text)
		}
	})
}
