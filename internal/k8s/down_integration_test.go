package k8s_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// down --target k8s refuses while a live rollout holds the lock, then deletes
// everything aideploy made for the service (both colours, Services, HPA or
// KEDA ScaledObject, PDB, prewarm CronJobs and their RBAC, history, Lease)
// and nothing else, and
// returns only once the service's pods are gone, their GPUs free.
func TestIntegrationK8sDown(t *testing.T) {
	t.Parallel()
	cl, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newBG(t, kc)
	b.cfg = golden(t, "cpu")
	// The pods stay, terminating, for their whole grace period, as a model
	// server that finishes long generations after SIGTERM does.
	b.podAnnotations = map[string]string{"aideploy.test/terminate": "grace"}
	// Their grace period comes from aideploy.yaml: no preStop pause, a 3s drain.
	b.cfg.Rollout.PreStopDelay, b.cfg.Rollout.DrainTimeout = 0, units.Duration(3*time.Second)
	if _, err := b.rollout(ctx, "registry.example.com/app:1", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.rollout(ctx, "registry.example.com/app:2", 1); err != nil {
		t.Fatal(err)
	}
	run := commandLine(ctx, t, cl.Kubeconfig, kc, "cpu",
		"prewarm:\n  - name: launch\n    start: 2026-12-24T18:00\n    end: 2026-12-24T22:00\n    replicas: 3\n")
	out, _, code := run("render", "prewarm", "--stdout")
	if code != 0 {
		t.Fatalf("render prewarm: exit %d", code)
	}
	cronObjs, err := k8s.Decode([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Apply(ctx, cronObjs, false); err != nil {
		t.Fatal(err)
	}
	// The ScaledObject apply makes with autoscaling.engine keda, for this service.
	kedaCfg := golden(t, "keda")
	kedaCfg.Name = b.cfg.Name
	kedaObjs, err := k8s.Manifests(kedaCfg, "aideploy.yaml", rollout.Green)
	if err != nil {
		t.Fatal(err)
	}
	var scaledObject []*unstructured.Unstructured
	for _, o := range kedaObjs {
		if o.GetKind() == k8s.KindScaledObject {
			scaledObject = append(scaledObject, o)
		}
	}
	if len(scaledObject) != 1 {
		t.Fatalf("the keda preset renders %d ScaledObjects, want 1", len(scaledObject))
	}
	if _, err := kc.Apply(ctx, scaledObject, false); err != nil {
		t.Fatal(err)
	}
	// A bystander with the service's name label, not made by aideploy.
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: b.cfg.Name + "-notes", Labels: map[string]string{k8s.LabelName: b.cfg.Name}}}
	if _, err := kc.Clientset.CoreV1().ConfigMaps(kc.Namespace).Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The gateway's objects, as apply makes them, and the operator's admin Secret.
	gw, err := kc.GatewayServingManifests(ctx, b.cfg, "aideploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Apply(ctx, gw, false); err != nil {
		t.Fatal(err)
	}
	adminSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: k8s.GatewayName(b.cfg.Name) + "-admin"}, StringData: map[string]string{"token": "t"}}
	if _, err := kc.Clientset.CoreV1().Secrets(kc.Namespace).Create(ctx, adminSecret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	holder := b.runner(os.Getpid()).Holder
	holder.Op, holder.Image, holder.Since = rollout.OpRollout, "registry.example.com/app:3", time.Now()
	p := k8s.NewPlatform(kc, k8s.Options{Config: b.cfg})
	if err := p.Lock(ctx, holder, false); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run("down", "--target", "k8s", "--yes")
	if code == 0 || !strings.Contains(errOut, holder.Owner) {
		t.Errorf("down under a live lock: exit %d\n%s", code, errOut)
	}
	if n := len(owned(ctx, t, kc, b.cfg.Name)); n == 0 {
		t.Fatal("down under a live lock deleted objects")
	}

	out, _, code = run("down", "--target", "k8s", "--yes", "--force-unlock", "--output", "json")
	var res struct {
		Service     string `json:"service"`
		Target      string `json:"target"`
		Removed     int    `json:"removed"`
		Terminating int    `json:"terminating"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("down: exit %d\n%s", code, out)
	}
	// 2 Deployments, 2 Services, PDB, 2 CronJobs, ServiceAccount, Role,
	// RoleBinding, the history ConfigMap and the Lease (cpu has no HPA), the
	// ScaledObject, and the gateway's objects.
	if want := 13 + len(gw); res.Service != b.cfg.Name || res.Target != "k8s" || res.Removed != want {
		t.Errorf("down said %+v, want %d objects of %s on k8s", res, want, b.cfg.Name)
	}
	if len(gw) < 10 {
		t.Errorf("the gateway has %d objects, want its Deployment, ConfigMap, HPA, PDB, NetworkPolicy, 3 Services and Redis' Service and StatefulSet", len(gw))
	}
	pods, err := kc.Clientset.CoreV1().Pods(kc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: k8s.LabelName + "=" + b.cfg.Name})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) > 0 || res.Terminating != 0 {
		t.Errorf("down returned with %d pod(s) left (it said %d terminating)", len(pods.Items), res.Terminating)
	}
	if left := owned(ctx, t, kc, b.cfg.Name); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if _, err := kc.Clientset.CoordinationV1().Leases(kc.Namespace).Get(ctx, b.cfg.Name+"-rollout", metav1.GetOptions{}); err == nil {
		t.Error("the rollout Lease is still there")
	}
	if _, err := kc.Dynamic.Resource(k8s.ScaledObjects).Namespace(kc.Namespace).Get(ctx, b.cfg.Name, metav1.GetOptions{}); err == nil {
		t.Error("the ScaledObject is still there")
	}
	if _, err := kc.Clientset.CoreV1().ConfigMaps(kc.Namespace).Get(ctx, other.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("down deleted a ConfigMap aideploy did not make: %v", err)
	}
	for _, o := range gw {
		m, err := kc.Mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
		if err != nil {
			t.Fatal(err)
		}
		live, err := kc.Dynamic.Resource(m.Resource).Namespace(kc.Namespace).Get(ctx, o.GetName(), metav1.GetOptions{})
		if err == nil && live.GetDeletionTimestamp() == nil {
			t.Errorf("down left the gateway's %s/%s", o.GetKind(), o.GetName())
		}
	}
	if _, err := kc.Clientset.CoreV1().Secrets(kc.Namespace).Get(ctx, adminSecret.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("down deleted the admin token Secret the operator made: %v", err)
	}
	out, _, code = run("down", "--target", "k8s", "--yes")
	if code != 0 || !strings.Contains(out, "removed 0 object(s) of "+b.cfg.Name) {
		t.Errorf("second down: exit %d\n%s", code, out)
	}
}

// owned lists the objects labelled as aideploy's for svc that are not being deleted.
func owned(ctx context.Context, t *testing.T, kc *k8s.Client, svc string) []string {
	t.Helper()
	sel := k8s.LabelName + "=" + svc + ",app.kubernetes.io/managed-by=aideploy"
	var names []string
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "services"}, {Group: "apps", Version: "v1", Resource: "deployments"},
		{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}, {Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
		{Group: "batch", Version: "v1", Resource: "cronjobs"}, {Version: "v1", Resource: "configmaps"},
		{Version: "v1", Resource: "serviceaccounts"}, {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
		k8s.ScaledObjects,
	} {
		list, err := kc.Dynamic.Resource(gvr).Namespace(kc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Items {
			if o.GetDeletionTimestamp() == nil {
				names = append(names, gvr.Resource+"/"+o.GetName())
			}
		}
	}
	return names
}
