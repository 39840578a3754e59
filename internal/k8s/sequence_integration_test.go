package k8s_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
)

// sequenceConfig is the aideploy.yaml of the command-line sequence test.
// model.volume is emptyDir: kwok binds no PersistentVolumeClaim, and the
// rendered claim would keep every pod Pending. The warm-up timeout is short:
// nothing listens on the simulated pods' addresses, so the rollout's warm-up
// fails after its create and health steps, as the did.
const sequenceConfig = `apiVersion: aideploy.dev/v1
name: chat
image: registry.example.com/chat:1.0.0
model:
  params: 8B
  dtype: bf16
  volume: emptyDir
resources:
  cpu: "2"
  memory: 16Gi
  gpus: 1
rollout:
  target: k8s
  startupBudget: 1m
  warmup:
    timeout: 3s
`

// The exact sequence, as commands: `aideploy apply` creates
// chat-blue; `aideploy rollout` of a version that fails at warm-up rolls
// back; `aideploy status` still shows the applied blue serving, and the
// Deployment and the Service's selector say the same.
func TestIntegrationK8sCommandSequenceApplyFailedRolloutStatus(t *testing.T) {
	cl, kc := start(t)
	waitGPUsFree(t, kc)
	deleteDeployments(t, kc)
	cl.SetPodCPU("", 100)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "aideploy.yaml")
	if err := os.WriteFile(path, []byte(sequenceConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, int) {
		return aideploy(ctx, t, cl.Kubeconfig, kc.Namespace, path, args...)
	}

	if out, _, code := run("apply"); code != 0 || !strings.Contains(out, "Deployment/chat-blue created") {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	blue := k8s.ColorName("chat", rollout.Blue)
	var want int32
	until(t, time.Minute, "the applied chat-blue ready", func() bool {
		d, err := kc.Clientset.AppsV1().Deployments(kc.Namespace).Get(ctx, blue, metav1.GetOptions{})
		if err != nil || d.Spec.Replicas == nil {
			return false
		}
		want = *d.Spec.Replicas
		return want > 0 && d.Status.ReadyReplicas == want
	})

	out, errOut, code := run("rollout", "--image", "registry.example.com/chat:2.0.0", "--yes")
	if code == 0 || !strings.Contains(out+errOut, "from blue r0") || !strings.Contains(out+errOut, "warm-up") {
		t.Errorf("rollout of a version that fails at warm-up: exit %d, want a failure planned from the applied blue r0\n%s%s", code, out, errOut)
	}

	out, _, code = run("status")
	if code != 0 || !regexp.MustCompile(`(?m)^Active: +blue$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^[├└]── blue r0 registry.example.com/chat:1.0.0  \d+/\d+ ready \(active\)$`).MatchString(out) {
		t.Errorf("status after the failed rollout: exit %d, want the applied blue r0 active and ready\n%s", code, out)
	}
	if regexp.MustCompile(`(?m)^[├└]── green`).MatchString(out) {
		t.Errorf("status after the failed rollout still shows a green colour:\n%s", out)
	}
	d, err := kc.Clientset.AppsV1().Deployments(kc.Namespace).Get(ctx, blue, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the applied Deployment is gone after the failed rollout: %v", err)
	}
	if d.Status.ReadyReplicas != want {
		t.Errorf("chat-blue has %d ready replicas after the failed rollout, want %d", d.Status.ReadyReplicas, want)
	}
	svc, err := kc.Clientset.CoreV1().Services(kc.Namespace).Get(ctx, "chat", metav1.GetOptions{})
	if err != nil || svc.Spec.Selector[k8s.LabelColor] != string(rollout.Blue) {
		t.Errorf("Service chat after the failed rollout: %v, selector %v; want color=blue", err, svc.Spec.Selector)
	}
	if _, err := kc.Clientset.AppsV1().Deployments(kc.Namespace).Get(ctx, k8s.ColorName("chat", rollout.Green), metav1.GetOptions{}); err == nil {
		t.Error("chat-green outlived the failed rollout that created it")
	}
}

// With the default model.volume (pvc) and a cluster where nothing binds the
// rendered claim, `aideploy apply` gives Pending pods: preflight names the
// reason status shows and fails. Once a PersistentVolume that fits the claim
// exists, the claim binds, the same pods schedule and become ready, and
// preflight passes.
func TestIntegrationK8sPreflightNamesWhyPodsPend(t *testing.T) {
	cl, kc := start(t)
	waitGPUsFree(t, kc)
	deleteDeployments(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "aideploy.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(sequenceConfig, "  volume: emptyDir\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, int) {
		return aideploy(ctx, t, cl.Kubeconfig, kc.Namespace, path, args...)
	}
	if out, _, code := run("apply"); code != 0 || !strings.Contains(out, "PersistentVolumeClaim/chat-models created") {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	var pending []k8s.PendingPod
	until(t, time.Minute, "pods unschedulable for the unbound claim", func() bool {
		var err error
		pending, err = kc.PendingPods(ctx, "chat")
		return err == nil && len(pending) > 0
	})
	if !strings.Contains(pending[0].Reason, "PersistentVolumeClaims") {
		t.Errorf("pending reason %q, want the unbound claim", pending[0].Reason)
	}
	out, _, code := run("preflight", "--k8s", "--output", "json")
	if code != 1 || !strings.Contains(out, `"id": "k8s.pending-pods"`) || !strings.Contains(out, pending[0].Reason) ||
		!strings.Contains(out, "create the claim") {
		t.Errorf("preflight with pods pending on the claim: exit %d, want 1 naming %q and the remedy\n%s", code, pending[0].Reason, out)
	}
	// The test cluster has no storage class: the claim binds only to a volume made for it.
	if !strings.Contains(out, `"id": "k8s.model-storage"`) || !strings.Contains(out, "no default storage class (classes: none)") {
		t.Errorf("preflight with the claim unbound and no storage class: want the model-storage check to say so\n%s", out)
	}
	out, _, _ = run("status")
	if !strings.Contains(out, pending[0].Reason) {
		t.Errorf("status does not name the reason preflight gives, %q:\n%s", pending[0].Reason, out)
	}

	// A volume that fits the claim as rendered: no class, ReadWriteMany, its size.
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: kc.Namespace + "-models"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("100Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/models"}},
		},
	}
	if _, err := kc.Clientset.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kc.Clientset.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
	})
	until(t, 2*time.Minute, "the claim bound and chat-blue ready", func() bool {
		d, err := kc.Clientset.AppsV1().Deployments(kc.Namespace).Get(ctx, "chat-blue", metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas > 0 && d.Status.ReadyReplicas == *d.Spec.Replicas
	})
	out, _, _ = run("preflight", "--k8s", "--output", "json")
	if !strings.Contains(out, "no pod waits for the scheduler") || !strings.Contains(out, "claim chat-models bound to volume "+pv.Name) {
		t.Errorf("preflight once the claim bound: want the pending-pods and model-storage checks to pass\n%s", out)
	}
}
