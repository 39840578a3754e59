package breaker_test

import (
	"errors"
	"fmt"

	"github.com/aideploy/aideploy/internal/gateway/breaker"
)

// The HTTP layer asks before each upstream call and reports how it went.
func Example() {
	b := breaker.New("http://10.0.0.7:8000", breaker.Default(), nil)
	for range 6 {
		done, err := b.Allow()
		if errors.Is(err, breaker.ErrOpen) {
			fmt.Println("open: serve stale or a degraded 503; retry in about", b.RetryAfter().Round(10e9))
			continue
		}
		done(false) // a 5xx, a timeout or a connection error
	}
	fmt.Println(b.State())
	// Output:
	// open: serve stale or a degraded 503; retry in about 30s
	// open
}
