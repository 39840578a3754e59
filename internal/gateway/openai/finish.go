package openai

import (
	"bytes"

	"github.com/buger/jsonparser"
)

// FinishReasonOf is the finish_reason of the first choice of an answer or a
// stream chunk, "" when it has none (or null).
func FinishReasonOf(data []byte) string {
	v, err := jsonparser.GetString(data, "choices", "[0]", "finish_reason")
	if err != nil {
		return ""
	}
	return v
}

// isContentChunk says whether a stream event's data is a chunk of the answer:
// neither [DONE] nor the usage-only chunk. Without usage, a stream's output
// tokens are counted as its content chunks (one token each, as servers send them).
// The closing chunk that only sets a finish_reason, with no text, is no token.
func isContentChunk(data []byte) bool {
	if len(data) == 0 || IsDone(data) || IsUsageChunk(data) {
		return false
	}
	return !HasFinishReason(data) || hasText(data, contentKey) || hasText(data, textKey)
}

var (
	contentKey = []byte(`"content":"`)
	textKey    = []byte(`"text":"`)
)

// hasText says whether data holds key (written without spaces) with a
// non-empty string value.
func hasText(data, key []byte) bool {
	i := bytes.Index(data, key)
	return i >= 0 && i+len(key) < len(data) && data[i+len(key)] != '"'
}
