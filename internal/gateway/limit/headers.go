package limit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// window is the period every quota is counted over: limits are per minute.
const quotaWindow = time.Minute

// WriteHeaders sets the IETF draft's rate-limit fields for a decision that
// applied a rule: RateLimit-Policy (the quota and its window),
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset, the seconds
// (rounded up) until the quota is whole again — never past the window. On a
// rejection RateLimit-Reset is the seconds until the request could be
// admitted, and Retry-After says the same number, so a client that honours
// either waits as long.
func WriteHeaders(h http.Header, d Decision) {
	if d.Limit <= 0 {
		return
	}
	limit := strconv.FormatInt(d.Limit, 10)
	h.Set("RateLimit-Policy", limit+";w="+strconv.Itoa(int(quotaWindow/time.Second)))
	h.Set("RateLimit-Limit", limit)
	h.Set("RateLimit-Remaining", strconv.FormatInt(max(d.Remaining, 0), 10))
	reset := min(ceilSeconds(d.Reset), int64(quotaWindow/time.Second))
	if !d.Allowed {
		reset = max(ceilSeconds(d.RetryAfter), 1)
		h.Set("Retry-After", strconv.FormatInt(reset, 10))
	}
	h.Set("RateLimit-Reset", strconv.FormatInt(reset, 10))
}

func ceilSeconds(d time.Duration) int64 {
	return int64((max(d, 0) + time.Second - 1) / time.Second)
}

// ErrorBody is the OpenAI-style JSON body of a 429 for a rejected decision.
func ErrorBody(d Decision) []byte {
	kind := d.Kind
	if kind == "" {
		kind = KindRequests
	}
	var body struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		} `json:"error"`
	}
	body.Error.Message = fmt.Sprintf("Rate limit reached for %s (limit %d). Please try again in %ds.",
		kind, d.Limit, max(ceilSeconds(d.RetryAfter), 1))
	body.Error.Type = kind
	body.Error.Code = "rate_limit_exceeded"
	b, _ := json.Marshal(body)
	return b
}

// WriteRejected answers a rejected decision: rate-limit headers, 429 and ErrorBody.
func WriteRejected(w http.ResponseWriter, d Decision) {
	WriteHeaders(w.Header(), d)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(ErrorBody(d))
}
