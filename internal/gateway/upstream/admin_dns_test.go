package upstream

import (
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/units"
)

// A rollout's switch through the admin API names the new colour's headless
// Service: every address it resolves to is health-gated before the swap, the
// pool then follows the name's records (not the configured ones), a reload
// keeps following it, and a name without a healthy address changes nothing.
func TestIntegrationReplaceWithDNSTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a DNS server")
	}
	const name = "chat-green.ns.svc"
	f := startDNS(t, name)
	// Blue serves on 127.0.0.2; green's pods on .3 and .5; .4 serves nothing.
	var port string
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(ln.Addr().String())
		_ = ln.Close()
		if modelOn(t, "127.0.0.2:"+port) && modelOn(t, "127.0.0.3:"+port) && modelOn(t, "127.0.0.5:"+port) {
			break
		}
		port = ""
	}
	if port == "" {
		t.Fatal("no port free on 127.0.0.2, .3 and .5")
	}
	url := func(ip string) string { return "http://" + ip + ":" + port }
	cfg := PoolConfig{Name: "default", Targets: []TargetConfig{{URL: url("127.0.0.2")}}}
	cfg.HealthCheck = HealthCheck{Path: "/health", Interval: units.Duration(time.Hour), Timeout: units.Duration(300 * time.Millisecond), HealthyThreshold: 1, UnhealthyThreshold: 1}
	cfg.SetDefaults()
	p, err := NewPool(cfg, DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.resolver.Store(&resolverRef{r: f.resolver()})
	ctx := t.Context()
	green := "dns+http://" + name + ":" + port
	replace := func(pool *Pool) error {
		_, err := pool.Replace(ctx, adminapi.ReplaceTargets{Targets: []adminapi.Target{{URL: green, Group: "green"}}, HealthTimeout: units.Duration(time.Second), Drain: true})
		return err
	}

	// A name that resolves to nothing, or to an address that serves nothing: no change.
	f.set(dnsAnswer)
	var hg *HealthGateError
	if err := replace(p); !errors.As(err, &hg) {
		t.Fatalf("switch to a name without records: %v, want a HealthGateError", err)
	}
	f.set(dnsAnswer, "127.0.0.3", "127.0.0.4")
	if err := replace(p); !errors.As(err, &hg) {
		t.Fatalf("switch to a name with an address that serves nothing: %v, want a HealthGateError", err)
	}
	if got, want := targetURLs(p), []string{url("127.0.0.2")}; !slices.Equal(got, want) {
		t.Fatalf("after failed switches: targets %v, want %v", got, want)
	}
	if p.HasDNSTargets() {
		t.Fatal("a failed switch left a dns+ target to resolve")
	}

	// Every address healthy: the swap, and the pool follows the name.
	f.set(dnsAnswer, "127.0.0.3")
	if err := replace(p); err != nil {
		t.Fatal(err)
	}
	if got, want := targetURLs(p), []string{url("127.0.0.3")}; !slices.Equal(got, want) {
		t.Fatalf("after the switch: targets %v, want %v", got, want)
	}
	f.set(dnsAnswer, "127.0.0.3", "127.0.0.5")
	if err := p.ResolveDNS(ctx, f.resolver()); err != nil {
		t.Fatal(err)
	}
	if got, want := targetURLs(p), []string{url("127.0.0.3"), url("127.0.0.5")}; !slices.Equal(got, want) {
		t.Fatalf("a pod added after the switch: targets %v, want %v", got, want)
	}
	inGroup := func(pool *Pool, want string) {
		t.Helper()
		for _, tg := range pool.Targets() {
			if tg.Group() != want {
				t.Fatalf("target %s is in group %q, want %q: a dns+ target's addresses keep its group", tg.URL(), tg.Group(), want)
			}
		}
	}
	inGroup(p, "green")

	// A reload builds the pool from the file (blue), adopts the switched
	// targets and keeps resolving green.
	next, err := NewPool(cfg, DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Adopt(p); err != nil {
		t.Fatal(err)
	}
	f.set(dnsAnswer, "127.0.0.5")
	if err := next.ResolveDNS(ctx, f.resolver()); err != nil {
		t.Fatal(err)
	}
	if got, want := targetURLs(next), []string{url("127.0.0.5")}; !slices.Equal(got, want) {
		t.Fatalf("after a reload: targets %v, want %v", got, want)
	}
	inGroup(next, "green")

	// Switching back to a listed target ends the resolution.
	if _, err := next.Replace(ctx, adminapi.ReplaceTargets{Targets: []adminapi.Target{{URL: url("127.0.0.2")}}}); err != nil {
		t.Fatal(err)
	}
	f.set(dnsAnswer, "127.0.0.3")
	if err := next.ResolveDNS(ctx, f.resolver()); err != nil {
		t.Fatal(err)
	}
	if got, want := targetURLs(next), []string{url("127.0.0.2")}; !slices.Equal(got, want) {
		t.Fatalf("after switching back to a listed target: targets %v, want %v", got, want)
	}
}

// A resolution that began before the admin API set other targets does not
// overwrite them.
func TestSetTargetsDropsStaleResolution(t *testing.T) {
	cfg := PoolConfig{Name: "default", Targets: []TargetConfig{{URL: "dns+http://chat-blue:8000"}}}
	cfg.SetDefaults()
	p, err := NewPool(cfg, DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, gen := p.specNow()
	p.mu.Lock()
	p.spec, p.specGen = []TargetConfig{{URL: "http://127.0.0.9:8000"}}, p.specGen+1
	p.mu.Unlock()
	if err := p.setTargets([]TargetConfig{{URL: "http://127.0.0.7:8000"}}, gen); err != nil {
		t.Fatal(err)
	}
	if got := targetURLs(p); len(got) != 0 {
		t.Fatalf("a stale resolution set targets %v", got)
	}
}
