package k8s_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/k8s/k8stest"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// hostAddress is the address that plays this machine for the simulated
// nodes: the API server's service proxy refuses loopback endpoints, so it is
// kwok's node address on the loopback of the test binary's own network
// namespace (k8stest.NetNSAddrs), never an address of the real host.
func hostAddress(t *testing.T) net.IP {
	t.Helper()
	if !k8stest.InNetNS() {
		t.Fatal("the warm-up tests send traffic to simulated node addresses: run them through k8stest.Main with NetNS set")
	}
	ip, _, err := net.ParseCIDR(k8stest.NetNSAddrs[0])
	if err != nil {
		t.Fatal(err)
	}
	return ip.To4()
}

// hostNodes adds n kwok nodes whose InternalIP is this machine's address and
// that only pods of onHostNodes(key) take: a hostNetwork pod there gets this
// machine's address as its IP, so a Service's endpoint reaches a server of the
// test. They are removed when the test ends.
func hostNodes(ctx context.Context, t *testing.T, kc *k8s.Client, n int) (key string) {
	t.Helper()
	key = "host-" + kc.Namespace // a label value: at most 63 characters
	if len(key) > 60 {
		key = strings.TrimRight(key[:60], "-")
	}
	ip := hostAddress(t).String()
	nodes := kc.Clientset.CoreV1().Nodes()
	for i := range n {
		name := key + "-" + strconv.Itoa(i)
		// kwok takes the node only once it carries kwok's annotation, so that
		// it finds the address set (status is not taken on create) and never
		// hands out its default address for the node.
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name,
				Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"},
				Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "aideploy.dev/host-node": key}},
			Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "aideploy.dev/host-node", Value: key, Effect: corev1.TaintEffectNoSchedule}}},
		}
		if _, err := nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nodes.Delete(context.Background(), name, metav1.DeleteOptions{}) })
		status := `{"status":{"addresses":[{"type":"InternalIP","address":"` + ip + `"},{"type":"Hostname","address":"` + name + `"}]}}`
		if _, err := nodes.Patch(ctx, name, types.MergePatchType, []byte(status), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
		manage := `{"metadata":{"annotations":{"kwok.x-k8s.io/node":"fake"}}}`
		if _, err := nodes.Patch(ctx, name, types.MergePatchType, []byte(manage), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitHostIP(ctx, t, kc, name, key, ip)
	}
	return key
}

