package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/render"
	"github.com/aideploy/aideploy/internal/testutil/redistest"
)

// inNetns marks the copy of the test binary that runs inside the network and
// mount namespaces the test made for it.
const inNetns = "AIDEPLOY_TEST_IN_NETNS"

// The gateway pod's role, played by Run with the aideploy.yaml of the rendered
// ConfigMap as it stands: it resolves the serving colour's headless Service
// through the pod's resolv.conf (search list, ndots), balances over every pod
// address, and follows the records as pods go. Inside a network namespace of
// the test's own, with a resolv.conf bound over /etc/resolv.conf in a mount
// namespace, so that the DNS server the test runs on 127.0.0.1:53 is the
// system's there, and nothing outside is reached.
func TestIntegrationGatewayFollowsHeadlessService(t *testing.T) {
	if os.Getenv(inNetns) == "" {
		if testing.Short() {
			t.Skip("integration test: runs in a network namespace of its own; skipped under -short")
		}
		if os.Geteuid() != 0 {
			t.Fatal("needs root for its own network and mount namespaces (unshare --net --mount); run the tests as root")
		}
		cmd := exec.Command("unshare", "--net", "--mount", "--propagation", "private", os.Args[0],
			"-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), inNetns+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in its own namespaces:\n%s", out)
		if err != nil {
			t.Fatalf("the test failed in its namespaces: %v", err)
		}
		return
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\nsearch ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", resolv, "/etc/resolv.conf").CombinedOutput(); err != nil {
		t.Fatalf("binding a resolv.conf: %v: %s", err, out)
	}
	zone := startZone(t)

	cfg, err := config.Load("../render/testdata/cpu/aideploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port, cfg.Health.ReadyPath = 8000, "/ready" // what the fake model serves
	pods := map[string]string{"127.0.0.2": "pod-a", "127.0.0.3": "pod-b"}
	for addr, name := range pods {
		serveModel(t, addr+":8000", name)
	}
	redis := redistest.New(t)
	_, redisPort, _ := net.SplitHostPort(redis.Addr)
	zone.set(cfg.Name+"-blue", "127.0.0.2", "127.0.0.3")
	zone.set(cfg.Name+"-redis", "127.0.0.1")

	gc := renderedGateway(t, cfg)
	if want := "redis://" + cfg.Name + "-redis:6379/0"; gc.RedisURL != want {
		t.Fatalf("rendered redisURL %s, want %s", gc.RedisURL, want)
	}
	gc.RedisURL = "redis://" + cfg.Name + "-redis:" + redisPort + "/0" // the test's Redis port; still found through DNS
	t.Setenv("AIDEPLOY_ADMIN_TOKEN", "0123456789abcdef0123456789abcdef")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := make(chan string, 1)
	go func() {
		done <- gateway.Run(ctx, gc, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
			gateway.Options{Started: func(addr, _ string) { started <- addr }})
	}()
	t.Cleanup(func() { cancel(); <-done })
	var addr string
	select {
	case addr = <-started:
	case err := <-done:
		t.Fatalf("the gateway did not start: %v", err)
	}
	_, port, _ := net.SplitHostPort(addr)
	url := "http://127.0.0.1:" + port + "/v1/chat/completions"

	seen := func(n int) map[string]int {
		got := map[string]int{}
		for i := range n {
			body := `{"model":"fake-model","messages":[{"role":"user","content":"q` + strconv.Itoa(i) + time.Now().Format(time.RFC3339Nano) + `"}]}`
			resp, err := http.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got[resp.Header.Get("X-Model-Version")+" "+strconv.Itoa(resp.StatusCode)]++
		}
		return got
	}
	waitUntil(t, "both pods answer through the gateway", func() bool {
		got := seen(40)
		return got["pod-a 200"] > 0 && got["pod-b 200"] > 0 && got["pod-a 200"]+got["pod-b 200"] == 40
	})
	zone.set(cfg.Name+"-blue", "127.0.0.2")
	waitUntil(t, "only the pod left in DNS answers", func() bool { return seen(40)["pod-a 200"] == 40 })
}

func renderedGateway(t *testing.T, cfg *config.Config) gateway.Config {
	t.Helper()
	files, err := render.Render(cfg, config.DefaultFile, render.KubernetesGateway)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Path != "k8s/gateway/configmap.yaml" {
			continue
		}
		var cm corev1.ConfigMap
		if err := yaml.UnmarshalStrict(f.Data, &cm); err != nil {
			t.Fatal(err)
		}
		c, err := config.Parse("aideploy.yaml", []byte(cm.Data["aideploy.yaml"]))
		if err != nil {
			t.Fatalf("the ConfigMap's aideploy.yaml: %v", err)
		}
		return c.Gateway
	}
	t.Fatal("no k8s/gateway/configmap.yaml rendered")
	return gateway.Config{}
}

func serveModel(t *testing.T, addr, version string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	o := fakemodel.DefaultOptions()
	o.Version, o.Tokens = version, 2
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = fakemodel.Serve(ctx, ln, o) }()
	t.Cleanup(func() { cancel(); <-done })
}

// zone is a DNS server on 127.0.0.1:53 answering A records for names of the
// namespace "ns" as a cluster's DNS does, changed live by the test.
type zone struct {
	mu sync.Mutex
	a  map[string][]string // fully qualified name → addresses
}

func startZone(t *testing.T) *zone {
	t.Helper()
	z := &zone{a: map[string][]string{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return z
}

func (z *zone) set(service string, addrs ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.a[service+".ns.svc.cluster.local."] = addrs
}

func (z *zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	q := req.Question[0]
	z.mu.Lock()
	addrs, ok := z.a[strings.ToLower(q.Name)]
	z.mu.Unlock()
	if !ok {
		m.Rcode = dns.RcodeNameError
	}
	if q.Qtype == dns.TypeA {
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(a).To4()})
		}
	}
	_ = w.WriteMsg(m)
}

// waitUntil polls cond until it holds, failing after 30 s: a condition, not a sleep.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		<-tick.C
	}
}
