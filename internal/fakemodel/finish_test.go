package fakemodel

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The finish-reason knob makes a version that stops at "length" whatever its
// tokens, in plain answers and in streams.
func TestFinishReasonKnob(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.FinishReason = "length"
	srv, _ := newServer(t, o)
	_, got := do(t, context.Background(), http.MethodPost, srv.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"a b"}]}`)
	choice := got["choices"].([]any)[0].(map[string]any)
	if choice["finish_reason"] != "length" {
		t.Fatalf("plain answer: %v", choice)
	}
	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":"a b"}],"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(b), `"finish_reason":"length"`) || strings.Contains(string(b), `"finish_reason":"stop"`) {
		t.Fatalf("stream: %v\n%s", err, b)
	}
	if _, err := ParseFlags([]string{"-finish-reason", "content_filter"}, func(string) string { return "" }, io.Discard); err != nil {
		t.Fatal(err)
	}
	if o, err := OptionsFromEnv(func(k string) string { return map[string]string{"FAKEMODEL_FINISH_REASON": "length"}[k] }); err != nil || o.FinishReason != "length" {
		t.Fatalf("FAKEMODEL_FINISH_REASON: %+v %v", o, err)
	}
}
