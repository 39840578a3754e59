package k8s_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/k8s/k8stest"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/testutil/loadslot"
	"github.com/aideploy/aideploy/internal/units"
)

// gatewayReplicas is how many gateway pods the test runs: the rendered HPA's floor.
const gatewayReplicas = 2

// Rollouts through the gateway on Kubernetes, against the real control plane:
// the rendered k8s/gateway objects are applied, each gateway pod is played by
// a gateway process with the ConfigMap's configuration on the address kwok
// gave the pod, resolving the colours' headless Services through a DNS server
// fed from the real EndpointSlices, and each model pod by a fake model on its
// own address, answering as its revision. All of it inside the test binary's
// network namespace, which has only a loopback and no route out.
//
// Under ≥100 requests a second through both gateway pods, a rollout v1→v2
// fails no request, and every client (a connection to one gateway pod) sees
// v1 then v2, switching once. A v3 that answers 500 is switched back to v2 by
// the watch window, which names its error rate, and the failed requests stay
// under 5% of those sent in the window.
func TestIntegrationK8sGatewayRollout(t *testing.T) {
	loadslot.Take(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rig := startGatewayRig(ctx, t, 8, func(rev string, o *fakemodel.Options) {
		if rev == "3" {
			o.FailureRate = 1 // every model request answers 500
		}
	})
	b, kc, cfg, load, runner := rig.b, rig.kc, rig.cfg, rig.load, rig.runner

	// v1 → v2 under load.
	began := time.Now()
	res, err := runner(2*time.Second).Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/embed:2", Replicas: 2})
	if err != nil {
		t.Fatalf("rollout to v2: %v", err)
	}
	waitUntil(ctx, t, "every client gets v2", func() bool { return load.allSaw("v2") })
	ended := time.Now()
	got := load.between(began, ended)
	secs := ended.Sub(began).Seconds()
	t.Logf("rollout v1→v2 (%s, watch: %s): %d requests in %.1fs (%.0f/s), %d failed", res.Journal.To, watchSummary(b), got.sent, secs, float64(got.sent)/secs, got.failed)
	if rate := float64(got.sent) / secs; rate < 100 {
		t.Errorf("the load was %.0f requests/s during the rollout, want at least 100", rate)
	}
	if got.failed != 0 {
		t.Errorf("%d of %d requests failed during the rollout through the gateway, want 0; first: %s", got.failed, got.sent, got.firstFailure)
	}
	if bad := load.versionOrder("v1", "v2", began); len(bad) > 0 {
		t.Errorf("answers did not change from v1 to v2 once and for all: %s", strings.Join(bad, "; "))
	}
	if s := watchSummary(b); !strings.Contains(s, " requests, 0 errors") || strings.HasPrefix(s, "0 requests") {
		t.Errorf("the watch window read %q, want the real figures of v2's traffic", s)
	}
	assertConfigMapServes(ctx, t, kc, cfg, rollout.Green)

	// v2 → v3, which answers 500: the watch switches back, naming the error rate.
	window := 30 * time.Second
	switched := make(chan time.Time, 4)
	b.mu.Lock()
	b.onEvent = func(e rollout.Event) {
		// From the start of the switch: the gateway pods swap before the step ends.
		if e.Step == rollout.StepSwitch && e.Kind == rollout.EventStart {
			switched <- e.Time
		}
	}
	b.mu.Unlock()
	_, err = runner(window).Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/embed:3", Replicas: 2})
	var f *rollout.Failure
	if !errors.As(err, &f) || !f.RolledBack || f.Active == nil || f.Active.Revision != 2 || !strings.Contains(err.Error(), "error rate") {
		t.Fatalf("rollout to a failing v3: %v, want it rolled back to v2 by the watch naming the error rate", err)
	}
	t.Logf("rollout v2→v3: %v", err)
	var switchAt time.Time
	select {
	case switchAt = <-switched:
	default:
		t.Fatal("no switch to v3 was reported")
	}
	waitUntil(ctx, t, "the watch window to pass", func() bool { return time.Since(switchAt) > window })
	load.stop()
	inWindow := load.between(switchAt, switchAt.Add(window))
	t.Logf("watch window of v3 (%s): %d requests, %d failed (%.2f%%)", window, inWindow.sent, inWindow.failed, 100*float64(inWindow.failed)/float64(max(inWindow.sent, 1)))
	if inWindow.sent < int(window.Seconds())*100 {
		t.Errorf("%d requests in the %s watch window, want at least 100/s", inWindow.sent, window)
	}
	if float64(inWindow.failed) >= 0.05*float64(inWindow.sent) {
		t.Errorf("%d of %d requests failed in the watch window, want under 5%%", inWindow.failed, inWindow.sent)
	}
	if v := load.lastVersions(); len(v) != 1 || v[0] != "v2" {
		t.Errorf("after the rollback the clients' last answers came from %v, want v2", v)
	}
	assertConfigMapServes(ctx, t, kc, cfg, rollout.Green)
}

// gatewayRig is a service served through two gateway pods on the real
// control plane, v1 deployed, under ≥100 requests a second.
type gatewayRig struct {
	cl   *k8stest.Cluster // its Kubeconfig runs the command line against the rig
	b    *bg
	kc   *k8s.Client
	cfg  *config.Config
	load *load
	urls []string // the gateway pods' chat completions URLs
}

// startGatewayRig deploys v1 of the cpu service with its rendered gateway,
// model pods played by fake models tuned by tune, and starts 150 requests a
// second through both gateway pods, clientsPerPod clients each (one request
// at a time), once every client gets v1.
func startGatewayRig(ctx context.Context, t *testing.T, clientsPerPod int, tune func(rev string, o *fakemodel.Options)) *gatewayRig {
	t.Helper()
	cl, kc := start(t)
	checkNoRouteOut(t)
	cfg := gatewayServiceConfig(t)
	b := newBG(t, kc)
	b.cfg = cfg
	startVersionedModels(ctx, t, kc, cfg.Name, cfg.Port, tune)
	gws := applyGateway(ctx, t, kc, cfg)
	rig := &gatewayRig{cl: cl, b: b, kc: kc, cfg: cfg}
	if _, err := rig.runner(2*time.Second).Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/embed:1", Replicas: 2}); err != nil {
		t.Fatalf("first rollout: %v", err)
	}
	tr, err := kc.ReadTraffic(ctx, cfg.Name, true)
	if err != nil || tr.String() != fmt.Sprintf("gateway (%d pods, %d ready)", gatewayReplicas, gatewayReplicas) {
		t.Fatalf("traffic mode %q (%v), want the gateway with its %d pods", tr, err, gatewayReplicas)
	}
	var urls []string
	for _, gp := range gws {
		urls = append(urls, "http://"+net.JoinHostPort(gp.ip, gp.listen)+"/v1/chat/completions")
	}
	rig.urls = urls
	rig.load = startLoad(t, urls, 150, clientsPerPod)
	waitUntil(ctx, t, "every client gets v1 through the gateway", func() bool { return rig.load.allSaw("v1") })
	return rig
}

