package k8s

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
)

func gatewayConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("../render/testdata/cpu/aideploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Gateway.OnKubernetes() {
		t.Fatal("the cpu golden configuration has no gateway on Kubernetes")
	}
	return cfg
}

// status names the mode a rollout switches traffic in, and why it is not the
// gateway when the gateway is configured but not applied.
func TestReadTraffic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gw := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "chat-gateway", Namespace: "serving"}}
	ready := corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	pod := func(name string, st corev1.PodStatus) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "serving", Labels: map[string]string{LabelName: "chat-gateway"}}, Status: st}
	}
	for _, c := range []struct {
		name    string
		enabled bool
		objs    []any
		want    string
	}{
		{"gateway off", false, []any{gw}, "Service selector"},
		{"gateway not applied", true, nil, "Service selector (gateway.enabled, but no Deployment chat-gateway: aideploy apply creates it)"},
		{"gateway pods", true, []any{gw, pod("a", ready), pod("b", corev1.PodStatus{})}, "gateway (2 pods, 1 ready)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := fake.NewClientset()
			for _, o := range c.objs {
				var err error
				switch o := o.(type) {
				case *appsv1.Deployment:
					_, err = cs.AppsV1().Deployments("serving").Create(ctx, o, metav1.CreateOptions{})
				case *corev1.Pod:
					_, err = cs.CoreV1().Pods("serving").Create(ctx, o, metav1.CreateOptions{})
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			v, err := (&Client{Namespace: "serving", Clientset: cs}).ReadTraffic(ctx, "chat", c.enabled)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.String(); got != c.want {
				t.Errorf("traffic %q, want %q", got, c.want)
			}
		})
	}
}

// The ConfigMap sends the default pool to the colour that serves; nothing
// else in the gateway's objects depends on it, so a switch rolls no pod.
func TestGatewayManifestsFollowTheServingColour(t *testing.T) {
	t.Parallel()
	cfg := gatewayConfig(t)
	blue, err := GatewayManifests(cfg, "aideploy.yaml", rollout.Blue)
	if err != nil {
		t.Fatal(err)
	}
	green, err := GatewayManifests(cfg, "aideploy.yaml", rollout.Green)
	if err != nil {
		t.Fatal(err)
	}
	if len(blue) != len(green) || len(blue) == 0 {
		t.Fatalf("%d objects for blue, %d for green", len(blue), len(green))
	}
	for i := range blue {
		b, g := blue[i], green[i]
		doc := func(o map[string]any) string { s, _ := o["data"].(map[string]any)["aideploy.yaml"].(string); return s }
		if b.GetKind() == "ConfigMap" && b.GetName() == GatewayName(cfg.Name) {
			for _, c := range []struct {
				doc   string
				color rollout.Color
			}{{doc(b.Object), rollout.Blue}, {doc(g.Object), rollout.Green}} {
				want := "url: " + GatewayTarget(cfg, c.color)
				if !strings.Contains(c.doc, want) || strings.Count(c.doc, "dns+http://") != 1 {
					t.Errorf("ConfigMap for %s lacks %q or names another target:\n%s", c.color, want, c.doc)
				}
			}
			continue
		}
		if b.GetKind() != g.GetKind() || b.GetName() != g.GetName() || !equalObjects(b.Object, g.Object) {
			t.Errorf("%s/%s differs between the colours", b.GetKind(), b.GetName())
		}
	}
	off := *cfg
	no := false
	off.Gateway.Enabled = &no
	if objs, err := GatewayManifests(&off, "aideploy.yaml", rollout.Green); err != nil || objs != nil {
		t.Errorf("gateway.enabled: false rendered %d objects (%v)", len(objs), err)
	}
}

func equalObjects(a, b map[string]any) bool {
	return reflect.DeepEqual(a, b)
}

// The figures of a gateway pod are those of the targets that serve: the
// colour that left (draining) counts neither in requests nor as a target,
// nor in the time to first token.
func TestPoolStatsCountsServingTargets(t *testing.T) {
	t.Parallel()
	pool := adminapi.Pool{Targets: []adminapi.Target{
		{URL: "http://10.2.0.5:8000", Healthy: true, Group: "green"},
		{URL: "http://10.2.0.6:8000", Healthy: true, Breaker: "open", Group: "green"},
		{URL: "http://10.2.0.2:8000", Healthy: true, Draining: true, Group: "blue"},
	}}
	st := adminapi.Stats{Requests: 1000, Errors: 500, ByTarget: []adminapi.TargetStats{
		{URL: "http://10.2.0.5:8000", Requests: 40, Errors: 2, P99Seconds: 0.2},
		{URL: "http://10.2.0.6:8000", Requests: 30, Errors: 30, P99Seconds: 0.05},
		{URL: "http://10.2.0.2:8000", Requests: 900, Errors: 0, P99Seconds: 3},
	}, ByGroup: []adminapi.GroupStats{
		{Group: "green", Requests: 70, TTFTP95Seconds: 0.04},
		{Group: "blue", Requests: 900, TTFTP95Seconds: 2.5},
	}}
	got := poolStats(pool, st)
	want := rollout.Stats{Requests: 70, Errors: 32, P99: 200 * time.Millisecond, TTFTP95: 40 * time.Millisecond, Targets: 2, Unhealthy: 1}
	if got != want {
		t.Errorf("poolStats = %+v, want %+v", got, want)
	}
}
