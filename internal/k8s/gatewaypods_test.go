package k8s_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/k8s/k8stest"
)

// envGatewayPod marks a copy of the test binary that plays one gateway pod:
// it runs the gateway with the aideploy.yaml at the path it names.
const envGatewayPod = "AIDEPLOY_TEST_GATEWAY_POD"

// runGatewayPod is the gateway pod's process: `aideploy gateway serve` with
// the ConfigMap's configuration, until SIGTERM.
func runGatewayPod(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := config.Parse("aideploy.yaml", data)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := gateway.Run(ctx, cfg.Gateway, log, gateway.Options{}); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// clusterDNS answers, on kwok's node address in the test's network
// namespace, what the cluster's DNS would: NAME.NS.svc.cluster.local is the
// ready endpoint addresses of Service NAME, read from its EndpointSlices as
// the endpoint controller writes them. For a headless Service that is what
// CoreDNS answers; for a ClusterIP Service (Redis) it stands in for the
// virtual IP that kube-proxy, absent here, would route to those endpoints.
type clusterDNS struct {
	kc   *k8s.Client
	addr string
}

func startClusterDNS(t *testing.T, kc *k8s.Client) *clusterDNS {
	t.Helper()
	ip, _, err := net.ParseCIDR(k8stest.NetNSAddrs[0])
	if err != nil {
		t.Fatal(err)
	}
	d := &clusterDNS{kc: kc, addr: net.JoinHostPort(ip.String(), "53")}
	for _, network := range []string{"udp", "tcp"} {
		started := make(chan struct{})
		srv := &dns.Server{Addr: d.addr, Net: network, Handler: d, NotifyStartedFunc: func() { close(started) }}
		errc := make(chan error, 1)
		go func() { errc <- srv.ListenAndServe() }()
		select {
		case <-started:
		case err := <-errc:
			t.Fatalf("serving DNS on %s/%s: %v", d.addr, network, err)
		}
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return d
}

// resolvConf is a gateway pod's /etc/resolv.conf, as the kubelet writes it.
func (d *clusterDNS) resolvConf(t *testing.T) string {
	t.Helper()
	host, _, _ := net.SplitHostPort(d.addr)
	ns := d.kc.Namespace
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "nameserver " + host + "\nsearch " + ns + ".svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:2\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (d *clusterDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	q := req.Question[0]
	svc, ok := strings.CutSuffix(strings.ToLower(q.Name), "."+d.kc.Namespace+".svc.cluster.local.")
	if !ok || strings.Contains(svc, ".") {
		m.Rcode = dns.RcodeNameError
		_ = w.WriteMsg(m)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := d.kc.Clientset.CoreV1().Services(d.kc.Namespace).Get(ctx, svc, metav1.GetOptions{}); err != nil {
		m.Rcode = dns.RcodeNameError
		_ = w.WriteMsg(m)
		return
	}
	if q.Qtype == dns.TypeA {
		slices, err := d.kc.Clientset.DiscoveryV1().EndpointSlices(d.kc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
		if err != nil {
			m.Rcode = dns.RcodeServerFailure
			_ = w.WriteMsg(m)
			return
		}
		for _, s := range slices.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					continue
				}
				for _, a := range ep.Addresses {
					m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(a).To4()})
				}
			}
		}
	}
	_ = w.WriteMsg(m)
}