// waitHostIP waits until kwok gives a hostNetwork pod on node the address
// ip: until it has seen the node's new address, it hands out its default.
func waitHostIP(ctx context.Context, t *testing.T, kc *k8s.Client, node, key, ip string) {
	t.Helper()
	pods := kc.Clientset.CoreV1().Pods(kc.Namespace)
	for attempt := 0; ; attempt++ {
		probe := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: node + "-probe-" + strconv.Itoa(attempt)},
			Spec: corev1.PodSpec{NodeName: node, HostNetwork: true,
				Tolerations: []corev1.Toleration{{Key: "aideploy.dev/host-node", Operator: corev1.TolerationOpExists}},
				Containers:  []corev1.Container{{Name: "probe", Image: "probe"}}},
		}
		if _, err := pods.Create(ctx, probe, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got := ""
		for got == "" && ctx.Err() == nil {
			p, err := pods.Get(ctx, probe.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got = p.Status.PodIP; got == "" {
				time.Sleep(50 * time.Millisecond)
			}
		}
		zero := int64(0)
		_ = pods.Delete(ctx, probe.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if got == ip {
			return
		}
		if attempt == 50 || ctx.Err() != nil {
			t.Fatalf("kwok gives pods on %s the address %s, not %s", node, got, ip)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// onHostNodes puts a pod spec on the nodes of hostNodes, on the host network.
func onHostNodes(key string) func(spec map[string]any) {
	return func(spec map[string]any) {
		spec["hostNetwork"] = true
		spec["nodeSelector"] = map[string]any{"aideploy.dev/host-node": key}
		spec["tolerations"] = []any{map[string]any{"key": "aideploy.dev/host-node", "operator": "Exists", "effect": "NoSchedule"}}
	}
}

// The warm-up request goes through the API server's proxy of the preview
// Service to the new colour's pod, and a failing warm-up stops the rollout
// before the switch.
func TestIntegrationK8sWarmup(t *testing.T) {
	t.Parallel()
	_, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Two nodes: both colours' pods use the same host port, one per node.
	b, m := warmBG(ctx, t, kc, 2, 10*time.Second)
	run := func(image string) error {
		r := b.runner(os.Getpid())
		r.Config.Warmup = b.cfg.Rollout.Warmup
		_, err := r.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: image, Replicas: 1})
		return err
	}
	if err := run("registry.example.com/app:1"); err != nil {
		t.Fatalf("first rollout: %v", err)
	}
	if n := m.warmups.Load(); n != 1 {
		t.Errorf("the first rollout sent %d warm-up requests, want 1", n)
	}
	if got := b.selector(ctx); got != string(rollout.Blue) {
		t.Fatalf("Service selects %q after the first rollout, want blue", got)
	}

	m.fail.Store(true)
	err := run("registry.example.com/app:2")
	if err == nil || !strings.Contains(err.Error(), "warm-up") {
		t.Fatalf("rollout with a failing warm-up: %v, want a warm-up failure", err)
	}
	if n := m.warmups.Load(); n != 2 {
		t.Errorf("warm-up requests: %d, want 2", n)
	}
	if got := b.selector(ctx); got != string(rollout.Blue) {
		t.Errorf("Service selects %q after a failed warm-up, want blue", got)
	}
}

// warmBG is the cpu service with warm-up on (timeout as given), its pods on
// n nodes of hostNodes, and the fake model of startWarmModel as their server.
func warmBG(ctx context.Context, t *testing.T, kc *k8s.Client, n int, timeout time.Duration) (*bg, *warmModel) {
	t.Helper()
	m := startWarmModel(t)
	key := hostNodes(ctx, t, kc, n)
	b := newBG(t, kc)
	cfg := *golden(t, "cpu")
	cfg.Port = m.port
	cfg.Rollout.Warmup = rollout.Warmup{Enabled: true, Path: "/v1/chat/completions", Body: rollout.DefaultWarmupBody, Timeout: units.Duration(timeout)}
	b.cfg = &cfg
	b.podSpec = onHostNodes(key)
	return b, m
}

// warmModel is the fake model on this machine's address, counting warm-up
// requests and failing them on demand.
type warmModel struct {
	port    int
	warmups atomic.Int32
	fail    atomic.Bool
}

func startWarmModel(t *testing.T) *warmModel {
	t.Helper()
	m := &warmModel{}
	model := fakemodel.NewHandler(fakemodel.DefaultOptions())
	l, err := net.Listen("tcp", net.JoinHostPort(hostAddress(t).String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	m.port = l.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions" {
			body, _ := io.ReadAll(r.Body)
			if strings.Contains(string(body), "warm-up") {
				m.warmups.Add(1)
				if m.fail.Load() {
					http.Error(w, `{"error":{"message":"model not loaded"}}`, http.StatusInternalServerError)
					return
				}
			}
			r.Body = io.NopCloser(strings.NewReader(string(body)))
		}
		model.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return m
}

// A warm-up sent before the endpoint controller lists the new pods behind
// the preview Service waits for them instead of failing the rollout.
func TestIntegrationK8sWarmupWaitsForEndpoints(t *testing.T) {
	t.Parallel()
	_, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, m := warmBG(ctx, t, kc, 1, 30*time.Second)
	cfg := b.cfg
	objs := runnable(t, cfg, rollout.Blue, nil)
	b.mutate(objs)
	var services, deployments []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "Service":
			services = append(services, o)
		case "Deployment":
			deployments = append(deployments, o)
		}
	}
	if _, err := kc.Apply(ctx, services, false); err != nil {
		t.Fatal(err)
	}
	p := k8s.NewPlatform(kc, k8s.Options{Config: cfg, Logf: t.Logf})
	type result struct {
		took time.Duration
		err  error
	}
	done := make(chan result, 1)
	t0 := time.Now()
	go func() {
		_, err := p.Warmup(ctx, rollout.Deployment{Color: rollout.Blue, Revision: 1, Image: cfg.Image})
		done <- result{time.Since(t0), err}
	}()
	time.Sleep(time.Second)
	if _, err := kc.Apply(ctx, deployments, false); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("warm-up while the preview Service had no endpoints: %v", r.err)
	}
	if r.took < time.Second || m.warmups.Load() != 1 {
		t.Errorf("warm-up returned after %s with %d requests answered, want after the pod came (1s) and 1", r.took, m.warmups.Load())
	}
}

