package admin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/units"
	"github.com/prometheus/client_golang/prometheus"
)

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(healthy.Close)
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	t.Cleanup(sick.Close)
	pc := upstream.PoolConfig{Name: adminapi.DefaultPool, Targets: []upstream.TargetConfig{{URL: healthy.URL}}}
	pc.SetDefaults()
	p, err := upstream.NewPool(pc, upstream.DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pools := map[string]*upstream.Pool{adminapi.DefaultPool: p}
	srv := httptest.NewServer(Handler(Options{Pools: func() map[string]*upstream.Pool { return pools }, Token: func() string { return "s3cret" }, Registry: prometheus.NewRegistry()}))
	t.Cleanup(srv.Close)
	ctx := context.Background()

	var se *adminapi.StatusError
	if _, err := (&adminapi.Client{BaseURL: srv.URL, Token: "wrong"}).Pools(ctx); !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("wrong token: %v", err)
	}
	// The token header of the Kubernetes pod proxy path, right and wrong.
	if _, err := (&adminapi.Client{BaseURL: srv.URL, Token: "wrong", TokenInHeader: true}).Pools(ctx); !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("wrong token in %s: %v", adminapi.TokenHeader, err)
	}
	if _, err := (&adminapi.Client{BaseURL: srv.URL, Token: "s3cret", TokenInHeader: true}).Pools(ctx); err != nil {
		t.Fatalf("token in %s: %v", adminapi.TokenHeader, err)
	}
	c := &adminapi.Client{BaseURL: srv.URL, Token: "s3cret"}
	ps, err := c.Pools(ctx)
	if err != nil || len(ps) != 1 || ps[0].Targets[0].URL != healthy.URL || !ps[0].Targets[0].Healthy {
		t.Fatalf("pools: %+v %v", ps, err)
	}
	if _, err := c.Pool(ctx, "nope"); !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("unknown pool: %v", err)
	}
	_, err = c.ReplaceTargets(ctx, "default", adminapi.ReplaceTargets{Targets: []adminapi.Target{{URL: sick.URL}}, HealthTimeout: units.Duration(300 * time.Millisecond)})
	if !errors.As(err, &se) || se.Code != 409 {
		t.Fatalf("unhealthy replace: %v, want 409", err)
	}
	if got, _ := c.Pool(ctx, "default"); got.Targets[0].URL != healthy.URL {
		t.Fatalf("409 changed the pool: %+v", got)
	}
	if got, err := c.SetWeights(ctx, "default", adminapi.SetWeights{Weights: map[string]int{healthy.URL: 5}}); err != nil || got.Targets[0].Weight != 5 {
		t.Fatalf("weights: %+v %v", got, err)
	}
	if res, err := c.Drain(ctx, "default", adminapi.Drain{URL: healthy.URL, Timeout: units.Duration(time.Second)}); err != nil || !res.Drained {
		t.Fatalf("drain: %+v %v", res, err)
	}
	if st, err := c.Stats(ctx, "default", 30*time.Second); err != nil || st.Window.D() != 30*time.Second {
		t.Fatalf("stats: %+v %v", st, err)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestAdminProfilesNeedTheToken(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler(Options{Pools: func() map[string]*upstream.Pool { return nil }, Token: func() string { return "s3cret" }}))
	t.Cleanup(srv.Close)
	get := func(path, token string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=0.05"} {
		if code, _ := get(path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d, want 401", path, code)
		}
	}
	// An execution trace starts with the runtime's header.
	if code, b := get("/debug/pprof/trace?seconds=0.05", "s3cret"); code != 200 || !bytes.HasPrefix(b, []byte("go 1.")) {
		t.Fatalf("trace: %d, %q", code, b[:min(len(b), 40)])
	}
}

func TestAdminWithoutTokenRefuses(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler(Options{Pools: func() map[string]*upstream.Pool { return nil }}))
	t.Cleanup(srv.Close)
	_, err := (&adminapi.Client{BaseURL: srv.URL}).Pools(context.Background())
	var se *adminapi.StatusError
	if !errors.As(err, &se) || se.Code != 403 {
		t.Fatalf("no token configured: %v, want 403", err)
	}
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz must stay open: %v %v", resp, err)
	}
	resp.Body.Close()
}