// podIPs waits until n running pods match sel and returns their names and addresses.
func podIPs(ctx context.Context, t *testing.T, kc *k8s.Client, sel string, n int) map[string]string {
	t.Helper()
	for {
		list, err := kc.Clientset.CoreV1().Pods(kc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && p.Status.PodIP != "" && p.Status.Phase == corev1.PodRunning {
				out[p.Name] = p.Status.PodIP
			}
		}
		if len(out) >= n {
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d pods of %s running: %v", len(out), n, sel, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startRedisPod runs redis-server on the address kwok gave the Redis pod.
func startRedisPod(ctx context.Context, t *testing.T, ip string) {
	t.Helper()
	cmd := exec.Command("redis-server", "--bind", ip, "--port", "6379", "--save", "", "--appendonly", "no", "--protected-mode", "no")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v (install it with apt-get install -y redis-server)", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitListening(ctx, t, net.JoinHostPort(ip, "6379"), func() string { return out.String() })
}

// waitListening waits until addr accepts connections.
func waitListening(ctx context.Context, t *testing.T, addr string, logs func() string) {
	t.Helper()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("nothing listens on %s: %v\n%s", addr, err, logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// gatewayPod is one gateway process playing a pod.
type gatewayPod struct {
	name, ip          string
	listen, adminPort string
}

// startGatewayPod runs the gateway as the pod name at ip plays it: this test
// binary again, in a mount namespace of its own where resolv points at the
// cluster DNS, with the live ConfigMap's aideploy.yaml. Only its listeners
// change: 0.0.0.0 in a pod's own network namespace is the pod's address here.
func startGatewayPod(ctx context.Context, t *testing.T, kc *k8s.Client, svc, name, ip, token, resolv string) gatewayPod {
	t.Helper()
	cm, err := kc.Clientset.CoreV1().ConfigMaps(kc.Namespace).Get(ctx, k8s.GatewayName(svc), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	doc := cm.Data["aideploy.yaml"]
	cfg, err := config.Parse("aideploy.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("the gateway ConfigMap's aideploy.yaml: %v", err)
	}
	gp := gatewayPod{name: name, ip: ip}
	for _, l := range []struct {
		addr string
		port *string
	}{{cfg.Gateway.Listen, &gp.listen}, {cfg.Gateway.AdminListen, &gp.adminPort}} {
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil || host != "0.0.0.0" {
			t.Fatalf("the ConfigMap's gateway listens on %q, want 0.0.0.0:PORT", l.addr)
		}
		*l.port = port
		doc = strings.Replace(doc, l.addr, net.JoinHostPort(ip, port), 1)
	}
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
		`mount --bind "$0" /etc/resolv.conf && exec "$@"`, resolv, self)
	cmd.Env = append(os.Environ(), envGatewayPod+"="+path, "AIDEPLOY_ADMIN_TOKEN="+token)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting gateway pod %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("gateway pod %s:\n%s", name, logs.String())
		}
	})
	waitListening(ctx, t, net.JoinHostPort(ip, gp.adminPort), logs.String)
	waitListening(ctx, t, net.JoinHostPort(ip, gp.listen), logs.String)
	return gp
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

// startVersionedModels plays the model server of every model pod: as kwok
// gives a pod its address, a fake model answering as version v<revision>
// listens on it, with the options tune sets for that revision (nil: the
// defaults); when the pod goes, or its address goes to another pod, the
// server goes too.
func startVersionedModels(ctx context.Context, t *testing.T, kc *k8s.Client, svc string, port int, tune func(rev string, o *fakemodel.Options)) {
	t.Helper()
	type served struct {
		uid string
		srv *http.Server
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		serving := map[string]served{} // by address
		defer func() {
			for _, s := range serving {
				_ = s.srv.Close()
			}
		}()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			pods, err := kc.Clientset.CoreV1().Pods(kc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: k8s.LabelName + "=" + svc + "," + k8s.LabelColor})
			if err == nil {
				live := map[string]bool{}
				for i := range pods.Items {
					pod := &pods.Items[i]
					ip := pod.Status.PodIP
					if ip == "" {
						continue
					}
					live[ip] = true
					if s, ok := serving[ip]; ok && s.uid == string(pod.UID) {
						continue
					} else if ok {
						_ = s.srv.Close()
						delete(serving, ip)
					}
					rev := pod.Annotations[k8s.AnnotationRev]
					opts := fakemodel.DefaultOptions()
					opts.Version = "v" + rev
					if tune != nil {
						tune(rev, &opts)
					}
					l, lerr := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
					if lerr != nil {
						continue // the server of the pod that had the address is still closing
					}
					srv := &http.Server{Handler: fakemodel.NewHandler(opts), ReadHeaderTimeout: 5 * time.Second}
					serving[ip] = served{uid: string(pod.UID), srv: srv}
					wg.Add(1)
					go func() { defer wg.Done(); _ = srv.Serve(l) }()
				}
				for ip, s := range serving {
					if !live[ip] {
						_ = s.srv.Close()
						delete(serving, ip)
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}
