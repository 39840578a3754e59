package openai

import (
	"bytes"
	"encoding/json"
	"sort"

	"github.com/aideploy/aideploy/internal/gateway/sse"
)

// StreamToJSON folds a recorded chat or completions stream into the answer a
// client that did not ask for a stream would have received. ok is false for
// anything else (embeddings, unknown shapes, an error event).
func StreamToJSON(stream []byte) (body []byte, ok bool) {
	type choice struct {
		text   bytes.Buffer
		role   string
		finish any
	}
	var (
		head    map[string]any
		usage   any
		chat    bool
		choices = map[int]*choice{}
		bad     bool
	)
	for _, ev := range sse.Parse(stream) {
		if ev.Name == "error" {
			bad = true
		}
		if bytes.Equal(ev.Data, []byte("[DONE]")) {
			continue
		}
		var c struct {
			ID                string          `json:"id"`
			Object            string          `json:"object"`
			Created           json.RawMessage `json:"created"`
			Model             string          `json:"model"`
			SystemFingerprint string          `json:"system_fingerprint,omitempty"`
			Choices           []struct {
				Index int `json:"index"`
				Delta *struct {
					Role    string `json:"role"`
					Content string `json:"content"`
				} `json:"delta"`
				Text         *string `json:"text"`
				FinishReason any     `json:"finish_reason"`
			} `json:"choices"`
			Usage any `json:"usage"`
		}
		if json.Unmarshal(ev.Data, &c) != nil {
			return nil, false
		}
		if head == nil {
			chat = c.Object == "chat.completion.chunk"
			if !chat && c.Object != "text_completion" {
				return nil, false
			}
			head = map[string]any{"id": c.ID, "created": c.Created, "model": c.Model}
			if c.SystemFingerprint != "" {
				head["system_fingerprint"] = c.SystemFingerprint
			}
		}
		if c.Usage != nil {
			usage = c.Usage
		}
		for _, ch := range c.Choices {
			acc := choices[ch.Index]
			if acc == nil {
				acc = &choice{role: "assistant"}
				choices[ch.Index] = acc
			}
			if ch.Delta != nil {
				acc.text.WriteString(ch.Delta.Content)
				if ch.Delta.Role != "" {
					acc.role = ch.Delta.Role
				}
			}
			if ch.Text != nil {
				acc.text.WriteString(*ch.Text)
			}
			if ch.FinishReason != nil {
				acc.finish = ch.FinishReason
			}
		}
	}
	if head == nil || bad {
		return nil, false
	}
	idx := make([]int, 0, len(choices))
	for i := range choices {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	out := make([]any, 0, len(idx))
	for _, i := range idx {
		c := choices[i]
		if chat {
			out = append(out, map[string]any{"index": i, "message": map[string]any{"role": c.role, "content": c.text.String()}, "finish_reason": c.finish})
		} else {
			out = append(out, map[string]any{"index": i, "text": c.text.String(), "finish_reason": c.finish})
		}
	}
	head["object"] = "text_completion"
	if chat {
		head["object"] = "chat.completion"
	}
	head["choices"] = out
	if usage != nil {
		head["usage"] = usage
	}
	b, err := json.Marshal(head)
	return b, err == nil
}

// JSONToStream turns a chat or completions answer into the stream a streaming
// client would have received: one chunk per choice, a usage chunk, [DONE].
func JSONToStream(body []byte) (stream []byte, ok bool) {
	var a struct {
		ID                string          `json:"id"`
		Object            string          `json:"object"`
		Created           json.RawMessage `json:"created"`
		Model             string          `json:"model"`
		SystemFingerprint string          `json:"system_fingerprint,omitempty"`
		Choices           []struct {
			Index   int `json:"index"`
			Message *struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"message"`
			Text         *string `json:"text"`
			FinishReason any     `json:"finish_reason"`
		} `json:"choices"`
		Usage any `json:"usage"`
	}
	if json.Unmarshal(body, &a) != nil {
		return nil, false
	}
	chat := a.Object == "chat.completion"
	if !chat && a.Object != "text_completion" {
		return nil, false
	}
	object := "text_completion"
	if chat {
		object = "chat.completion.chunk"
	}
	chunk := func(choices []any, usage any) map[string]any {
		m := map[string]any{"id": a.ID, "object": object, "created": a.Created, "model": a.Model, "choices": choices}
		if a.SystemFingerprint != "" {
			m["system_fingerprint"] = a.SystemFingerprint
		}
		if usage != nil {
			m["usage"] = usage
		}
		return m
	}
	var buf bytes.Buffer
	write := func(v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		return sse.WriteEvent(&buf, "", b) == nil
	}
	for _, c := range a.Choices {
		var ch map[string]any
		switch {
		case chat && c.Message != nil:
			ch = map[string]any{"index": c.Index, "delta": map[string]any{"role": c.Message.Role, "content": c.Message.Content}, "finish_reason": c.FinishReason}
		case !chat && c.Text != nil:
			ch = map[string]any{"index": c.Index, "text": *c.Text, "finish_reason": c.FinishReason}
		default:
			return nil, false
		}
		if !write(chunk([]any{ch}, nil)) {
			return nil, false
		}
	}
	if a.Usage != nil && !write(chunk([]any{}, a.Usage)) {
		return nil, false
	}
	buf.WriteString("data: [DONE]\n\n")
	return buf.Bytes(), true
}
