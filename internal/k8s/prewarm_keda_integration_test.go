package k8s_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/k8s/k8stest"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// kedaStandIn does for ScaledObject name the one thing of KEDA's operator
// that prewarm relies on, the way KEDA v2 does it (controllers/keda/hpa.go,
// ScaledObject.GetHPAMinReplicas and GetHPAMaxReplicas): it keeps an HPA
// keda-hpa-<name> whose minReplicas is the ScaledObject's minReplicaCount (at
// least 1) and maxReplicas its maxReplicaCount (100 when unset), with its
// scaleTargetRef and behaviour, overwriting whatever else that HPA says on
// every pass. Its cpu and memory triggers become Resource metrics, as KEDA
// makes them; its Prometheus triggers would be External metrics served by
// KEDA's metrics API server, which the test cluster does not run, so they are
// left out. The HPA controller of the real control plane does the scaling.
func kedaStandIn(ctx context.Context, t *testing.T, kc *k8s.Client, name string) {
	t.Helper()
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			if err := syncKEDAHPA(ctx, kc, name); err != nil && ctx.Err() == nil {
				t.Errorf("KEDA stand-in: %v", err)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
}

// kedaSpec is the part of a ScaledObject the stand-in reads.
type kedaSpec struct {
	ScaleTargetRef  autoscalingv2.CrossVersionObjectReference `json:"scaleTargetRef"`
	MinReplicaCount *int32                                    `json:"minReplicaCount"`
	MaxReplicaCount *int32                                    `json:"maxReplicaCount"`
	Advanced        struct {
		HorizontalPodAutoscalerConfig struct {
			Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior"`
		} `json:"horizontalPodAutoscalerConfig"`
	} `json:"advanced"`
	Triggers []struct {
		Type     string            `json:"type"`
		Metadata map[string]string `json:"metadata"`
	} `json:"triggers"`
}

func syncKEDAHPA(ctx context.Context, kc *k8s.Client, name string) error {
	so, err := kc.Dynamic.Resource(k8s.ScaledObjects).Namespace(kc.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	var spec kedaSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(so.Object["spec"].(map[string]any), &spec); err != nil {
		return err
	}
	lo, hi := int32(1), int32(100)
	if spec.MinReplicaCount != nil && *spec.MinReplicaCount > 0 {
		lo = *spec.MinReplicaCount
	}
	if spec.MaxReplicaCount != nil {
		hi = *spec.MaxReplicaCount
	}
	var metrics []autoscalingv2.MetricSpec
	for _, tr := range spec.Triggers {
		if tr.Type != "cpu" && tr.Type != "memory" {
			continue
		}
		var v int32
		if err := json.Unmarshal([]byte(tr.Metadata["value"]), &v); err != nil {
			return err
		}
		metrics = append(metrics, autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name:   corev1.ResourceName(tr.Type),
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &v},
		}})
	}
	want := autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: spec.ScaleTargetRef, MinReplicas: &lo, MaxReplicas: hi, Metrics: metrics,
		Behavior: spec.Advanced.HorizontalPodAutoscalerConfig.Behavior,
	}
	hpas := kc.Clientset.AutoscalingV2().HorizontalPodAutoscalers(kc.Namespace)
	hpa, err := hpas.Get(ctx, "keda-hpa-"+name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = hpas.Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "keda-hpa-" + name}, Spec: want}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if *hpa.Spec.MinReplicas == lo && hpa.Spec.MaxReplicas == hi && hpa.Spec.ScaleTargetRef == want.ScaleTargetRef {
		return nil
	}
	hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, hpa.Spec.ScaleTargetRef = &lo, hi, want.ScaleTargetRef
	_, err = hpas.Update(ctx, hpa, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil // the next pass retries
	}
	return err
}

// fastScaleDown makes the autoscaler act on a lower recommendation at once,
// so that only the floor can hold replicas up: with the default 5-minute
// stabilization window a held count would prove nothing within a test.
func fastScaleDown(cfg *config.Config) {
	cfg.Autoscaling.ScaleDown = config.ScalingRule{StabilizationWindow: 0, Percent: 100, Period: units.Duration(15 * time.Second)}
}

