package fakemodel

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
)

// genRequest is the part of a chat or completions request the fake model reads.
type genRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	MaxTokens           int             `json:"max_tokens"`
	MaxCompletionTokens int             `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	StreamOptions       struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// usage is the OpenAI token usage object.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func newUsage(prompt, completion int) usage {
	return usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

// plan is what one generation will produce: its tokens are the prompt's words, cycled.
type plan struct {
	includeUsage bool // a stream ends with a usage chunk
	model        string
	promptTokens int
	tokens       []string
	finish       string
}

func (h *Handler) plan(req genRequest, text []string) plan {
	var words []string
	for _, t := range text {
		words = append(words, strings.Fields(t)...)
	}
	p := plan{model: req.Model, promptTokens: len(words), finish: "stop", includeUsage: req.StreamOptions.IncludeUsage}
	if p.model == "" {
		p.model = h.opts.Model
	}
	n := h.opts.Tokens
	limit := req.MaxTokens
	if req.MaxCompletionTokens > 0 {
		limit = req.MaxCompletionTokens
	}
	if limit > 0 && limit < n {
		n, p.finish = limit, "length"
	}
	if h.opts.FinishReason != "" {
		p.finish = h.opts.FinishReason
	}
	if len(words) == 0 {
		words = []string{"fake"}
	}
	for i := range n {
		tok := words[i%len(words)]
		if i > 0 {
			tok = " " + tok
		}
		p.tokens = append(p.tokens, tok)
	}
	return p
}

// run waits out the delays and calls emit for each token; it stops when ctx is done.
func (h *Handler) run(ctx context.Context, p plan, emit func(tok string) error) error {
	for i, tok := range p.tokens {
		d := h.opts.TokenDelay
		if i == 0 {
			d = h.opts.FirstTokenDelay
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
		if err := emit(tok); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// contentText reads a message content that is a string or an array of {type, text} parts.
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text + " ")
	}
	return b.String()
}

// stringsOf reads a JSON string or array of strings.
func stringsOf(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("must be a string or an array of strings")
	}
	return list, nil
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	// read to EOF, not just one JSON value: only then does the server watch for a client
	// that goes away and cancel the request context
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<20))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("reading request body: %v", err), "invalid_request_error")
		return false
	}
	return true
}

func (h *Handler) chat(w http.ResponseWriter, r *http.Request) error {
	var req genRequest
	if !decode(w, r, &req) {
		return nil
	}
	var text []string
	for _, m := range req.Messages {
		text = append(text, contentText(m.Content))
	}
	p := h.plan(req, text)
	id := fmt.Sprintf("chatcmpl-fake-%d", h.seq.Load())
	if req.Stream {
		first := true
		return h.stream(w, r, p, func(tok string) any {
			delta := map[string]any{"content": tok}
			if first {
				delta["role"], first = "assistant", false
			}
			return h.envelope(id, "chat.completion.chunk", p.model, []any{
				map[string]any{"index": 0, "delta": delta, "finish_reason": nil},
			})
		}, func() any {
			return h.envelope(id, "chat.completion.chunk", p.model, []any{
				map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": p.finish},
			})
		}, "chat.completion.chunk", id)
	}
	var out strings.Builder
	if err := h.run(r.Context(), p, func(tok string) error { out.WriteString(tok); return nil }); err != nil {
		return err
	}
	body := h.envelope(id, "chat.completion", p.model, []any{map[string]any{
		"index":         0,
		"message":       map[string]any{"role": "assistant", "content": out.String()},
		"finish_reason": p.finish,
	}})
	body["usage"] = newUsage(p.promptTokens, len(p.tokens))
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (h *Handler) completions(w http.ResponseWriter, r *http.Request) error {
	var req genRequest
	if !decode(w, r, &req) {
		return nil
	}
	text, err := stringsOf(req.Prompt)
	if err != nil {
		writeError(w, http.StatusBadRequest, "prompt "+err.Error(), "invalid_request_error")
		return nil
	}
	p := h.plan(req, text)
	id := fmt.Sprintf("cmpl-fake-%d", h.seq.Load())
	if req.Stream {
		return h.stream(w, r, p, func(tok string) any {
			return h.envelope(id, "text_completion", p.model, []any{
				map[string]any{"index": 0, "text": tok, "finish_reason": nil},
			})
		}, func() any {
			return h.envelope(id, "text_completion", p.model, []any{
				map[string]any{"index": 0, "text": "", "finish_reason": p.finish},
			})
		}, "text_completion", id)
	}
	var out strings.Builder
	if err := h.run(r.Context(), p, func(tok string) error { out.WriteString(tok); return nil }); err != nil {
		return err
	}
	body := h.envelope(id, "text_completion", p.model, []any{map[string]any{
		"index": 0, "text": out.String(), "finish_reason": p.finish,
	}})
	body["usage"] = newUsage(p.promptTokens, len(p.tokens))
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (h *Handler) envelope(id, object, model string, choices []any) map[string]any {
	return map[string]any{
		"id": id, "object": object, "created": time.Now().Unix(), "model": model,
		"system_fingerprint": h.opts.Version, "choices": choices,
	}
}

// stream writes one SSE event per token, flushed at once, then a finish chunk, a usage chunk
// when the request asked for one (stream_options.include_usage, as OpenAI and vLLM do) and [DONE].
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, p plan,
	chunk func(tok string) any, finish func() any, object, id string) error {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding chunk: %w", err)
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return fmt.Errorf("writing chunk: %w", err)
		}
		return rc.Flush()
	}
	_ = rc.Flush() // the client sees the headers before the first token
	if err := h.run(r.Context(), p, func(tok string) error { return send(chunk(tok)) }); err != nil {
		return err
	}
	last := h.envelope(id, object, p.model, []any{})
	last["usage"] = newUsage(p.promptTokens, len(p.tokens))
	if err := send(finish()); err != nil {
		return err
	}
	if p.includeUsage {
		if err := send(last); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprint(w, "data: [DONE]\n\n"); err != nil {
		return fmt.Errorf("writing done: %w", err)
	}
	return rc.Flush()
}

func (h *Handler) embeddings(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if !decode(w, r, &req) {
		return nil
	}
	inputs, err := stringsOf(req.Input)
	if err != nil || len(inputs) == 0 {
		writeError(w, http.StatusBadRequest, "input must be a non-empty string or array of strings", "invalid_request_error")
		return nil
	}
	if req.Model == "" {
		req.Model = h.opts.Model
	}
	data := make([]any, len(inputs))
	tokens := 0
	for i, in := range inputs {
		tokens += len(strings.Fields(in))
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": embed(in, h.opts.EmbeddingDim)}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list", "model": req.Model, "data": data, "system_fingerprint": h.opts.Version,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens},
	})
	return nil
}

// embed returns a deterministic unit vector derived from the text.
func embed(text string, dim int) []float64 {
	v := make([]float64, dim)
	var norm float64
	for i := range v {
		sum := sha256.Sum256(fmt.Appendf(nil, "%d:%s", i, text))
		v[i] = float64(binary.BigEndian.Uint32(sum[:4]))/math.MaxUint32*2 - 1
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	for i := range v {
		v[i] /= norm
	}
	return v
}
