package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway/breaker"
	"github.com/aideploy/aideploy/internal/gateway/cache"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

// fake starts the fake model server with opts changed by mod.
func fake(t *testing.T, mod func(*fakemodel.Options)) (*fakemodel.Handler, string) {
	t.Helper()
	o := fakemodel.DefaultOptions()
	if mod != nil {
		mod(&o)
	}
	h := fakemodel.NewHandler(o)
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return h, s.URL
}

// testConfig is a valid config for targets with fast health checks.
func testConfig(targets ...string) Config {
	cfg := Default()
	pc := upstream.PoolConfig{Name: "default", HealthCheck: upstream.HealthCheck{Path: "/health",
		Interval: units.Duration(100 * time.Millisecond), Timeout: units.Duration(time.Second), HealthyThreshold: 1, UnhealthyThreshold: 2}}
	for _, u := range targets {
		pc.Targets = append(pc.Targets, upstream.TargetConfig{URL: u})
	}
	cfg.Pools = []upstream.PoolConfig{pc}
	return cfg
}

// startGateway serves cfg on the gateway's front server; withCache adds an L1-only cache.
func startGateway(t *testing.T, cfg Config, withCache bool, mods ...func(*Deps)) (*Server, string) {
	t.Helper()
	cfg.SetDefaults()
	errs := validate.New()
	cfg.Validate(errs)
	if l := errs.List(); len(l) > 0 {
		t.Fatalf("test config invalid: %v", l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	bcfg := cfg.Breaker
	d := Deps{Breakers: func(target string) upstream.Breaker { return breaker.New(target, bcfg, nil) }}
	if withCache {
		c := cache.New(cfg.Cache, nil, nil, nil)
		t.Cleanup(c.Close)
		d.Cache = c
	}
	for _, m := range mods {
		m(&d)
	}
	srv, err := NewServer(ctx, cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	return srv, serveFront(t, srv)
}

// serveFront serves h on loopback with the http.Server Run builds, on the
// default server settings, and returns its URL.
func serveFront(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sc := defaultServer()
	conns := newConnLimit(maxConnections(sc))
	fs := clientServer(sc, h, conns, &certs{}, nil)
	go func() { _ = fs.Serve(conns.listen(ln)) }()
	t.Cleanup(func() { _ = fs.Close() })
	return "http://" + ln.Addr().String()
}

func post(t *testing.T, url, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

// The bodies ask for the most likely answer (temperature 0): sampled ones are not cached.
const chatBody = `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"temperature":0}`
const streamBody = `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}`