// holdsFloor checks over six syncs of HPA hpa (30s of controller time at the
// test control plane's 5s period, counted by the controller's own reads of
// the metrics API) that Deployment deploy stays at want replicas, and that the
// HPA read its metric and was held up by its floor, not left idle.
func holdsFloor(ctx context.Context, t *testing.T, cl *k8stest.Cluster, kc *k8s.Client, hpa, deploy string, want int32) {
	t.Helper()
	start, t0 := cl.MetricsLists(), time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for cl.MetricsLists() < start+6 {
		d, err := kc.Clientset.AppsV1().Deployments(kc.Namespace).Get(ctx, deploy, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *d.Spec.Replicas != want {
			t.Fatalf("the HPA moved Deployment %s to %d replicas during prewarm", deploy, *d.Spec.Replicas)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the HPA controller synced %d times, not 6: %v", cl.MetricsLists()-start, ctx.Err())
		case <-tick.C:
		}
	}
	t.Logf("%s held at %d over 6 HPA syncs (%s)", deploy, want, time.Since(t0).Round(100*time.Millisecond))
	h, err := kc.Clientset.AutoscalingV2().HorizontalPodAutoscalers(kc.Namespace).Get(ctx, hpa, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	limited := false
	for _, c := range h.Status.Conditions {
		if c.Type == autoscalingv2.ScalingLimited && c.Status == corev1.ConditionTrue && c.Reason == "TooFewReplicas" {
			limited = true
		}
	}
	if len(h.Status.CurrentMetrics) == 0 || !limited {
		t.Errorf("HPA %s status %+v: want metrics read and ScalingLimited/TooFewReplicas, or the hold proves nothing", hpa, h.Status)
	}
}

func scaledObjectBounds(ctx context.Context, t *testing.T, kc *k8s.Client, name string) (int64, int64, bool) {
	t.Helper()
	so, err := kc.Dynamic.Resource(k8s.ScaledObjects).Namespace(kc.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lo, _, _ := unstructured.NestedInt64(so.Object, "spec", "minReplicaCount")
	hi, _, _ := unstructured.NestedInt64(so.Object, "spec", "maxReplicaCount")
	_, recorded := so.GetAnnotations()[k8s.AnnotationPrewarm]
	return lo, hi, recorded
}

// waitReplicas waits until Deployment deploy asks for want replicas.
func waitReplicas(ctx context.Context, t *testing.T, kc *k8s.Client, deploy string, want int32, d time.Duration) {
	t.Helper()
	until(t, d, "Deployment "+deploy+" back at its floor", func() bool {
		dep, err := kc.Clientset.AppsV1().Deployments(kc.Namespace).Get(ctx, deploy, metav1.GetOptions{})
		return err == nil && *dep.Spec.Replicas == want
	})
}

// prewarm --replicas 10 --wait on a KEDA ScaledObject: the command raises
// minReplicaCount (recording 2–12), the HPA KEDA derives from it scales the
// Deployment to 10 ready pods and holds them over six syncs with low CPU; a
// re-apply keeps the raised floor; --restore puts 2 back, after which the same
// HPA scales down to 2, so it was the floor that held them; a second
// --restore finds nothing to do.
func TestIntegrationK8sPrewarmScaledObject(t *testing.T) {
	cl, kc := start(t)
	waitGPUsFree(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := golden(t, "keda")
	fastScaleDown(cfg)
	deleteDeployments(t, kc)
	cl.SetPodCPU("", 100) // 2.5% of the 4 cores requested: the cpu trigger wants fewer pods
	objs := runnable(t, cfg, rollout.Blue, nil)
	if _, err := kc.Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	kedaStandIn(ctx, t, kc, cfg.Name)
	if err := kc.WaitScaled(ctx, cfg.Name, 2, nil); err != nil {
		t.Fatalf("waiting for the first 2 pods: %v", err)
	}

	run := commandLine(ctx, t, cl.Kubeconfig, kc, "keda", "rollout:\n  target: k8s\n")
	out, errOut, code := run("prewarm", "--replicas", "10", "--wait", "--output", "json")
	var res struct {
		HPA          string `json:"hpa"`
		ScaledObject string `json:"scaledObject"`
		Action       string `json:"action"`
		Ready        int    `json:"ready"`
		Original     struct{ MinReplicas, MaxReplicas int }
	}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("prewarm --wait: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if res.ScaledObject != cfg.Name || res.HPA != "" || res.Action != "raised" || res.Ready != 10 || res.Original.MinReplicas != 2 || res.Original.MaxReplicas != 12 {
		t.Errorf("prewarm --output json: %+v", res)
	}
	if !strings.Contains(errOut, "ScaledObject chat floor raised to 10 (was 2, ceiling 12)") || !strings.Contains(errOut, "10/10 ready") {
		t.Errorf("prewarm lines:\n%s", errOut)
	}
	if lo, hi, rec := scaledObjectBounds(ctx, t, kc, cfg.Name); lo != 10 || hi != 12 || !rec {
		t.Errorf("ScaledObject bounds %d–%d, record %v; want 10–12 recorded", lo, hi, rec)
	}
	deploy := k8s.ColorName(cfg.Name, rollout.Blue)
	holdsFloor(ctx, t, cl, kc, "keda-hpa-"+cfg.Name, deploy, 10)

	// status shows the ScaledObject as the autoscaler, with the raised floor.
	out, _, code = run("status")
	for _, want := range []string{
		"KEDA:       ScaledObject chat on chat-blue, floor 10, ceiling 12, current 10, desired 10 (HPA keda-hpa-chat)",
		"Prewarm:    floor 10 since ", "until aideploy prewarm --restore (then 2–12)",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, lacks %q\n%s", code, want, out)
		}
	}
	if strings.Contains(out, "HPA:") {
		t.Errorf("status shows an HPA line for KEDA's HPA:\n%s", out)
	}

	// apply (and a rollout's switch) carries the raised floor over the file's.
	again := runnable(t, cfg, rollout.Blue, nil)
	if err := kc.CarryPrewarm(ctx, again); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Apply(ctx, again, false); err != nil {
		t.Fatal(err)
	}
	if lo, _, _ := scaledObjectBounds(ctx, t, kc, cfg.Name); lo != 10 {
		t.Errorf("a re-apply reset minReplicaCount to %d, want 10", lo)
	}

	out, _, code = run("prewarm", "--restore")
	if code != 0 || !strings.Contains(out, "ScaledObject chat restored to minReplicaCount 2, maxReplicaCount 12") {
		t.Errorf("prewarm --restore: exit %d\n%s", code, out)
	}
	if lo, hi, rec := scaledObjectBounds(ctx, t, kc, cfg.Name); lo != 2 || hi != 12 || rec {
		t.Errorf("restored bounds %d–%d, record %v; want 2–12 and no record", lo, hi, rec)
	}
	waitReplicas(ctx, t, kc, deploy, 2, 90*time.Second)
	out, _, code = run("prewarm", "--restore")
	if code != 0 || !strings.Contains(out, "ScaledObject chat has no prewarm to restore") {
		t.Errorf("second prewarm --restore: exit %d\n%s", code, out)
	}
}

// A rollout under a prewarmed ScaledObject: the new colour starts at the
// raised minReplicaCount, the ScaledObject then targets the new colour's
// Deployment, and its raised floor and record survive the switch.
func TestIntegrationK8sRolloutKeepsScaledObjectPrewarm(t *testing.T) {
	cl, kc := start(t)
	cl.SetPodCPU("", 100)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := newBG(t, kc)
	b.cfg = golden(t, "cpu") // CPU pods: two colours of 10 fit beside each other
	a := &b.cfg.Autoscaling
	a.Enabled, a.Engine, a.PrometheusURL, a.MinReplicas, a.MaxReplicas = true, config.EngineKEDA, config.DefaultPrometheusURL, 2, 20
	a.CPUTarget, a.MemoryTarget, a.RequestsInFlight, a.QueueDepth = 70, 0, 0, 0
	first, err := b.rollout(ctx, "registry.example.com/app:1", 2)
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	kedaStandIn(ctx, t, kc, b.cfg.Name)
	if _, err := kc.Prewarm(ctx, b.cfg.Name, 10, time.Time{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := kc.WaitScaled(ctx, b.cfg.Name, 10, nil); err != nil {
		t.Fatalf("prewarm: %v", err)
	}

	res, err := b.rollout(ctx, "registry.example.com/app:2", 2)
	if err != nil {
		t.Fatalf("rollout after prewarm: %v", err)
	}
	if res.Journal.To.Color == first.Journal.To.Color || res.Journal.To.Replicas < 10 {
		t.Errorf("new colour %s started with %d replicas, want another colour than %s at the floor 10 or more", res.Journal.To.Color, res.Journal.To.Replicas, first.Journal.To.Color)
	}
	so, err := kc.Dynamic.Resource(k8s.ScaledObjects).Namespace(kc.Namespace).Get(ctx, b.cfg.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	target, _, _ := unstructured.NestedString(so.Object, "spec", "scaleTargetRef", "name")
	if want := k8s.ColorName(b.cfg.Name, res.Journal.To.Color); target != want {
		t.Errorf("ScaledObject targets %s after the switch, want %s", target, want)
	}
	if lo, hi, rec := scaledObjectBounds(ctx, t, kc, b.cfg.Name); lo != 10 || hi != 20 || !rec {
		t.Errorf("ScaledObject after the rollout: %d–%d, record %v; want the floor 10 and the record kept", lo, hi, rec)
	}
}
