package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway/breaker"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/validate"
)

// On its default settings, in front of a model with two slots, a burst far
// above capacity gets fast 503s with Retry-After for the excess, a bounded
// number of requests reach the model's queue, and none waits past the queue
// timeout.
func TestDefaultsShedABurstFast(t *testing.T) {
	t.Parallel()
	const slots, burst = 2, 80
	fm, url := fake(t, func(o *fakemodel.Options) {
		o.Slots = slots
		o.FirstTokenDelay = 300 * time.Millisecond
	})
	cfg := Default()
	cfg.Pools = []upstream.PoolConfig{{Name: "default", Targets: []upstream.TargetConfig{{URL: url}}}}
	cfg.SetDefaults()
	errs := validate.New()
	cfg.Validate(errs)
	if l := errs.List(); len(l) > 0 {
		t.Fatalf("the default config with one target is invalid: %v", l)
	}
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	bcfg := cfg.Breaker
	srv, err := NewServer(ctx, cfg, Deps{Breakers: func(target string) upstream.Breaker { return breaker.New(target, bcfg, nil) }})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(srv)
	t.Cleanup(gw.Close)

	type answer struct {
		status     int
		retryAfter string
		took       time.Duration
		err        error
	}
	answers := make(chan answer, burst)
	start := make(chan struct{})
	var ready sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for i := range burst {
		ready.Add(1)
		go func() {
			// Distinct prompts: neither the cache nor request sharing may absorb the burst.
			body := fmt.Sprintf(`{"model":"fake-model","messages":[{"role":"user","content":"burst %d"}],"max_tokens":2}`, i)
			req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			ready.Done()
			<-start
			t0 := time.Now()
			resp, err := client.Do(req)
			a := answer{err: err}
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
			}
			a.took = time.Since(t0)
			answers <- a
		}()
	}
	ready.Wait()
	// Watch both queues while the burst lasts: the gateway's and the model's.
	pool := srv.cur.Load().def
	var maxGW, maxModel int64
	watching := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			maxGW, maxModel = max(maxGW, pool.Queued()), max(maxModel, fm.Stats().Queued)
			select {
			case <-watching:
				return
			case <-tick.C:
			}
		}
	}()
	close(start)
	ok, shed := 0, 0
	for range burst {
		a := <-answers
		switch {
		case a.err != nil:
			t.Errorf("a request got no answer: %v", a.err)
		case a.status == http.StatusOK:
			ok++
		case a.status == http.StatusServiceUnavailable:
			shed++
			if a.retryAfter == "" {
				t.Errorf("a 503 without Retry-After")
			}
			// The queue timeout (1s) bounds the wait; a loaded machine may add a little.
			if lim := upstream.DefaultQueueTimeout.D() + 2*time.Second; a.took > lim {
				t.Errorf("a 503 took %s, want at most the queue timeout and slack, %s", a.took, lim)
			}
		default:
			t.Errorf("status %d, want 200 or a fast 503", a.status)
		}
	}
	close(watching)
	<-watched
	// The gateway's queue is a quarter of the limit (8 at first, less once
	// the limit learns the 2 slots); the model queues what the limit lets past
	// its slots, 6 at most. Without a limit the model would queue ~78.
	if maxGW > 4 || maxModel > 8 {
		t.Errorf("queues peaked at %d in the gateway and %d in the model; want at most 4 and 8", maxGW, maxModel)
	}
	// The model works on 2 at a time for 300 ms; in the ~1 s a burst lasts
	// with its queue, it can answer only a few: most of the 80 must be shed.
	if shed < burst/2 || ok == 0 {
		t.Errorf("%d answered, %d shed with 503; want some answered and most of the %d shed", ok, shed, burst)
	}
	// Everything that reached the model was answered: the gateway did not pile
	// requests into the model's queue past its limit and leave them there.
	if got := fm.Stats().Requests; got != int64(ok) {
		t.Errorf("the model got %d requests for %d answers", got, ok)
	}
	if q := pool.Queued(); q != 0 {
		t.Errorf("%d requests still queued after every answer", q)
	}
}
