package openai

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/buger/jsonparser"

	"github.com/aideploy/aideploy/internal/gateway/jsonscan"
)

// Route templates of the OpenAI-compatible API; Other is the metric label of
// requests the gateway refuses.
const (
	RouteChat        = "/v1/chat/completions"
	RouteCompletions = "/v1/completions"
	RouteEmbeddings  = "/v1/embeddings"
	RouteOther       = "other"
)

// IsBodyRoute says whether the gateway reads the request body of a route
// (model, stream, token limits): the three routes it caches and accounts.
func IsBodyRoute(route string) bool {
	switch route {
	case RouteChat, RouteCompletions, RouteEmbeddings:
		return true
	}
	return false
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
	i := bytes.LastIndex(b, usageKey)
	if i < 0 {
		return Usage{}, false // most chunks of a stream: one scan and done
	}
	v, ok := trailingUsage(b, i)
	if !ok {
		var vt jsonparser.ValueType
		var err error
		v, vt, _, err = jsonparser.Get(b, "usage")
		if err != nil || vt != jsonparser.Object {
			return Usage{}, false
		}
	}
	var u Usage
	jsonparser.EachKey(v, func(i int, n []byte, vt jsonparser.ValueType, err error) {
		if err != nil || vt != jsonparser.Number {
			return
		}
		x, _ := strconv.ParseInt(string(n), 10, 64)
		switch i {
		case 0:
			u.PromptTokens = x
		case 1:
			u.CompletionTokens = x
		case 2:
			u.TotalTokens = x
		}
	}, usagePaths...)
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u, true
}

var usagePaths = [][]string{{"prompt_tokens"}, {"completion_tokens"}, {"total_tokens"}}

// trailingUsage takes the usage object at b[i:] (the last "usage" in b)
// when it is where OpenAI-compatible servers put it, the last member of the
// top-level object: then only the root's closing brace follows its value, as
// a nested object would need more closers. A key cannot hide in a string:
// quotes there are escaped. ok is false otherwise; the caller then walks the
// object.
func trailingUsage(b []byte, i int) ([]byte, bool) {
	i = jsonscan.Space(b, i+len(usageKey))
	if i >= len(b) || b[i] != ':' {
		return nil, false
	}
	v, vt, end, err := jsonparser.Get(b[i+1:])
	if err != nil || vt != jsonparser.Object {
		return nil, false
	}
	i = jsonscan.Space(b, i+1+end)
	if i >= len(b) || b[i] != '}' {
		return nil, false
	}
	return v, jsonscan.Space(b, i+1) == len(b)
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
