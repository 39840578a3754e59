package openai

import (
	"io"
	"testing"
)

func TestFinishReasonAndChunksOfAStream(t *testing.T) {
	t.Parallel()
	stream := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" b\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n" +
		"data: [DONE]\n\n"
	// Fed in awkward pieces, as a network delivers it.
	w := StreamWriter{W: io.Discard}
	for i := 0; i < len(stream); i += 7 {
		if _, err := w.Write([]byte(stream[i:min(i+7, len(stream))])); err != nil {
			t.Fatal(err)
		}
	}
	if w.FinishReason != "length" || w.Chunks != 2 || !w.HasUsage || w.Usage.CompletionTokens != 2 {
		t.Fatalf("finish %q, chunks %d, usage %+v", w.FinishReason, w.Chunks, w.Usage)
	}
	// A last token sent with the finish_reason is a token.
	w = StreamWriter{W: io.Discard}
	_, _ = w.Write([]byte("data: {\"choices\":[{\"index\":0,\"text\":\"x\",\"finish_reason\":\"stop\"}]}\n\n"))
	if w.FinishReason != "stop" || w.Chunks != 1 {
		t.Fatalf("completions chunk: finish %q, chunks %d", w.FinishReason, w.Chunks)
	}
	for _, c := range []struct{ in, want string }{
		{`{"choices":[{"message":{"content":"hi"},"finish_reason":"tool_calls"}]}`, "tool_calls"},
		{`{"choices":[{"finish_reason":null}]}`, ""},
		{`{"choices":[]}`, ""},
		{`not json`, ""},
	} {
		if got := FinishReasonOf([]byte(c.in)); got != c.want {
			t.Errorf("FinishReasonOf(%s) = %q, want %q", c.in, got, c.want)
		}
	}
}
