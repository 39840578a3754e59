package upstream

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

func TestParseDNSTarget(t *testing.T) {
	good := map[string]DNSTarget{
		"dns+http://chat-blue.ns.svc:8000":              {Scheme: "http", Host: "chat-blue.ns.svc", Port: "8000"},
		"dns+https://chat-blue.ns.svc:8443/v1/":         {Scheme: "https", Host: "chat-blue.ns.svc", Port: "8443", Path: "/v1/"},
		"dns+http://chat-blue.ns.svc.cluster.local:80/": {Scheme: "http", Host: "chat-blue.ns.svc.cluster.local", Port: "80"},
	}
	for raw, want := range good {
		got, err := ParseDNSTarget(raw)
		if err != nil || got != want {
			t.Errorf("ParseDNSTarget(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	bad := map[string]string{
		"http://chat:8000":            "not a dns+ target",
		"dns+unix:///x.sock":          "scheme must be",
		"dns+http://chat-blue.ns.svc": "needs a name and a port",
		"dns+http://127.0.0.1:8000":   "nothing to resolve",
		"dns+http://[::1]:8000":       "nothing to resolve",
		"dns+http://chat:0":           "between 1 and 65535",
		"dns+http://u:p@chat:8000":    "drop the rest",
		"dns+http://chat:8000/?x=1":   "drop the rest",
		"dns+http://chat:port":        "not a URL",
	}
	for raw, want := range bad {
		if _, err := ParseDNSTarget(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDNSTarget(%q) = %v; want an error with %q", raw, err, want)
		}
	}
}

func TestPoolValidateAcceptsDNSTargets(t *testing.T) {
	cfg := PoolConfig{Name: "default", Targets: []TargetConfig{{URL: "dns+http://chat-blue.ns.svc:8000"}, {URL: "http://127.0.0.1:9"}}}
	cfg.SetDefaults()
	if errs := validateErrs(cfg); len(errs) != 0 {
		t.Fatalf("valid dns+ target refused: %v", errs)
	}
	cfg.Targets[0].URL = "dns+http://127.0.0.1:8000"
	if errs := validateErrs(cfg); len(errs) == 0 {
		t.Fatal("a dns+ target naming an address was accepted")
	}
}

// dnsMode is how the test DNS server misbehaves.
type dnsMode int

const (
	dnsAnswer   dnsMode = iota // the records as they are
	dnsServFail                // rcode SERVFAIL
	dnsGarbage                 // bytes that are no DNS message
	dnsSilent                  // no answer at all: the client times out
)

// fakeDNS is a real DNS server on loopback (github.com/miekg/dns) serving A
// records for one name, changed live by the test.
type fakeDNS struct {
	name string // fully qualified
	mu   sync.Mutex
	a    []string
	mode dnsMode
	addr string
}

func startDNS(t *testing.T, name string) *fakeDNS {
	t.Helper()
	f := &fakeDNS{name: dns.Fqdn(name)}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = pc.LocalAddr().String()
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: f, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return f
}

func (f *fakeDNS) set(mode dnsMode, a ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode, f.a = mode, a
}

func (f *fakeDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	f.mu.Lock()
	mode, records := f.mode, slices.Clone(f.a)
	f.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	switch mode {
	case dnsSilent:
		return
	case dnsGarbage:
		_, _ = w.Write([]byte("this is not a DNS message"))
		return
	case dnsServFail:
		m.Rcode = dns.RcodeServerFailure
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	if !strings.EqualFold(q.Name, f.name) {
		m.Rcode = dns.RcodeNameError // search-list candidates and anything else
		_ = w.WriteMsg(m)
		return
	}
	if q.Qtype == dns.TypeA {
		for _, a := range records {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: f.name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
				A:   net.ParseIP(a).To4(),
			})
		}
	}
	_ = w.WriteMsg(m)
}

// resolver asks only the fake server, over UDP on loopback.
func (f *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", f.addr)
	}}
}

func targetURLs(p *Pool) []string {
	var out []string
	for _, t := range p.Targets() {
		out = append(out, t.URL())
	}
	slices.Sort(out)
	return out
}

// modelOn serves 200 on addr, a loopback address the test picks, and says
// whether it could listen there.
func modelOn(t *testing.T, addr string) bool {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return true
}

func TestIntegrationDNSTargetsFollowRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a DNS server")
	}
	const name = "chat-blue.ns.svc"
	f := startDNS(t, name)
	// Two model pods on one port at two loopback addresses; 127.0.0.4 serves nothing.
	var port string
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(ln.Addr().String())
		_ = ln.Close()
		if modelOn(t, "127.0.0.2:"+port) && modelOn(t, "127.0.0.3:"+port) {
			break
		}
		port = ""
	}
	if port == "" {
		t.Fatal("no port free on both 127.0.0.2 and 127.0.0.3")
	}
	cfg := PoolConfig{Name: "blue", Targets: []TargetConfig{{URL: "dns+http://" + name + ":" + port}}}
	cfg.HealthCheck = HealthCheck{Path: "/health", Interval: units.Duration(time.Hour), Timeout: units.Duration(time.Second), HealthyThreshold: 1, UnhealthyThreshold: 1}
	cfg.SetDefaults()
	p, err := NewPool(cfg, DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Targets()); n != 0 {
		t.Fatalf("before resolving: %d targets, want 0", n)
	}
	ctx := t.Context()
	r := f.resolver()
	url := func(ip string) string { return "http://" + ip + ":" + port }

	f.set(dnsAnswer, "127.0.0.2")
	if err := p.ResolveDNS(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, want := targetURLs(p), []string{url("127.0.0.2")}; !slices.Equal(got, want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	first := p.Targets()[0]

	// A pod is added, and one that serves nothing: each is a target of its own.
	f.set(dnsAnswer, "127.0.0.4", "127.0.0.3", "127.0.0.2")
	if err := p.ResolveDNS(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, want := targetURLs(p), []string{url("127.0.0.2"), url("127.0.0.3"), url("127.0.0.4")}; !slices.Equal(got, want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	if !slices.Contains(p.Targets(), first) {
		t.Fatal("a target present before and after was replaced, losing its state")
	}
	p.checkAll(ctx)
	for _, tg := range p.Targets() {
		if want := !strings.Contains(tg.URL(), "127.0.0.4"); tg.Healthy() != want {
			t.Errorf("%s healthy=%v after a health check, want %v", tg.URL(), tg.Healthy(), want)
		}
	}

	// Pods go away.
	f.set(dnsAnswer, "127.0.0.3")
	if err := p.ResolveDNS(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, want := targetURLs(p), []string{url("127.0.0.3")}; !slices.Equal(got, want) {
		t.Fatalf("targets %v, want %v", got, want)
	}

	// A DNS server that fails, in every way: the targets stay.
	for _, c := range []struct {
		mode dnsMode
		name string
	}{{dnsServFail, "SERVFAIL"}, {dnsGarbage, "garbage"}, {dnsSilent, "no answer"}, {dnsAnswer, "no records"}} {
		f.set(c.mode)
		if err := p.ResolveDNS(ctx, r); err == nil {
			t.Errorf("%s: no error", c.name)
		}
		if got, want := targetURLs(p), []string{url("127.0.0.3")}; !slices.Equal(got, want) {
			t.Errorf("%s: targets %v, want %v kept", c.name, got, want)
		}
	}
}

func TestIntegrationWatchDNSLogsAndRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a DNS server")
	}
	const name = "chat-green.ns.svc"
	f := startDNS(t, name)
	f.set(dnsServFail)
	cfg := PoolConfig{Name: "green", Targets: []TargetConfig{{URL: "dns+http://" + name + ":8000"}}}
	cfg.SetDefaults()
	p, err := NewPool(cfg, DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.WatchDNS(ctx, f.resolver(), 20*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, "a logged lookup failure", func() bool { return strings.Contains(logs.String(), "keeping the current ones") })
	if n := len(p.Targets()); n != 0 {
		t.Fatalf("%d targets from a failing DNS server", n)
	}
	f.set(dnsAnswer, "127.0.0.5", "127.0.0.6")
	waitFor(t, "targets from the recovered server", func() bool { return len(p.Targets()) == 2 })
	if got := targetURLs(p); got[0] != "http://127.0.0.5:8000" || got[1] != "http://127.0.0.6:8000" {
		t.Fatalf("targets %v", got)
	}
	if !strings.Contains(logs.String(), "pool=green") {
		t.Errorf("the log does not name the pool: %s", logs.String())
	}
}

// waitFor polls cond until it holds, failing after 10 s: a condition, not a sleep.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		<-tick.C
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func validateErrs(c PoolConfig) []validate.Error {
	errs := validate.New()
	c.Validate(errs)
	return errs.List()
}

// A pool rebuilt by a reload serves on the addresses its predecessor resolved,
// before it resolves anything itself.
func TestIntegrationDNSTargetsSurviveReload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a DNS server")
	}
	const name = "chat-blue.ns.svc"
	f := startDNS(t, name)
	f.set(dnsAnswer, "127.0.0.7", "127.0.0.8")
	cfg := PoolConfig{Name: "default", Targets: []TargetConfig{{URL: "dns+http://" + name + ":8000/v1"}, {URL: "http://127.0.0.9:8000"}}}
	cfg.SetDefaults()
	prev, err := NewPool(cfg, DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := prev.ResolveDNS(t.Context(), f.resolver()); err != nil {
		t.Fatal(err)
	}
	next, err := NewPool(cfg, DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.KeepResolved(prev); err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.7:8000/v1", "http://127.0.0.8:8000/v1", "http://127.0.0.9:8000"}
	if got := targetURLs(next); !slices.Equal(got, want) {
		t.Fatalf("after a reload: targets %v, want %v", got, want)
	}
	// A pool whose dns+ target changed port keeps nothing of the old answers.
	cfg.Targets[0].URL = "dns+http://" + name + ":9000/v1"
	other, err := NewPool(cfg, DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.KeepResolved(prev); err != nil {
		t.Fatal(err)
	}
	if got := targetURLs(other); !slices.Equal(got, []string{"http://127.0.0.9:8000"}) {
		t.Fatalf("after a reload to another port: targets %v", got)
	}
}
