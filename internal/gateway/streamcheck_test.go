package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// crashingStream is a model server whose streams end as Ollama's /v1 ends
// one whose runner crashed: 200, a few tokens, an empty last chunk, a clean
// end of the body, and no [DONE]. With finish, it ends with a finish_reason
// instead (still no [DONE]), which is a whole answer.
func crashingStream(t *testing.T, finish bool) (string, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" {
			return
		}
		calls.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		for _, tok := range []string{"Hel", "lo"} {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", tok)
			w.(http.Flusher).Flush()
		}
		last := `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{}}]}`
		if finish {
			last = `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`
		}
		fmt.Fprintf(w, "data: %s\n\n", last)
	}))
	t.Cleanup(s.Close)
	return s.URL, &calls
}

func TestIntegrationStreamWithoutAnEndIsCut(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		finish    bool
		wantError bool
		wantCalls int64
	}{
		{"crashed runner", false, true, 2},
		{"finish_reason without [DONE]", true, false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up, calls := crashingStream(t, tt.finish)
			cfg := testConfig(up)
			gw := runGateway(t, cfg, Options{})
			for i := range 2 {
				resp, body := post(t, gw.url+"/v1/chat/completions", streamBody)
				hasErr := strings.Contains(body, "event: error")
				if resp.StatusCode != 200 || hasErr != tt.wantError || !strings.Contains(body, `"Hel"`) {
					t.Fatalf("request %d: %d, error event %v (want %v): %q", i, resp.StatusCode, hasErr, tt.wantError, body)
				}
				if tt.wantError && !strings.HasSuffix(strings.TrimSpace(body), "}") {
					t.Fatalf("request %d: the error event is not last: %q", i, body)
				}
			}
			if n := calls.Load(); n != tt.wantCalls {
				t.Fatalf("the model was called %d times, want %d (a cut stream must not be cached)", n, tt.wantCalls)
			}
		})
	}
}
