package openai

import (
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
	}
	for _, tt := range tests {
		got, ok := UsageOf([]byte(tt.in))
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("UsageOf(%s) = %+v,%v want %+v,%v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestRouteOfIsBounded(t *testing.T) {
	t.Parallel()
	if RouteOf("/v1/chat/completions") != RouteChat || RouteOf("/v1/anything/123") != RouteOther {
		t.Fatal("route templates wrong")
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