// runner is a blue/green rollout runner whose watch window lasts window.
func (g *gatewayRig) runner(window time.Duration) *rollout.Runner {
	r := g.b.runner(os.Getpid())
	r.Config.Watch.Window = units.Duration(window)
	return r
}

// checkNoRouteOut fails unless the test's network namespace has no default
// route: nothing the test sends can leave the machine.
func checkNoRouteOut(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 1 && f[1] == "00000000" {
			t.Fatalf("the test's network namespace has a default route (%s): its traffic could leave the machine", line)
		}
	}
	if c, err := net.DialTimeout("tcp", "192.0.2.1:80", time.Second); err == nil {
		c.Close()
		t.Fatal("an address outside the namespace was reached")
	}
}

// gatewayServiceConfig is the cpu service as the fake model serves it.
func gatewayServiceConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := golden(t, "cpu")
	if !cfg.Gateway.OnKubernetes() {
		t.Fatal("the cpu service has no gateway on Kubernetes")
	}
	cfg.Health.Path, cfg.Health.ReadyPath = "/health", "/ready"
	return cfg
}

// applyGateway applies the rendered k8s/gateway objects (two gateway pods,
// the HPA's floor, set on the Deployment since no CPU metric moves the HPA
// here) and the admin token Secret, starts Redis and a gateway process for
// each gateway pod, and returns the gateway pods.
func applyGateway(ctx context.Context, t *testing.T, kc *k8s.Client, cfg *config.Config) []gatewayPod {
	t.Helper()
	objs, err := kc.GatewayServingManifests(ctx, cfg, "aideploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			if err := unstructured.SetNestedField(o.Object, int64(gatewayReplicas), "spec", "replicas"); err != nil {
				t.Fatal(err)
			}
		}
	}
	const token = "0123456789abcdef0123456789abcdef"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: k8s.GatewayName(cfg.Name) + "-admin"}, StringData: map[string]string{"token": token}}
	if _, err := kc.Clientset.CoreV1().Secrets(kc.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Apply(ctx, objs, false); err != nil {
		t.Fatalf("applying the rendered gateway objects: %v", err)
	}
	dns := startClusterDNS(t, kc)
	resolv := dns.resolvConf(t)
	for _, ip := range podIPs(ctx, t, kc, k8s.LabelName+"="+cfg.Name+"-redis", 1) {
		startRedisPod(ctx, t, ip)
	}
	var gws []gatewayPod
	for name, ip := range podIPs(ctx, t, kc, k8s.LabelName+"="+k8s.GatewayName(cfg.Name), gatewayReplicas) {
		gws = append(gws, startGatewayPod(ctx, t, kc, cfg.Name, name, ip, token, resolv))
	}
	return gws
}

func assertConfigMapServes(ctx context.Context, t *testing.T, kc *k8s.Client, cfg *config.Config, c rollout.Color) {
	t.Helper()
	cm, err := kc.Clientset.CoreV1().ConfigMaps(kc.Namespace).Get(ctx, k8s.GatewayName(cfg.Name), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "url: " + k8s.GatewayTarget(cfg, c); !strings.Contains(cm.Data["aideploy.yaml"], want) {
		t.Errorf("the gateway's ConfigMap lacks %q, so a gateway pod starting now would serve another colour", want)
	}
}

// watchSummary is the message of the last finished watch step.
func watchSummary(b *bg) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.events) - 1; i >= 0; i-- {
		if e := b.events[i]; e.Step == rollout.StepWatch && e.Kind == rollout.EventDone {
			return e.Message
		}
	}
	return ""
}

func waitUntil(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}
