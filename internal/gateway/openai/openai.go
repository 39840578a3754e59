package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Route templates of the OpenAI-compatible API; Other is everything else.
const (
	RouteChat        = "/v1/chat/completions"
	RouteCompletions = "/v1/completions"
	RouteEmbeddings  = "/v1/embeddings"
	RouteOther       = "other"
)

// RouteOf returns the route template of a path: one of the known routes or RouteOther.
// It keeps metric labels bounded whatever paths clients send.
func RouteOf(path string) string {
	switch path {
	case RouteChat, RouteCompletions, RouteEmbeddings:
		return path
	}
	return RouteOther
}

// Request is what the gateway needs to know about an OpenAI request body.
type Request struct {
	Model     string
	Stream    bool
	MaxTokens int64
	// IncludeUsage says whether the client asked for usage in the stream itself.
	IncludeUsage bool
}

type wireRequest struct {
	Model               string `json:"model"`
	Stream              bool   `json:"stream"`
	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// ErrMalformed marks a body that is not a JSON object with the expected field types.
var ErrMalformed = errors.New("malformed request body")

// ParseRequest reads the fields the gateway routes, limits and caches by.
func ParseRequest(body []byte) (Request, error) {
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	r := Request{Model: w.Model, Stream: w.Stream}
	switch {
	case w.MaxTokens != nil:
		r.MaxTokens = *w.MaxTokens
	case w.MaxCompletionTokens != nil:
		r.MaxTokens = *w.MaxCompletionTokens
	}
	if w.StreamOptions != nil {
		r.IncludeUsage = w.StreamOptions.IncludeUsage
	}
	return r, nil
}

// Usage is token usage as the OpenAI API reports it.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

var usageKey = []byte(`"usage"`)

// UsageOf reads usage from a JSON response or one stream chunk; ok is false when
// the object has no usage (most chunks of a stream).
func UsageOf(b []byte) (Usage, bool) {
	if !bytes.Contains(b, usageKey) {
		return Usage{}, false
	}
	var w struct {
		Usage *Usage `json:"usage"`
	}
	if json.Unmarshal(b, &w) != nil || w.Usage == nil {
		return Usage{}, false
	}
	if w.Usage.TotalTokens == 0 {
		w.Usage.TotalTokens = w.Usage.PromptTokens + w.Usage.CompletionTokens
	}
	return *w.Usage, true
}

// ErrorBody is an OpenAI-style error object.
func ErrorBody(typ, code, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code, "param": nil}})
	return b
}

// WriteError answers with an OpenAI-style error.
func WriteError(w http.ResponseWriter, status int, typ, code, msg string) {
	body := ErrorBody(typ, code, msg)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