// podModels plays the model server of every pod of a namespace: as kwok
// gives a pod its address (in the test's network namespace), a fake model
// starts listening on it, counting the warm-up requests each pod receives.
type podModels struct {
	mu      sync.Mutex
	warmups map[string]int // by pod address
}

func startPodModels(ctx context.Context, t *testing.T, kc *k8s.Client, port int) *podModels {
	t.Helper()
	pm := &podModels{warmups: map[string]int{}}
	model := fakemodel.NewHandler(fakemodel.DefaultOptions())
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	serving := map[string]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			pods, err := kc.Clientset.CoreV1().Pods(kc.Namespace).List(ctx, metav1.ListOptions{})
			for i := range pods.Items {
				ip := pods.Items[i].Status.PodIP
				if err != nil || ip == "" || serving[ip] || pods.Items[i].Spec.HostNetwork {
					continue
				}
				l, lerr := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
				if lerr != nil {
					t.Errorf("listening as pod %s on %s: %v", pods.Items[i].Name, ip, lerr)
					continue
				}
				serving[ip] = true
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					body, _ := io.ReadAll(r.Body)
					if strings.Contains(string(body), "warm-up") {
						pm.mu.Lock()
						pm.warmups[ip]++
						pm.mu.Unlock()
					}
					r.Body = io.NopCloser(strings.NewReader(string(body)))
					model.ServeHTTP(w, r)
				})}
				wg.Add(2)
				go func() { defer wg.Done(); _ = srv.Serve(l) }()
				go func() { defer wg.Done(); <-ctx.Done(); _ = srv.Close() }()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return pm
}

// Warm-up reaches every replica of the new colour, each on its own pod
// address, not just the one a Service would have picked.
func TestIntegrationK8sWarmupEveryReplica(t *testing.T) {
	t.Parallel()
	_, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newBG(t, kc)
	cfg := *golden(t, "cpu")
	cfg.Rollout.Warmup = rollout.Warmup{Enabled: true, Path: "/v1/chat/completions", Body: rollout.DefaultWarmupBody, Timeout: units.Duration(30 * time.Second)}
	b.cfg = &cfg
	pm := startPodModels(ctx, t, kc, cfg.Port)
	r := b.runner(os.Getpid())
	r.Config.Warmup = cfg.Rollout.Warmup
	const replicas = 3
	if _, err := r.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/app:1", Replicas: replicas}); err != nil {
		t.Fatalf("rollout: %v", err)
	}
	pods, err := kc.Clientset.CoreV1().Pods(kc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: k8s.LabelColor + "=blue"})
	if err != nil {
		t.Fatal(err)
	}
	pm.mu.Lock()
	defer pm.mu.Unlock()
	seen := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		seen++
		if n := pm.warmups[p.Status.PodIP]; n != 1 {
			t.Errorf("pod %s (%s) got %d warm-up requests, want 1", p.Name, p.Status.PodIP, n)
		}
	}
	if seen != replicas {
		t.Errorf("%d pods of blue, want %d", seen, replicas)
	}
}
