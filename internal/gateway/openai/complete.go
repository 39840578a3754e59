package openai

import (
	"bytes"

	"github.com/aideploy/aideploy/internal/gateway/jsonscan"
)

// Complete says whether the stream so far ended as a finished answer does:
// with "data: [DONE]" or a choice that has a finish_reason. A server whose
// generation died can still end its HTTP body cleanly (Ollama's /v1 sends a
// 200, an empty last chunk and no [DONE] when its runner crashes); by the
// transport alone that stream looks whole, and it would be cached and
// replayed as a short answer.
func (s *StreamWriter) Complete() bool { return s.Done || s.Finished }

var (
	doneData  = []byte("[DONE]")
	finishKey = []byte(`"finish_reason"`)
)

// IsDone says whether the data of an event is the [DONE] sentinel.
func IsDone(data []byte) bool { return bytes.Equal(bytes.TrimSpace(data), doneData) }

// HasFinishReason says whether a chunk sets a finish_reason: a string, not
// null (every chunk before the last has "finish_reason":null). A match
// cannot come from inside a string value: a quote there is escaped, so the
// bytes `"finish_reason"` followed by a colon are a key.
func HasFinishReason(data []byte) bool {
	for i := 0; ; {
		j := bytes.Index(data[i:], finishKey)
		if j < 0 {
			return false
		}
		i += j + len(finishKey)
		k := jsonscan.Space(data, i)
		if k >= len(data) || data[k] != ':' {
			continue
		}
		k = jsonscan.Space(data, k+1)
		if k+1 < len(data) && data[k] == '"' && data[k+1] != '"' {
			return true
		}
	}
}
