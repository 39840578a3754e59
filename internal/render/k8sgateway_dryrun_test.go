package render_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/k8s/k8stest"
	"github.com/aideploy/aideploy/internal/render"
)

func TestMain(m *testing.M) { k8stest.Main(m, k8stest.Options{}) }

// The API server itself (admission, defaulting, validation) accepts every
// gateway object rendered for Kubernetes, in a server-side dry run.
func TestIntegrationKubernetesGatewayDryRun(t *testing.T) {
	cl := k8stest.Start(t)
	dc, err := discovery.NewDiscoveryClientForConfig(cl.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cl.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"cpu", "gpu1", "vllm"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Load("testdata/" + name + "/aideploy.yaml")
			if err != nil {
				t.Fatal(err)
			}
			files, err := render.Render(cfg, config.DefaultFile, render.KubernetesGateway)
			if err != nil {
				t.Fatal(err)
			}
			var data [][]byte
			for _, f := range files {
				data = append(data, f.Data)
			}
			objs, err := k8s.Decode(data...)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			for _, o := range objs {
				gvk := o.GroupVersionKind()
				m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Fatalf("%s %s: %v", gvk, o.GetName(), err)
				}
				if _, err := dyn.Resource(m.Resource).Namespace(cl.Namespace).Create(ctx, o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}); err != nil {
					t.Errorf("server dry run of %s %s: %v", o.GetKind(), o.GetName(), err)
				}
				kinds[o.GetKind()]++
			}
			for kind, n := range map[string]int{"ConfigMap": 1, "Deployment": 1, "HorizontalPodAutoscaler": 1, "NetworkPolicy": 1, "PodDisruptionBudget": 1, "Service": 4, "StatefulSet": 1} {
				if kinds[kind] != n {
					t.Errorf("dry-ran %d %s, want %d (all: %v)", kinds[kind], kind, n, kinds)
				}
			}
		})
	}
}
