package gateway

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway/metrics"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
)

// deadURL is an address that refuses connections: a port that was just freed.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// retryGateway builds a gateway over targets without starting its health
// checks, so that a dead target stays in the pool until requests find it.
func retryGateway(t *testing.T, targets []upstream.TargetConfig) (*Gateway, *metrics.Metrics) {
	t.Helper()
	cfg := testConfig()
	cfg.Pools[0].Targets = targets
	cfg.Cache.Enabled = false
	cfg.SetDefaults()
	m := metrics.New()
	g, err := New(cfg, Deps{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return g, m
}

func postChat(g *Gateway, i int) *httptest.ResponseRecorder {
	body := `{"model":"m","messages":[{"role":"user","content":"q` + strconv.Itoa(i) + `"}]}`
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body)))
	return rec
}

// A POST whose target refuses the connection was never sent: it goes to
// another target, and the client never sees the dead one.
func TestConnectFailureGoesToAnotherTarget(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(fakemodel.NewHandler(fakemodel.DefaultOptions()))
	defer up.Close()
	// The dead target is picked first nearly always: it weighs 100 to 1.
	g, m := retryGateway(t, []upstream.TargetConfig{{URL: deadURL(t), Weight: 100}, {URL: up.URL, Weight: 1}})
	for i := range 20 {
		if rec := postChat(g, i); rec.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	// The dead target failed until passive ejection (5 failures) took it out.
	retries := testutil.ToFloat64(m.Retries.WithLabelValues("default"))
	if retries < 1 || retries > 5 {
		t.Fatalf("retries = %v, want 1 to 5 (until passive ejection)", retries)
	}
	if dead := g.def.Targets()[0]; dead.Healthy() {
		t.Fatalf("the dead target is still in rotation after %v connect failures", retries)
	}
}

// With every target dead a request tries at most 1+maxConnectRetries of
// them, then gets the 502 it would have got from the first.
func TestConnectFailureTriesABoundedNumberOfTargets(t *testing.T) {
	t.Parallel()
	var targets []upstream.TargetConfig
	for range 5 {
		targets = append(targets, upstream.TargetConfig{URL: deadURL(t)})
	}
	g, m := retryGateway(t, targets)
	if rec := postChat(g, 0); rec.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502: %s", rec.Code, rec.Body)
	}
	if retries := testutil.ToFloat64(m.Retries.WithLabelValues("default")); retries != maxConnectRetries {
		t.Fatalf("retries = %v, want %d", retries, maxConnectRetries)
	}
	failed := 0
	for _, ts := range g.def.Stats(time.Minute).ByTarget {
		if ts.Errors > 0 {
			failed++
		}
	}
	if failed != 1+maxConnectRetries {
		t.Fatalf("%d targets saw a failure, want %d, each once", failed, 1+maxConnectRetries)
	}
}

// An answer, even a 500, means the model saw the request: it is not sent again.
func TestModelErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	opts := fakemodel.DefaultOptions()
	opts.FailureRate = 1
	failing := httptest.NewServer(fakemodel.NewHandler(opts))
	defer failing.Close()
	ok := httptest.NewServer(fakemodel.NewHandler(fakemodel.DefaultOptions()))
	defer ok.Close()
	g, m := retryGateway(t, []upstream.TargetConfig{{URL: failing.URL, Weight: 1000}, {URL: ok.URL, Weight: 1}})
	fails := 0
	for i := range 10 {
		if postChat(g, i).Code == http.StatusInternalServerError {
			fails++
		}
	}
	if fails == 0 {
		t.Fatal("no request reached the failing target")
	}
	if retries := testutil.ToFloat64(m.Retries.WithLabelValues("default")); retries != 0 {
		t.Fatalf("retries = %v after model errors, want 0", retries)
	}
}

// A shared stream goes on for its followers when the client that started it
// leaves: its send context outlives the client's, and so does the retry on
// another target when the first cannot be connected to.
func TestConnectRetryOutlivesTheLeaderOfASharedStream(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(fakemodel.NewHandler(fakemodel.DefaultOptions()))
	defer up.Close()
	g, m := retryGateway(t, []upstream.TargetConfig{{URL: deadURL(t)}, {URL: up.URL}})
	dead, live := g.def.Targets()[0], g.def.Targets()[1]
	lease, err := g.def.AcquireOther(upstream.Lease{}, []*upstream.Target{live})
	if err != nil || lease.Target != dead {
		t.Fatalf("leasing the dead target: %v", err)
	}
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"q"}]}`)
	left, cancel := context.WithCancel(t.Context())
	cancel() // the leader's client is gone
	r := httptest.NewRequestWithContext(left, http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
	x := &exchange{r: r, id: "req-1", route: "/v1/chat/completions"}
	out := r.Clone(t.Context())
	out.URL = lease.Target.URLFor(r.URL)
	out.RequestURI = ""
	// The share's context: alive while followers read.
	resp, err := g.send(t.Context(), x, &lease, out, body, nil)
	if err != nil {
		t.Fatalf("the followers lost the answer: %v", err)
	}
	defer resp.Body.Close()
	lease.Done(upstream.Outcome{Status: resp.StatusCode})
	if resp.StatusCode != http.StatusOK || lease.Target != live {
		t.Fatalf("status %d from %s, want 200 from the live target", resp.StatusCode, lease.Target.URL())
	}
	if retries := testutil.ToFloat64(m.Retries.WithLabelValues("default")); retries != 1 {
		t.Fatalf("retries = %v, want 1", retries)
	}
}
