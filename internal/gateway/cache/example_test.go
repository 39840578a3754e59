package cache_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/aideploy/aideploy/internal/gateway/cache"
)

// The HTTP layer keys a request, looks it up, and stores a 2xx answer on a miss.
func Example() {
	cfg := cache.Default()
	c := cache.New(cfg, nil, nil, nil) // L1 only; pass a Redis client for L2
	defer c.Close()
	ctx := context.Background()

	route := "/v1/chat/completions"
	policy := cfg.Route(route)
	tenant := "acme"
	if policy.Shared {
		tenant = ""
	}
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	key, err := cache.Key(tenant, http.MethodPost, route, "m", body)
	if err != nil {
		fmt.Println("400:", err)
		return
	}
	if _, _, _, ok := c.Get(ctx, key); !ok {
		fmt.Println("MISS")
		upstream := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r1"}}
		c.Set(ctx, key, cache.Entry{Status: 200, Header: cache.KeepHeaders(upstream), Body: []byte(`{"id":"x"}`)}, policy.TTL)
	}
	e, level, fresh, ok := c.Get(ctx, key)
	fmt.Println(ok, level, fresh, e.Status, e.Header, string(e.Body))
	// Output:
	// MISS
	// true L1 fresh 200 map[Content-Type:[application/json]] {"id":"x"}
}
