package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/breaker"
	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

// The defaults are the protection: an adaptive limit, a queue sized to it,
// one-second health checks and a response-header timeout that is not minutes.
func TestDefaultsProtect(t *testing.T) {
	t.Parallel()
	var cfg PoolConfig
	cfg.Targets = []TargetConfig{{URL: "http://127.0.0.1:1"}, {URL: "http://127.0.0.1:2"}}
	cfg.SetDefaults()
	errs := validate.New()
	cfg.Validate(errs)
	if l := errs.List(); len(l) > 0 {
		t.Fatalf("the defaults do not validate: %v", l)
	}
	if cfg.MaxInflight != 0 || cfg.Queue.Size != 0 || cfg.Queue.Timeout != DefaultQueueTimeout || DefaultQueueTimeout > units.Duration(time.Second) {
		t.Errorf("maxInflight %d, queue %+v: want the adaptive limit, an automatic queue and a timeout of at most 1s", cfg.MaxInflight, cfg.Queue)
	}
	if hc := cfg.HealthCheck; hc.Interval > units.Duration(time.Second) || hc.UnhealthyThreshold > 2 {
		t.Errorf("health check %+v: want a probe every second at most and out after two failures", hc)
	}
	if to := DefaultTimeouts(); to.ResponseHeader > units.Duration(30*time.Second) {
		t.Errorf("responseHeader %s: a stalled model must count against its breaker within 30s", to.ResponseHeader)
	}
	p, err := NewPool(cfg, DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := p.Snapshot()
	for _, tg := range snap.Targets {
		if tg.Limit != adaptiveInitial {
			t.Errorf("target %s: limit %d before any answer, want the adaptive limit's initial %d", tg.URL, tg.Limit, adaptiveInitial)
		}
	}
	// Fill both targets: the next requests queue, up to a quarter of the limits.
	var held []Lease
	for range 2 * adaptiveInitial {
		l, err := p.Acquire(t.Context())
		if err != nil {
			t.Fatalf("lease %d of %d: %v", len(held)+1, 2*adaptiveInitial, err)
		}
		held = append(held, l)
	}
	if got, want := p.queueSize(), int64(2*adaptiveInitial/4); got != want {
		t.Errorf("queue size %d, want a quarter of the limits, %d", got, want)
	}
	start := time.Now()
	if _, err := p.Acquire(t.Context()); !errors.Is(err, ErrSaturated) {
		t.Errorf("acquire past the limits: %v, want ErrSaturated after the queue timeout", err)
	}
	if d := time.Since(start); d < DefaultQueueTimeout.D()/2 || d > 10*time.Second {
		t.Errorf("a request waited %s, want about the queue timeout %s", d, DefaultQueueTimeout)
	}
	for _, l := range held {
		l.Done(Outcome{Status: 200})
	}
}

// A model that stalls: each call ends at the response-header timeout, which
// counts against the breaker until it opens (and says so in the log), and
// halves the adaptive limit.
func TestResponseHeaderTimeoutTripsBreaker(t *testing.T) {
	t.Parallel()
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		// The server notices a client gone only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	t.Cleanup(stall.Close)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	bcfg := breaker.Default()
	bf := func(target string) Breaker { return breaker.New(target, bcfg, nil, breaker.WithLogger(log)) }
	to := DefaultTimeouts()
	to.ResponseHeader = units.Duration(50 * time.Millisecond)
	cfg := PoolConfig{Targets: []TargetConfig{{URL: stall.URL}}}
	cfg.SetDefaults()
	p, err := NewPool(cfg, to, bf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int(bcfg.ConsecutiveFailures) {
		l, err := p.Acquire(t.Context())
		if err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, stall.URL+"/v1/completions", strings.NewReader("{}"))
		resp, err := l.Target.Transport().RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("call %d: the stalled server answered %d", i+1, resp.StatusCode)
		}
		l.Done(Outcome{Err: err})
	}
	if s := p.Targets()[0].BreakerState(); s != breaker.StateOpen {
		t.Errorf("after %d response-header timeouts the breaker is %s, want open", bcfg.ConsecutiveFailures, s)
	}
	if !strings.Contains(logs.String(), "circuit breaker opened") {
		t.Errorf("opening the breaker logged %q, want a line that says so", logs.String())
	}
	if got := p.Snapshot().Targets[0].Limit; got >= adaptiveInitial {
		t.Errorf("limit %d after timeouts, want it cut below %d", got, adaptiveInitial)
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("acquire with the breaker open: %v, want ErrUnavailable (a fast 503)", err)
	}
}

