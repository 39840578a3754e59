package preflight

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

func gpuNode(name string, gpus int64, labels map[string]string, mutate ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{gpuResource: *resource.NewQuantity(gpus, resource.DecimalSI)},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, m := range mutate {
		m(n)
	}
	return n
}

func gpuPod(name, node string, gpus int64, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name:      "model",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{gpuResource: *resource.NewQuantity(gpus, resource.DecimalSI)}},
		}}},
		Status: corev1.PodStatus{Phase: phase},
	}
}

var h100Labels = map[string]string{gpuProductLabel: "NVIDIA-H100-80GB-HBM3", gpuMemoryLabel: "81559"}
var l4Labels = map[string]string{gpuProductLabel: "NVIDIA-L4", gpuMemoryLabel: "23034"}

// cluster builds a fake clientset serving the given API groups.
func cluster(groups []string, objs ...runtime.Object) kubernetes.Interface {
	cs := fake.NewSimpleClientset(objs...)
	disc := cs.Discovery().(*fakediscovery.FakeDiscovery)
	for _, gv := range groups {
		list := &metav1.APIResourceList{GroupVersion: gv}
		if gv == customMetricsVersion {
			list.APIResources = []metav1.APIResource{{Name: "pods/http_requests_per_second"}}
		}
		disc.Resources = append(disc.Resources, list)
	}
	return cs
}

func TestKubernetesChecks(t *testing.T) {
	t.Parallel()
	seedHPA := AutoscalingSpec{Enabled: true, Metrics: []string{"cpu", "memory", "http_requests_per_second"}}
	llama8B := ModelSpec{Params: 8e9, DType: "bf16", ContextLength: 8192, Concurrency: 8}
	req := Requirements{GPUsPerReplica: 1, Replicas: 3, Model: llama8B, Autoscaling: seedHPA}
	blueGreen := req
	blueGreen.BlueGreen = true
	allAPIs := []string{"v1", "metrics.k8s.io/v1beta1", customMetricsVersion}
	fourH100 := []runtime.Object{gpuNode("gpu-a", 2, h100Labels), gpuNode("gpu-b", 2, h100Labels)}

	tests := []struct {
		name string
		req  Requirements
		apis []string
		objs []runtime.Object
		want map[string]Status
		// measured substrings per id
		measured map[string]string
	}{
		{"enough GPUs and APIs", req, allAPIs, fourH100,
			map[string]Status{"k8s.cluster": Pass, "k8s.gpu-capacity": Pass, "k8s.gpu-labels": Pass, "k8s.metrics-api": Pass, "k8s.custom-metrics-api": Pass},
			map[string]string{"k8s.gpu-capacity": "4 free GPU(s) on 2 schedulable node(s)"}},
		{"blue/green needs twice the GPUs", blueGreen, allAPIs, fourH100,
			map[string]Status{"k8s.gpu-capacity": Fail}, map[string]string{"k8s.gpu-capacity": "room for 4 replica(s)"}},
		{"GPUs held by running pods", req, allAPIs, append(fourH100,
			gpuPod("other", "gpu-a", 2, corev1.PodRunning), gpuPod("done", "gpu-b", 2, corev1.PodSucceeded)),
			map[string]Status{"k8s.gpu-capacity": Fail}, map[string]string{"k8s.gpu-capacity": "2 free GPU(s)"}},
		{"cordoned and not-ready nodes do not count", req, allAPIs, []runtime.Object{
			gpuNode("a", 2, h100Labels), gpuNode("b", 4, h100Labels, func(n *corev1.Node) { n.Spec.Unschedulable = true }),
			gpuNode("c", 4, h100Labels, func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }),
			gpuNode("d", 4, h100Labels, func(n *corev1.Node) {
				n.Spec.Taints = []corev1.Taint{{Key: "maintenance", Effect: corev1.TaintEffectNoSchedule}}
			}),
			gpuNode("e", 1, h100Labels, func(n *corev1.Node) {
				n.Spec.Taints = []corev1.Taint{{Key: "nvidia.com/gpu", Effect: corev1.TaintEffectNoSchedule}}
			})},
			map[string]Status{"k8s.gpu-capacity": Pass}, map[string]string{"k8s.gpu-capacity": "3 free GPU(s) on 2 schedulable node(s)"}},
		{"no GPU nodes", req, allAPIs, []runtime.Object{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cpu"}}},
			map[string]Status{"k8s.gpu-capacity": Fail, "k8s.gpu-labels": Skip}, nil},
		{"GPUs too small for the model", req, allAPIs, []runtime.Object{gpuNode("l4-a", 2, l4Labels), gpuNode("l4-b", 2, l4Labels)},
			map[string]Status{"k8s.gpu-capacity": Pass, "k8s.gpu-labels": Fail}, map[string]string{"k8s.gpu-labels": "NVIDIA-L4 (23034 MiB)"}},
		{"mixed GPUs", req, allAPIs, []runtime.Object{gpuNode("h", 2, h100Labels), gpuNode("l4", 2, l4Labels)},
			map[string]Status{"k8s.gpu-labels": Warn}, map[string]string{"k8s.gpu-labels": "1 of 2"}},
		{"no feature discovery labels", req, allAPIs, []runtime.Object{gpuNode("a", 4, nil)},
			map[string]Status{"k8s.gpu-labels": Warn}, nil},
		{"no metrics server", req, []string{"v1", customMetricsVersion}, fourH100,
			map[string]Status{"k8s.metrics-api": Fail, "k8s.custom-metrics-api": Pass}, nil},
		{"no custom metrics API", req, []string{"v1", "metrics.k8s.io/v1beta1"}, fourH100,
			map[string]Status{"k8s.metrics-api": Pass, "k8s.custom-metrics-api": Fail},
			map[string]string{"k8s.custom-metrics-api": "custom.metrics.k8s.io not served"}},
		{"no autoscaling", Requirements{GPUsPerReplica: 1, Replicas: 1}, []string{"v1"}, fourH100,
			map[string]Status{"k8s.metrics-api": Skip}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs := cluster(tt.apis, tt.objs...)
			rep, err := Run(context.Background(), Options{Req: tt.req, Run: Groups{Kubernetes: true},
				Kubernetes: func() (kubernetes.Interface, error) { return cs, nil }})
			if err != nil {
				t.Fatal(err)
			}
			for id, want := range tt.want {
				if got := findID(rep, id); got.Status != want {
					t.Errorf("%s: got %+v, want %s", id, got, want)
				}
			}
			for id, sub := range tt.measured {
				if got := findID(rep, id); !strings.Contains(got.Measured, sub) {
					t.Errorf("%s: measured %q, want it to contain %q", id, got.Measured, sub)
				}
			}
		})
	}
}

func TestKubernetesNotConfigured(t *testing.T) {
	t.Parallel()
	for _, required := range []bool{false, true} {
		rep, err := Run(context.Background(), Options{Run: Groups{Kubernetes: true}, Require: Groups{Kubernetes: required},
			Kubernetes: func() (kubernetes.Interface, error) { return nil, errors.New("no configuration has been provided") }})
		if err != nil {
			t.Fatal(err)
		}
		want := Skip
		if required {
			want = Fail
		}
		if got := findID(rep, "k8s.cluster"); got.Status != want || !strings.Contains(got.Measured, "no configuration") {
			t.Errorf("required=%v: %+v", required, got)
		}
	}
	rep, _ := Run(context.Background(), Options{Run: Groups{Kubernetes: true}})
	if got := findID(rep, "k8s.cluster"); got.Status != Skip || got.Measured != "no cluster configured" {
		t.Errorf("nil factory: %+v", got)
	}
}
