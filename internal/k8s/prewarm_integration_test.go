package k8s_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/k8s/k8stest"
	"github.com/aideploy/aideploy/internal/rollout"
)

// deployGPU1 applies the gpu1 golden service (1 GPU a pod, HPA 2–20) and
// waits for its 2 pods.
func deployGPU1(ctx context.Context, t *testing.T, cl *k8stest.Cluster, kc *k8s.Client) string {
	t.Helper()
	cfg := golden(t, "gpu1")
	deleteDeployments(t, kc)
	// Low CPU: left alone, the HPA would scale down to its floor.
	cl.SetPodCPU("", 100)
	if _, err := kc.Apply(ctx, runnable(t, cfg, rollout.Blue, nil), false); err != nil {
		t.Fatal(err)
	}
	if err := kc.WaitScaled(ctx, cfg.Name, 2, nil); err != nil {
		t.Fatalf("waiting for the first 2 pods: %v", err)
	}
	return cfg.Name
}

func hpaBounds(ctx context.Context, t *testing.T, kc *k8s.Client, name string) (int32, int32) {
	t.Helper()
	h, err := kc.Clientset.AutoscalingV2().HorizontalPodAutoscalers(kc.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *h.Spec.MinReplicas, h.Spec.MaxReplicas
}

// prewarm --replicas 10 --wait on an HPA, 2 → 10 with 10 GPUs free: all
// ready; the HPA keeps 10 over six of its syncs although CPU is low and it
// may scale down at once (a prewarm that only scaled the Deployment would be
// undone); --restore brings back 2, after which the same HPA scales down to
// 2, so it was the floor that held them; restoring again changes nothing.
func TestIntegrationK8sPrewarmReadyHoldsRestores(t *testing.T) {
	cl, kc := start(t)
	waitGPUsFree(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := golden(t, "gpu1")
	fastScaleDown(cfg)
	// CPU alone (golden adds 70%): the test cluster serves no custom metrics,
	// and an HPA with a metric it cannot read never scales down, so the
	// requests-per-second metric would hold any count, floor or not.
	cfg.Autoscaling.RequestsPerSecond = 0
	deleteDeployments(t, kc)
	cl.SetPodCPU("", 100)
	if _, err := kc.Apply(ctx, runnable(t, cfg, rollout.Blue, nil), false); err != nil {
		t.Fatal(err)
	}
	if err := kc.WaitScaled(ctx, cfg.Name, 2, nil); err != nil {
		t.Fatalf("waiting for the first 2 pods: %v", err)
	}
	name := cfg.Name

	t0 := time.Now()
	run := commandLine(ctx, t, cl.Kubeconfig, kc, "gpu1", "rollout:\n  target: k8s\n")
	out, errOut, code := run("prewarm", "--replicas", "10", "--wait", "--output", "json")
	var res struct {
		HPA      string `json:"hpa"`
		Ready    int    `json:"ready"`
		Original k8s.PrewarmRecord
	}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("prewarm --wait: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if res.HPA != name || res.Ready != 10 || res.Original.MinReplicas != 2 || res.Original.MaxReplicas != 20 {
		t.Errorf("prewarm --output json: %+v, want HPA %s 10 ready, recorded 2–20", res, name)
	}
	if !strings.Contains(errOut, "HPA chat floor raised to 10 (was 2, ceiling 20)") || !strings.Contains(errOut, "10/10 ready") {
		t.Errorf("prewarm lines:\n%s", errOut)
	}
	t.Logf("10/10 ready %s after prewarm", time.Since(t0).Round(100*time.Millisecond))
	holdsFloor(ctx, t, cl, kc, name, name+"-blue", 10)

	for i := range 2 {
		rec, err := kc.Restore(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if (rec == nil) != (i == 1) {
			t.Errorf("restore %d returned %v", i+1, rec)
		}
		if lo, hi := hpaBounds(ctx, t, kc, name); lo != 2 || hi != 20 {
			t.Errorf("after restore %d: bounds %d–%d, want 2–20", i+1, lo, hi)
		}
	}
	waitReplicas(ctx, t, kc, name+"-blue", 2, 90*time.Second)
}

// Prewarm 2 → 10 with 6 GPUs free: the reason and the numbers within 10s.
func TestIntegrationK8sPrewarmMissingCapacity(t *testing.T) {
	cl, kc := start(t)
	waitGPUsFree(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The hog first: it needs a whole 4-GPU node.
	deleteDeployments(t, kc)
	hog(ctx, t, kc, 4)
	name := deployGPU1(ctx, t, cl, kc)

	t0 := time.Now()
	if _, err := kc.Prewarm(ctx, name, 10, time.Time{}, t0); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	err := kc.WaitScaled(wctx, name, 10, nil)
	var ce *k8s.CapacityError
	if !errors.As(err, &ce) {
		t.Fatalf("WaitScaled: %v, want a capacity error within 10s", err)
	}
	t.Logf("after %s: %v", time.Since(t0).Round(100*time.Millisecond), ce)
	msg := ce.Error()
	for _, want := range []string{"of 10 pending: Insufficient nvidia.com/gpu", "6 GPUs free, 10 needed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

// Prewarm is one update: re-running it converges and keeps the original
// bounds of the first run.
func TestIntegrationK8sPrewarmRerunKeepsOriginal(t *testing.T) {
	t.Parallel()
	_, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := golden(t, "gpu4-rps")
	objs := runnable(t, cfg, rollout.Blue, nil)
	if _, err := kc.Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	lo0, hi0 := hpaBounds(ctx, t, kc, cfg.Name)
	for _, n := range []int32{3, 4, int32(hi0) + 5} {
		if _, err := kc.Prewarm(ctx, cfg.Name, n, time.Time{}, time.Now()); err != nil {
			t.Fatal(err)
		}
		lo, hi := hpaBounds(ctx, t, kc, cfg.Name)
		if lo != n || hi != max(hi0, n) {
			t.Errorf("prewarm %d: bounds %d–%d", n, lo, hi)
		}
	}
	if _, err := kc.Restore(ctx, cfg.Name); err != nil {
		t.Fatal(err)
	}
	if lo, hi := hpaBounds(ctx, t, kc, cfg.Name); lo != lo0 || hi != hi0 {
		t.Errorf("restored %d–%d, want %d–%d", lo, hi, lo0, hi0)
	}
}

// hog takes gpus GPUs with one pod outside the service.
func hog(ctx context.Context, t *testing.T, kc *k8s.Client, gpus int64) {
	t.Helper()
	labels := map[string]string{"app": "hog"}
	q := *resource.NewQuantity(gpus, resource.DecimalSI)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hog"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"nvidia.com/gpu.present": "true"},
					Tolerations:  []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{Name: "hog", Image: "hog:1",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{k8s.GPU: q}, Limits: corev1.ResourceList{k8s.GPU: q}}}},
				},
			},
		},
	}
	if _, err := kc.Clientset.AppsV1().Deployments(kc.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		capa, err := kc.ReadCapacity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if capa.UsedBy(kc.Namespace, labels) == gpus {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the hog pod never got its %d GPUs", gpus)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