// Once a target's uncongested latency is known, a queued request waits at
// most a quarter of it, so that with the model's own time its answer stays
// well within twice that. A fixed queue keeps its configured timeout.
func TestQueueWaitFollowsLatency(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		cfg  PoolConfig
		want time.Duration
	}{
		{"defaults", PoolConfig{}, 200 * time.Millisecond},
		{"fixed queue", PoolConfig{Queue: Queue{Size: 4}}, DefaultQueueTimeout.D()},
		{"fixed limit", PoolConfig{MaxInflight: 8}, DefaultQueueTimeout.D()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.Targets = []TargetConfig{{URL: "http://127.0.0.1:1"}}
			cfg.SetDefaults()
			p, err := NewPool(cfg, DefaultTimeouts(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.queueWait(); got != DefaultQueueTimeout.D() {
				t.Errorf("before any answer: wait %s, want the queue timeout %s", got, DefaultQueueTimeout)
			}
			// Answers of 800 ms at 4 in flight: the uncongested latency is
			// 800 ms, a quarter of which is above the wait's floor.
			if _, a := p.limitOf(p.Targets()[0]); a != nil {
				epoch := time.Unix(1_000_000, 0)
				for i := range minSamples {
					at := epoch.Add(time.Duration(i+1) * 800 * time.Millisecond)
					a.sample(at, at.Add(-800*time.Millisecond), 800*time.Millisecond, 4, false)
				}
			}
			if got := p.queueWait(); got != tt.want {
				t.Errorf("wait %s, want %s", got, tt.want)
			}
		})
	}
}

// A pool limited to a model server's slots (the Ollama preset's) keeps its
// overload protection with SlotQueue: past the slots one more batch per
// replica waits, a request past that is refused at once, and a waiting one
// gets the next free slot, well before its timeout.
func TestSlotQueueIsBoundedAndShedsFast(t *testing.T) {
	t.Parallel()
	const slots, replicas = 3, 2
	q := SlotQueue(slots, replicas)
	if q.Size != ollamaMaxQueue || q.Timeout != DefaultSlotQueueTimeout {
		t.Fatalf("SlotQueue(%d, %d) = %+v, want Ollama's own bound (%d) waiting at most %s", slots, replicas, q, ollamaMaxQueue, DefaultSlotQueueTimeout)
	}
	if big := SlotQueue(64, 16); big.Size != 64*16 {
		t.Errorf("SlotQueue(64, 16) = %+v, want one batch per replica (%d) when that is more", big, 64*16)
	}
	// The rest of the test fills a small queue.
	q.Size = slots * replicas
	// Bounded by what the gateway already grants a model to start an answer.
	if q.Timeout > DefaultTimeouts().ResponseHeader {
		t.Errorf("a slot may be waited for %s, longer than the model may take to answer (%s)", q.Timeout, DefaultTimeouts().ResponseHeader)
	}
	cfg := PoolConfig{MaxInflight: slots, Queue: q,
		Targets: []TargetConfig{{URL: "http://127.0.0.1:1"}, {URL: "http://127.0.0.1:2"}}}
	cfg.SetDefaults()
	p, err := NewPool(cfg, DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var held []Lease
	for range slots * replicas {
		l, err := p.Acquire(t.Context())
		if err != nil {
			t.Fatalf("lease %d of %d: %v", len(held)+1, slots*replicas, err)
		}
		held = append(held, l)
	}
	// Fill the queue; each waiter reports when it got a slot.
	got := make(chan error, q.Size)
	for range q.Size {
		go func() {
			l, err := p.Acquire(t.Context())
			if err == nil {
				l.Done(Outcome{Status: 200})
			}
			got <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Queued() != int64(q.Size) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests queued", p.Queued(), q.Size)
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if _, err := p.Acquire(t.Context()); !errors.Is(err, ErrSaturated) {
		t.Errorf("acquire past the slots and the queue: %v, want ErrSaturated", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a request past a full queue was refused after %s, want at once", d)
	}
	// Slots free one by one (answers ending): every queued request gets one.
	start = time.Now()
	for _, l := range held {
		l.Done(Outcome{Status: 200})
	}
	for range q.Size {
		if err := <-got; err != nil {
			t.Errorf("a queued request: %v, want the slot an answer freed", err)
		}
	}
	if d := time.Since(start); d > q.Timeout.D()/2 {
		t.Errorf("queued requests got their slots after %s, want as soon as they freed", d)
	}
}
