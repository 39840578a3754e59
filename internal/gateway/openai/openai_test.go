package openai

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    Request
		wantErr bool
	}{
		{"chat", `{"model":"m","stream":true,"max_tokens":20,"stream_options":{"include_usage":true}}`, Request{Model: "m", Stream: true, MaxTokens: 20, IncludeUsage: true}, false},
		{"completion tokens", `{"model":"m","max_completion_tokens":7}`, Request{Model: "m", MaxTokens: 7}, false},
		{"both token limits: the larger counts", `{"max_tokens":1,"max_completion_tokens":5000}`, Request{MaxTokens: 5000}, false},
		{"sampling fields", `{"n":2,"temperature":0.5,"seed":7}`, Request{N: 2, Temperature: 0.5, HasTemperature: true, HasSeed: true}, false},
		{"null is left out", `{"model":null,"temperature":null}`, Request{}, false},
		{"duplicate stream", `{"stream":false,"stream":true}`, Request{}, true},
		{"duplicate max_tokens", `{"max_tokens":1,"messages":[],"max_tokens":5000}`, Request{}, true},
		{"duplicate through an escape", `{"model":"a","mod\u0065l":"b"}`, Request{}, true},
		{"duplicate null", `{"seed":null,"seed":1}`, Request{}, true},
		{"duplicate include_usage", `{"stream_options":{"include_usage":false,"include_usage":true}}`, Request{}, true},
		{"duplicate temperature", `{"temperature":0,"temperature":1}`, Request{}, true},
		{"duplicate n", `{"n":1,"n":9}`, Request{}, true},
		{"duplicate stream_options", `{"stream_options":{},"stream_options":{"include_usage":true}}`, Request{}, true},
		{"duplicate max_completion_tokens", `{"max_completion_tokens":1,"max_completion_tokens":2}`, Request{}, true},
		{"nested duplicates are the model server's", `{"messages":[{"role":"user","role":"system"}],"metadata":{"model":"x"}}`, Request{}, false},
		{"fractional n", `{"n":1.5}`, Request{}, true},
		{"a key with a lone surrogate", `{"\ud800":1}`, Request{}, true},
		{"not json", `{"model":`, Request{}, true},
		{"wrong type", `{"stream":"yes"}`, Request{}, true},
		{"array", `[1]`, Request{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRequest([]byte(tt.body))
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRequestDuplicateKeyError(t *testing.T) {
	t.Parallel()
	_, err := ParseRequest([]byte(`{"stream":false,"stream":true}`))
	if !errors.Is(err, ErrDuplicateKey) || !strings.Contains(err.Error(), `"stream"`) {
		t.Fatalf("err = %v, want ErrDuplicateKey naming the field", err)
	}
}

func TestSampled(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		body string
		want bool
	}{
		{`{}`, true}, // the API's default temperature is 1
		{`{"temperature":0}`, false},
		{`{"temperature":0.7}`, true},
		{`{"temperature":0.7,"seed":1}`, false},
		{`{"temperature":0,"n":3}`, true},
		{`{"temperature":0,"n":1}`, false},
		{`{"temperature":null}`, true},
	} {
		r, err := ParseRequest([]byte(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Sampled(); got != tt.want {
			t.Errorf("Sampled(%s) = %v, want %v", tt.body, got, tt.want)
		}
	}
}

func TestUsageOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		want   Usage
		wantOK bool
	}{
		{`{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, Usage{3, 4, 7}, true},
		{`{"choices":[],"usage":null}`, Usage{}, false},
		{`{"choices":[]}`, Usage{}, false},
		{`[DONE]`, Usage{}, false},
		// Usage last, read from the end; and anywhere else, walked to.
		{`{"id":"x","choices":[{"message":{"content":"a \"usage\":{} b"}}],"usage" : {"prompt_tokens":2,"completion_tokens":16,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":1}} }` + "\n", Usage{2, 16, 18}, true},
		{`{"usage":{"prompt_tokens":1,"completion_tokens":1},"id":"x"}`, Usage{1, 1, 2}, true},
		// A nested usage last in the answer is not the answer's usage.
		{`{"usage":{"prompt_tokens":5,"completion_tokens":5},"meta":{"usage":{"prompt_tokens":9,"completion_tokens":9}}}`, Usage{5, 5, 10}, true},
		{`{"meta":{"usage":{"prompt_tokens":9,"completion_tokens":9}}}`, Usage{}, false},
		{`{"choices":[{"text":"usage"}],"x":"usage"}`, Usage{}, false},
	}
	for _, tt := range tests {
		got, ok := UsageOf([]byte(tt.in))
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("UsageOf(%s) = %+v,%v want %+v,%v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

// The usual answer, usage last, is read from its end; the walk is only for
// the rest.
func TestUsageOfReadsTheUsualAnswerFromItsEnd(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		`{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":2,"completion_tokens":16}}` + "\n": true,
		`{"usage":{"prompt_tokens":1},"id":"x"}`:                             false,
		`{"usage":{"prompt_tokens":1},"meta":{"usage":{"prompt_tokens":9}}}`: false,
		`{"choices":[],"usage":null}`:                                        false,
	} {
		b := []byte(in)
		if _, ok := trailingUsage(b, bytes.LastIndex(b, usageKey)); ok != want {
			t.Errorf("trailingUsage(%s) = %v, want %v", in, ok, want)
		}
	}
}

func TestIsBodyRoute(t *testing.T) {
	t.Parallel()
	if !IsBodyRoute(RouteChat) || !IsBodyRoute(RouteEmbeddings) || IsBodyRoute("/v1/models") || IsBodyRoute("/v1/responses") {
		t.Fatal("body routes wrong")
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	WriteError(rec, 400, "invalid_request_error", "bad_json", "body is not JSON")
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"type":"invalid_request_error"`) {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
}

func TestWithStreamUsageNeverAddsADuplicate(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"stream":true}`, `{"stream":true,"stream_opti\u006fns":{"include_usage":false}}`, `{"stream":true,"stream_options":{"include_\u0075sage":false}}`} {
		out, ok := WithStreamUsage([]byte(body))
		if !ok {
			continue // sent unchanged: nothing to check
		}
		if r, err := ParseRequest(out); err != nil || !r.IncludeUsage {
			t.Errorf("WithStreamUsage(%s) = %s: %v, include_usage %v", body, out, err, r.IncludeUsage)
		}
	}
}

func TestStreamComplete(t *testing.T) {
	t.Parallel()
	chunk := `data: {"choices":[{"index":0,"delta":{"content":"say \"finish_reason\": \"x\""},"finish_reason":null}]}` + "\n\n"
	for _, tt := range []struct {
		name, stream string
		want         bool
	}{
		{"done", chunk + "data: [DONE]\n\n", true},
		{"finish reason, no done", chunk + `data: {"choices":[{"index":0,"delta":{},"finish_reason" : "stop"}]}` + "\n\n", true},
		{"cut after an empty last chunk", chunk + `data: {"choices":[{"index":0,"delta":{}}]}` + "\n\n", false},
		{"only null finish reasons", chunk + chunk, false},
		{"empty finish reason", `data: {"choices":[{"finish_reason":""}]}` + "\n\n", false},
		{"done without its blank line", chunk + "data: [DONE]\n", false},
	} {
		var out bytes.Buffer
		w := StreamWriter{W: &out}
		for _, b := range []byte(tt.stream) { // byte by byte: the split must not matter
			if _, err := w.Write([]byte{b}); err != nil {
				t.Fatal(err)
			}
		}
		if got := w.Complete(); got != tt.want {
			t.Errorf("%s: Complete() = %v, want %v", tt.name, got, tt.want)
		}
	}
}
