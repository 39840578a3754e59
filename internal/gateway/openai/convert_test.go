package openai

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/gateway/sse"
)

const chatStream = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}

data: [DONE]

`

func TestStreamToJSONAndBack(t *testing.T) {
	t.Parallel()
	b, ok := StreamToJSON([]byte(chatStream))
	if !ok {
		t.Fatal("chat stream not converted")
	}
	var a struct {
		Object  string
		Choices []struct {
			Message      struct{ Role, Content string }
			FinishReason string `json:"finish_reason"`
		}
		Usage Usage
	}
	if err := json.Unmarshal(b, &a); err != nil || a.Object != "chat.completion" || len(a.Choices) != 1 ||
		a.Choices[0].Message.Content != "Hello" || a.Choices[0].FinishReason != "stop" || a.Usage.TotalTokens != 4 {
		t.Fatalf("got %s (%v)", b, err)
	}
	s, ok := JSONToStream(b)
	if !ok {
		t.Fatalf("answer not converted back: %s", b)
	}
	evs := sse.Parse(s)
	if len(evs) != 3 || string(evs[2].Data) != "[DONE]" || !strings.Contains(string(evs[0].Data), `"content":"Hello"`) {
		t.Fatalf("stream %q", s)
	}
	if u, ok := UsageOf(evs[1].Data); !ok || u.TotalTokens != 4 {
		t.Fatalf("usage chunk %s", evs[1].Data)
	}
	back, ok := StreamToJSON(s)
	if !ok || string(back) != string(b) {
		t.Fatalf("round trip differs:\n%s\n%s", back, b)
	}
}

func TestConvertRefusesOtherShapes(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`data: {"object":"list","data":[]}` + "\n\n", "event: error\ndata: {}\n\n", ""} {
		if _, ok := StreamToJSON([]byte(in)); ok {
			t.Errorf("StreamToJSON(%q) converted", in)
		}
	}
	if _, ok := JSONToStream([]byte(`{"object":"list","data":[]}`)); ok {
		t.Error("embeddings converted to a stream")
	}
}
