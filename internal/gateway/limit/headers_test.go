package limit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestWriteHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		d    Decision
		want map[string]string // "" means absent
	}{
		{"allowed", Decision{Allowed: true, Limit: 100, Remaining: 42, Reset: 1500 * time.Millisecond},
			map[string]string{"RateLimit-Limit": "100", "RateLimit-Remaining": "42", "RateLimit-Reset": "2", "Retry-After": ""}},
		{"rejected rounds up, reset agrees with Retry-After", Decision{Limit: 100, Reset: 59 * time.Second, RetryAfter: 2001 * time.Millisecond},
			map[string]string{"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "3", "Retry-After": "3", "RateLimit-Policy": "100;w=60"}},
		{"reset never past the window", Decision{Allowed: true, Limit: 1000, Remaining: 0, Reset: 108 * time.Second},
			map[string]string{"RateLimit-Reset": "60", "Retry-After": ""}},
		{"a token debt longer than the window is said as it is", Decision{Limit: 1000, Reset: 108 * time.Second, RetryAfter: 68 * time.Second},
			map[string]string{"RateLimit-Reset": "68", "Retry-After": "68"}},
		{"rejected under a second", Decision{Limit: 5, RetryAfter: time.Millisecond},
			map[string]string{"Retry-After": "1"}},
		{"no rule", Decision{Allowed: true},
			map[string]string{"RateLimit-Limit": "", "RateLimit-Remaining": "", "RateLimit-Reset": "", "Retry-After": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			WriteHeaders(h, tt.d)
			for k, want := range tt.want {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestWriteRejected(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	WriteRejected(w, Decision{Limit: 1000, RetryAfter: 12 * time.Second, Kind: KindTokens})
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "12" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %v", w.Code, w.Header())
	}
	var body struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", w.Body, err)
	}
	if body.Error.Type != "tokens" || body.Error.Code != "rate_limit_exceeded" || body.Error.Message == "" {
		t.Errorf("error body = %+v, want an OpenAI-style rate_limit_exceeded for tokens", body.Error)
	}
}
