package openai

import (
	"bytes"
	"io"

	"github.com/aideploy/aideploy/internal/gateway/sse"
	"github.com/buger/jsonparser"
)

// WithStreamUsage returns a stream request body that asks for token usage at
// the end of the stream (stream_options.include_usage: true), the only way an
// OpenAI-compatible server reports a stream's usage. ok is false when the body
// cannot be changed; send it as it is then.
func WithStreamUsage(body []byte) ([]byte, bool) {
	out, err := jsonparser.Set(bytes.Clone(body), []byte("true"), "stream_options", "include_usage")
	if err != nil {
		return body, false
	}
	// jsonparser finds keys as written, a decoder after unescaping: a key
	// spelt with escapes would get a second member added. Read the result as
	// the model server will, so that what is sent is what was accounted.
	if r, err := ParseRequest(out); err != nil || !r.IncludeUsage {
		return body, false
	}
	return out, true
}

// IsUsageChunk says whether the data of a stream event is the usage-only
// chunk that include_usage adds: an empty choices array and a usage object.
func IsUsageChunk(data []byte) bool {
	if !bytes.Contains(data, usageKey) {
		return false
	}
	choices, ct, _, err := jsonparser.Get(data, "choices")
	if err != nil || ct != jsonparser.Array || len(bytes.TrimSpace(choices)) != 2 {
		return false // "[]" only
	}
	_, ut, _, err := jsonparser.Get(data, "usage")
	return err == nil && ut == jsonparser.Object
}

// DropUsageChunks returns a recorded stream without its usage-only chunks,
// for a client that did not ask for them.
func DropUsageChunks(stream []byte) []byte {
	if !bytes.Contains(stream, usageKey) {
		return stream
	}
	var out bytes.Buffer
	out.Grow(len(stream))
	w := StreamWriter{W: &out, DropUsage: true}
	_, _ = w.Write(stream)
	return out.Bytes()
}

// StreamWriter passes an SSE stream to W as its bytes arrive and notes the
// token usage it carries. With DropUsage it re-sends the stream event by
// event without the usage-only chunk, which the gateway asked for on behalf
// of a client that did not.
type StreamWriter struct {
	W         io.Writer
	DropUsage bool

	Usage    Usage // the last usage seen, valid when HasUsage
	HasUsage bool
	// Done and Finished say the stream sent "data: [DONE]" and a choice
	// with a finish_reason: see Complete.
	Done, Finished bool
	// FinishReason is the last finish_reason the stream set; Chunks counts
	// its content chunks, the output tokens of a stream without usage.
	FinishReason string
	Chunks       int

	sc  sse.Scanner
	err error
}

// Write feeds p to the stream; an error is W's, and sticks.
func (s *StreamWriter) Write(p []byte) (int, error) {
	s.sc.Feed(p, func(e sse.Event) {
		if u, ok := UsageOf(e.Data); ok {
			s.Usage, s.HasUsage = u, true
		}
		s.Done = s.Done || IsDone(e.Data)
		if HasFinishReason(e.Data) {
			s.Finished = true
			if r := FinishReasonOf(e.Data); r != "" {
				s.FinishReason = r
			}
		}
		if isContentChunk(e.Data) {
			s.Chunks++
		}
		if s.DropUsage && s.err == nil && !IsUsageChunk(e.Data) {
			s.err = sse.WriteFullEvent(s.W, e)
		}
	})
	if !s.DropUsage && s.err == nil {
		_, s.err = s.W.Write(p)
	}
	if s.err != nil {
		return 0, s.err
	}
	return len(p), nil
}
