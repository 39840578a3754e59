package k8s

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/rollout"
)

func gpuNode(name, product string, gpus int64, taints ...corev1.Taint) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": product}}}
	n.Status.Allocatable = corev1.ResourceList{GPU: *resource.NewQuantity(gpus, resource.DecimalSI)}
	n.Spec.Taints = taints
	return n
}

// capacityClient is a fake cluster (unit test) of three GPU nodes; forbid
// lists the resources a namespace-scoped user may not list cluster-wide.
func capacityClient(t *testing.T, forbid ...string) *Client {
	t.Helper()
	gpuTaint := corev1.Taint{Key: "nvidia.com/gpu", Effect: corev1.TaintEffectNoSchedule}
	cs := fake.NewClientset(
		gpuNode("a100-1", "A100", 4, gpuTaint),
		gpuNode("h100-1", "H100", 4, gpuTaint),
		gpuNode("h100-reserved", "H100", 8, gpuTaint, corev1.Taint{Key: "team", Value: "research", Effect: corev1.TaintEffectNoSchedule}),
	)
	for _, res := range forbid {
		cs.PrependReactor("list", res, func(a k8stesting.Action) (bool, runtime.Object, error) {
			if res == "nodes" || a.GetNamespace() == "" {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: res}, "", nil)
			}
			return false, nil, nil
		})
	}
	return &Client{Namespace: "team-a", Clientset: cs}
}

func TestReadCapacityCountsOnlyNodesThePodMayUse(t *testing.T) {
	t.Parallel()
	tol := []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	tests := []struct {
		name       string
		spec       *corev1.PodSpec
		nodes      int
		allocatble int64
	}{
		{"every GPU node", nil, 3, 16},
		{"gpuProduct A100", &corev1.PodSpec{NodeSelector: map[string]string{"nvidia.com/gpu.product": "A100"}, Tolerations: tol}, 1, 4},
		{"H100, not the reserved node", &corev1.PodSpec{NodeSelector: map[string]string{"nvidia.com/gpu.product": "H100"}, Tolerations: tol}, 1, 4},
		{"no toleration for the GPU taint", &corev1.PodSpec{}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			capa, err := capacityClient(t).ReadCapacityFor(context.Background(), tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if capa.Nodes != tt.nodes || capa.Allocatable != tt.allocatble || capa.Unseen() != "" {
				t.Errorf("%d nodes, %d GPUs (%s); want %d, %d", capa.Nodes, capa.Allocatable, capa.Unseen(), tt.nodes, tt.allocatble)
			}
		})
	}
}

func gpuPlatform(t *testing.T, c *Client, edit func(*config.Config)) (*Platform, *[]string) {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "render", "testdata", "gpu1", "aideploy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
	}
	var lines []string
	return NewPlatform(c, Options{Config: cfg, Source: "aideploy.yaml", Logf: func(f string, a ...any) {
		lines = append(lines, strings.TrimSpace(fmt.Sprintf(f, a...)))
	}}), &lines
}

// TestCheckWithNamespacedRights: a user bound to a Role in their namespace
// cannot list nodes or other namespaces' pods; the check says what it could
// not see and lets the rollout go on.
func TestCheckWithNamespacedRights(t *testing.T) {
	t.Parallel()
	to := rollout.Deployment{Color: rollout.Green, Revision: 2, Image: "chat:2", Replicas: 2}
	p, lines := gpuPlatform(t, capacityClient(t, "nodes", "pods"), nil)
	if err := p.Check(context.Background(), to, nil); err != nil {
		t.Fatalf("Check with namespaced rights: %v; want it to go on", err)
	}
	if got := strings.Join(*lines, "\n"); !strings.Contains(got, "cannot list nodes with these rights") || !strings.Contains(got, "going on without it") {
		t.Errorf("log %q, want what the check could not see", got)
	}

	p, lines = gpuPlatform(t, capacityClient(t, "pods"), nil)
	if err := p.Check(context.Background(), to, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(*lines, "\n"); !strings.Contains(got, "can list pods of namespace team-a only") {
		t.Errorf("log %q, want the pod-listing limit named", got)
	}
}

// TestCheckCountsMatchingNodes: gpuProduct A100 with 5 replicas cannot fit on
// the one A100 node, though the cluster has 16 GPUs; in wait mode the rollout
// goes on for the node autoscaler.
func TestCheckCountsMatchingNodes(t *testing.T) {
	t.Parallel()
	to := rollout.Deployment{Color: rollout.Green, Revision: 2, Image: "chat:2", Replicas: 5}
	a100 := func(c *config.Config) { c.Resources.GPUProduct = "A100" }
	p, _ := gpuPlatform(t, capacityClient(t), a100)
	err := p.Check(context.Background(), to, nil)
	if err == nil || !strings.Contains(err.Error(), "4 of 4 allocatable nvidia.com/gpu free on 1 GPU nodes matching") ||
		!strings.Contains(err.Error(), "nvidia.com/gpu.product=A100") || !strings.Contains(err.Error(), "rollout.capacity: wait") {
		t.Fatalf("Check: %v; want a refusal counting the A100 node only", err)
	}
	p, lines := gpuPlatform(t, capacityClient(t), func(c *config.Config) { a100(c); c.Rollout.Capacity = rollout.CapacityWait })
	if err := p.Check(context.Background(), to, nil); err != nil {
		t.Fatalf("Check in wait mode: %v", err)
	}
	if got := strings.Join(*lines, "\n"); !strings.Contains(got, "creating the pods for the node autoscaler") {
		t.Errorf("log %q, want the wait named", got)
	}
}
