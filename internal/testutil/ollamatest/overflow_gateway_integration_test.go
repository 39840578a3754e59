package ollamatest_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/testutil/ollamatest"
)

// TestIntegrationOllamaOverflowWhileLoadingThroughGateway: Ollama refuses
// requests past its queue while loading with a bare 503; the gateway's client
// must never get a 503 without a Retry-After telling it when to come back.
func TestIntegrationOllamaOverflowWhileLoadingThroughGateway(t *testing.T) {
	t.Parallel()
	srv := ollamatest.Start(t, ollamatest.Options{NumParallel: 1, MaxQueue: 1})
	gw := startGateway(t, srv.URL)
	const n = 8
	type answer struct {
		status     int
		retryAfter string
		body       string
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// Distinct prompts: the cache must not fold them into one upstream call.
			resp, err := send(ctx, gw+"/v1/chat/completions", chat(false, 4, map[string]any{"seed": i}))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers[i] = answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b)}
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, a := range answers {
		switch {
		case a.status == http.StatusOK:
			ok++
		case a.status == http.StatusServiceUnavailable && a.retryAfter == "":
			t.Errorf("request %d: 503 without Retry-After reached the client: %s", i, a.body)
		case a.status != http.StatusServiceUnavailable && a.status != http.StatusTooManyRequests:
			t.Errorf("request %d: %d %s", i, a.status, a.body)
		}
	}
	if ok == 0 {
		t.Errorf("no request of %d was answered while the model loaded: %+v", n, answers)
	}
	t.Logf("through the gateway while loading: %d of %d answered: %+v", ok, n, answers)
}
