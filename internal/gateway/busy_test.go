package gateway

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// A model that refuses for want of capacity without saying when to come back
// (Ollama's 503 past OLLAMA_MAX_QUEUE while loading) gets the degraded
// answer's Retry-After; one that says when keeps its own.
func TestBusyUpstreamGetsARetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		own    string // the model's Retry-After
		want   string // the client's
	}{
		{"bare 503", http.StatusServiceUnavailable, "", "5"},
		{"bare 429", http.StatusTooManyRequests, "", "5"},
		{"503 with its own", http.StatusServiceUnavailable, "42", "42"},
		{"500 is no overload", http.StatusInternalServerError, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/health" {
					return
				}
				if tt.own != "" {
					w.Header().Set("Retry-After", tt.own)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(`{"error":"server busy, please try again.  maximum pending requests exceeded"}`))
			}))
			t.Cleanup(up.Close)
			cfg := testConfig(up.URL)
			_, gw := startGateway(t, cfg, false)
			resp, body := post(t, gw+"/v1/chat/completions", chatBody)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want the model's %d: %s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.want {
				t.Errorf("Retry-After %q, want %q", got, tt.want)
			}
		})
	}
	if got := strconv.Itoa(int(testConfig().Degraded.RetryAfter.D().Seconds())); got != "5" {
		t.Fatalf("the degraded answer's default Retry-After is %ss; the table above assumes 5", got)
	}
}
