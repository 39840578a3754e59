package limit_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/limit"
	"github.com/aideploy/aideploy/internal/units"
)

// The HTTP layer checks the request limit, then reserves max_tokens, calls the model and
// settles the real usage (for a stream, after its last chunk).
func Example() {
	cfg := limit.Default()
	cfg.Enabled = true
	cfg.Default = limit.Rule{Algorithm: limit.SlidingWindow, Requests: 2, Window: units.Duration(time.Minute), TokensPerMinute: 1000}
	l := limit.New(cfg, nil, nil, nil) // backend local; pass a Redis client with backend redis
	defer l.Close()
	ctx := context.Background()

	for i := range 3 {
		w := httptest.NewRecorder()
		d := l.AllowRequest(ctx, "acme", "/v1/chat/completions")
		if !d.Allowed {
			limit.WriteRejected(w, d)
			fmt.Println(i, w.Code, "Retry-After set:", w.Header().Get("Retry-After") != "")
			continue
		}
		limit.WriteHeaders(w.Header(), d)
		res, td := l.Reserve(ctx, "acme", "/v1/chat/completions", 600)
		fmt.Println(i, "allowed; remaining requests", w.Header().Get("RateLimit-Remaining"), "tokens allowed:", td.Allowed)
		l.Settle(ctx, res, 120) // the usage the answer reported
	}
	// Output:
	// 0 allowed; remaining requests 1 tokens allowed: true
	// 1 allowed; remaining requests 0 tokens allowed: true
	// 2 429 Retry-After set: true
}
