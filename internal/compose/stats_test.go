package compose

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/units"
)

// slowFirstToken is a model replica on loopback whose streams send their
// first token after ttft, as a model busy with prefill does.
func slowFirstToken(t *testing.T, ttft time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		select {
		case <-time.After(ttft): // the model's prefill, not a synchronisation
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%d\"}}]}\n\n", i)
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Stats reports the time to first token of the version the gateway serves,
// as the real gateway measured it: after the switch to green, with blue kept
// as the fallback, blue's slow answers from before the switch are in the
// window but not in the figure.
func TestStatsTimeToFirstTokenOfServingVersion(t *testing.T) {
	t.Parallel()
	addr, admin := startTestGateway(t)
	blue, green := slowFirstToken(t, 400*time.Millisecond), slowFirstToken(t, 30*time.Millisecond)
	targets := []adminapi.Target{{URL: blue, Group: "blue"}, {URL: green, Group: "green"}}
	swap := func(split adminapi.Split) {
		t.Helper()
		req := adminapi.ReplaceTargets{Targets: targets, HealthTimeout: units.Duration(10 * time.Second), Split: &split}
		if _, err := admin.ReplaceTargets(t.Context(), adminapi.DefaultPool, req); err != nil {
			t.Fatal(err)
		}
	}
	send := func(n int) {
		t.Helper()
		c := &http.Client{Timeout: time.Minute}
		for range n {
			if a := request(c, "http://"+addr, true); a.status != 200 || a.err != "" {
				t.Fatalf("request through the gateway: %+v", a)
			}
		}
	}
	swap(adminapi.Split{Percent: map[string]int{"blue": 100}})
	send(4)
	swap(adminapi.Split{Percent: map[string]int{"green": 100}, Fallback: "blue"}) // as Switch leaves it
	send(10)

	p := New(nil, Options{Gateway: admin})
	st, err := p.Stats(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := admin.Stats(t.Context(), adminapi.DefaultPool, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	blueTTFT := 0.0
	for _, g := range raw.ByGroup {
		if g.Group == "blue" && !g.Shadow {
			blueTTFT = g.TTFTP95Seconds
		}
	}
	if blueTTFT < 0.4 {
		t.Fatalf("the gateway measured blue's TTFT p95 as %gs, want at least 0.4s: the test proves nothing (groups %+v)", blueTTFT, raw.ByGroup)
	}
	if st.TTFTP95 < 30*time.Millisecond || st.TTFTP95 >= 400*time.Millisecond {
		t.Errorf("Stats TTFT p95 = %s, want green's (at least 30ms, below blue's 400ms)", st.TTFTP95)
	}
	if st.Targets != 1 || st.Requests != 14 {
		t.Errorf("Stats = %+v, want 1 serving target and the 14 requests", st)
	}
}
