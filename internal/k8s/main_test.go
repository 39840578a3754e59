package k8s_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/k8s/k8stest"
	"github.com/aideploy/aideploy/internal/rollout"
)

// totalGPUs is what the test control plane's GPU nodes hold: 4 + 4 + 2.
const totalGPUs = 10

// The tests run in a network namespace of their own: the warm-up tests send
// traffic to simulated pod and node addresses, which exist only there. KEDA's
// ScaledObject CRD is installed for autoscaling.engine keda. A copy of the
// binary started as a gateway pod (envGatewayPod) runs the gateway instead.
func TestMain(m *testing.M) {
	if path := os.Getenv(envGatewayPod); path != "" {
		os.Exit(runGatewayPod(path))
	}
	k8stest.Main(m, k8stest.Options{GPUNodes: []int{4, 4, 2}, NetNS: true, KEDA: true})
}

// golden loads one of the render package's golden configurations.
func golden(t *testing.T, name string) *config.Config {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "render", "testdata", name, "aideploy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Autoscaling.RequestsPerSecond > 0 && cfg.Autoscaling.CPUTarget == 0 {
		// The test cluster serves CPU metrics only (k8stest), not the custom
		// metrics API: without a CPU target the HPA would never act, and a test
		// of "the HPA does not undo prewarm" would pass for the wrong reason.
		cfg.Autoscaling.CPUTarget = 70
	}
	return cfg
}

// start starts the control plane and connects a client to the test's namespace.
func start(t *testing.T) (*k8stest.Cluster, *k8s.Client) {
	t.Helper()
	cl := k8stest.Start(t)
	kc, err := k8s.NewClient(cl.RESTConfig, cl.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	return cl, kc
}

// runnable renders cfg in colour c without the model volume: kwok runs no
// kubelet, and a missing claim would keep every pod unschedulable.
func runnable(t *testing.T, cfg *config.Config, c rollout.Color, podAnnotations map[string]string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := k8s.Manifests(cfg, "aideploy.yaml", c)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		spec := o.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		spec["volumes"] = nil
		for _, ct := range spec["containers"].([]any) {
			ct.(map[string]any)["volumeMounts"] = nil
		}
		if len(podAnnotations) > 0 {
			md := o.Object["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)
			ann, _ := md["annotations"].(map[string]any)
			if ann == nil {
				ann = map[string]any{}
			}
			for k, v := range podAnnotations {
				ann[k] = v
			}
			md["annotations"] = ann
		}
	}
	return objs
}

// waitGPUsFree waits until no pod of an earlier test holds a GPU: the tests
// share the nodes, and namespaces go away in the background.
func waitGPUsFree(t *testing.T, kc *k8s.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		capa, err := kc.ReadCapacity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if capa.Allocatable == totalGPUs && capa.Free() == totalGPUs {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GPUs still held by earlier tests: %d of %d free", capa.Free(), capa.Allocatable)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// deletePods removes every Deployment of the test's namespace at once, so its
// GPUs are free for the next test without waiting for the namespace to go.
func deleteDeployments(t *testing.T, kc *k8s.Client) {
	t.Cleanup(func() {
		ctx := context.Background()
		_ = kc.Clientset.AppsV1().Deployments(kc.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = kc.Clientset.CoreV1().Pods(kc.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{})
	})
}
