package preflight

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/aideploy/aideploy/internal/k8s/k8stest"
)

// The control plane has one GPU node with 4 GPUs (H100 80GB labels) and one CPU node.
func TestMain(m *testing.M) { k8stest.Main(m, k8stest.Options{GPUNodes: []int{4}}) }

// clusterRun runs only the Kubernetes group, required, against the real API server.
func clusterRun(t *testing.T, cs kubernetes.Interface, req Requirements) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{Req: req, Run: Groups{Kubernetes: true}, Require: Groups{Kubernetes: true},
		Kubernetes: func() (kubernetes.Interface, error) { return cs, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if c := findID(rep, "k8s.cluster"); c.Status != Pass || !strings.HasPrefix(c.Measured, "Kubernetes v1.") {
		t.Fatalf("cluster: %+v", c)
	}
	return rep
}

func gpuModel() ModelSpec {
	return ModelSpec{Params: 8e9, DType: "bf16", ContextLength: 8192, Concurrency: 16}
}

func TestIntegrationK8sPreflightTooFewGPUs(t *testing.T) {
	c := k8stest.Start(t)
	// 2 replicas × 4 GPUs, both colours at once during blue/green: 16 GPUs on a 4-GPU cluster.
	rep := clusterRun(t, c.Clientset, Requirements{Model: gpuModel(), GPUsPerReplica: 4, Replicas: 2, BlueGreen: true})
	got := findID(rep, "k8s.gpu-capacity")
	if got.Status != Fail ||
		got.Measured != "4 free GPU(s) on 1 schedulable node(s): room for 1 replica(s)" ||
		got.Threshold != ">= 4 replica(s) × 4 GPU(s) (blue/green runs both colours)" || got.Remedy == "" {
		t.Errorf("capacity: %+v", got)
	}
	if !rep.Failed(false) {
		t.Error("a cluster with too few GPUs must fail the run")
	}
}

func TestIntegrationK8sPreflightMissingCustomMetricsAPI(t *testing.T) {
	c := k8stest.Start(t)
	rep := clusterRun(t, c.Clientset, Requirements{Model: gpuModel(), GPUsPerReplica: 1, Replicas: 1,
		Autoscaling: AutoscalingSpec{Enabled: true, Metrics: []string{"cpu", "http_requests_per_second"}}})
	// The control plane serves metrics.k8s.io (the test's metrics server) but no custom metrics adapter.
	if got := findID(rep, "k8s.metrics-api"); got.Status != Pass || got.Measured != "metrics.k8s.io served" {
		t.Errorf("metrics API: %+v", got)
	}
	got := findID(rep, "k8s.custom-metrics-api")
	if got.Status != Fail || got.Measured != "custom.metrics.k8s.io not served" ||
		got.Threshold != "custom.metrics.k8s.io for http_requests_per_second" || !strings.Contains(got.Remedy, "prometheus-adapter") {
		t.Errorf("custom metrics API: %+v", got)
	}
	if !rep.Failed(false) {
		t.Error("an HPA on requests per second without the custom metrics API must fail the run")
	}
}

func TestIntegrationK8sPreflightEnoughGPUs(t *testing.T) {
	c := k8stest.Start(t)
	req := Requirements{Model: gpuModel(), GPUsPerReplica: 1, Replicas: 2, BlueGreen: true, GPUProduct: "H100",
		Autoscaling: AutoscalingSpec{Enabled: true, Metrics: []string{"cpu"}}}
	rep := clusterRun(t, c.Clientset, req)
	for _, want := range []struct {
		id       string
		status   Status
		measured string
	}{
		{"k8s.gpu-capacity", Pass, "4 free GPU(s) on 1 schedulable node(s): room for 4 replica(s)"},
		{"k8s.gpu-labels", Pass, "1 of 1 labelled GPU node(s) fit: NVIDIA-H100-80GB-HBM3 (81559 MiB)"},
		{"k8s.metrics-api", Pass, "metrics.k8s.io served"},
		{"k8s.custom-metrics-api", Skip, "no custom metric target"},
	} {
		if got := findID(rep, want.id); got.Status != want.status || got.Measured != want.measured {
			t.Errorf("%s: %+v, want %s %q", want.id, got, want.status, want.measured)
		}
	}
	if rep.Failed(true) {
		t.Errorf("enough GPUs must pass, even strict: %+v", rep.Results)
	}

	// A pod that holds a GPU leaves too few for both colours.
	ctx := context.Background()
	gpu := corev1.ResourceList{gpuResource: resource.MustParse("1")}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "holds-a-gpu"},
		Spec: corev1.PodSpec{
			Containers:  []corev1.Container{{Name: "c", Image: "registry.example.com/hog:1", Resources: corev1.ResourceRequirements{Requests: gpu, Limits: gpu}}},
			Tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists}},
		},
	}
	if _, err := c.Clientset.CoreV1().Pods(c.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := c.Clientset.CoreV1().Pods(c.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the GPU pod was not scheduled within 30s: %+v", p.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rep = clusterRun(t, c.Clientset, req)
	if got := findID(rep, "k8s.gpu-capacity"); got.Status != Fail || got.Measured != "3 free GPU(s) on 1 schedulable node(s): room for 3 replica(s)" {
		t.Errorf("capacity with a GPU held: %+v", got)
	}
}

// On the real API server: a default class of block disks (the AWS EBS
// provisioner's name; nothing provisions here, the check reads the class)
// fails the shared model claim, and naming a file class passes it. The
// classes are cluster-wide: the test removes them.
func TestIntegrationK8sPreflightModelStorage(t *testing.T) {
	c := k8stest.Start(t)
	ctx := context.Background()
	for _, sc := range []*storagev1.StorageClass{storageClass("gp3-preflight", "ebs.csi.aws.com", true), storageClass("efs-preflight", "efs.csi.aws.com", false)} {
		if _, err := c.Clientset.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.Clientset.StorageV1().StorageClasses().Delete(context.Background(), sc.Name, metav1.DeleteOptions{})
		})
	}
	req := Requirements{Model: gpuModel(), GPUsPerReplica: 1, Replicas: 2, ModelClaim: &ClaimSpec{AccessMode: "ReadWriteMany"}}
	got := findID(clusterRun(t, c.Clientset, req), "k8s.model-storage")
	if got.Status != Fail || got.Measured != "storage class gp3-preflight (ebs.csi.aws.com) for a ReadWriteMany claim: its volumes attach to one node at a time" || !strings.Contains(got.Remedy, "model.storageClass") {
		t.Errorf("shared claim on the default block class: %+v", got)
	}
	req.ModelClaim.StorageClass = "efs-preflight"
	if got := findID(clusterRun(t, c.Clientset, req), "k8s.model-storage"); got.Status != Pass {
		t.Errorf("shared claim on a named file class: %+v", got)
	}
}
