package k8s

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
)

// Applying autoscaling.engine keda's ScaledObject to a cluster without KEDA
// says what to do instead of "no matches for kind", and applies nothing: not
// even the objects before it. Another kind the cluster lacks gets its own
// advice.
func TestApplyWithoutKEDA(t *testing.T) {
	t.Parallel()
	apps := schema.GroupVersion{Group: "apps", Version: "v1"}
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{apps})
	mapper.Add(apps.WithKind("Deployment"), meta.RESTScopeNamespace)
	dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	c := &Client{Namespace: "serving", Clientset: fake.NewClientset(), Dynamic: dyn, Mapper: mapper}
	obj := func(apiVersion, kind string) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion(apiVersion)
		o.SetKind(kind)
		o.SetName("chat")
		return o
	}
	objs := []*unstructured.Unstructured{obj("apps/v1", "Deployment"), obj("keda.sh/v1alpha1", KindScaledObject)}
	for name, apply := range map[string]func() error{
		"Apply":                  func() error { _, err := c.Apply(t.Context(), objs, false); return err },
		"ApplyRespecting":        func() error { _, err := c.ApplyRespecting(t.Context(), objs, false, false); return err },
		"ApplyRespecting, force": func() error { _, err := c.ApplyRespecting(t.Context(), objs, false, true); return err },
	} {
		err := apply()
		want := "KEDA is not installed in the cluster (no ScaledObject CRD): install KEDA or set autoscaling.engine: hpa in aideploy.yaml"
		if err == nil || !strings.HasPrefix(err.Error(), want) || !meta.IsNoMatchError(err) {
			t.Errorf("%s = %v, want %q wrapping the no-match error", name, err, want)
		}
	}
	if a := dyn.Actions(); len(a) != 0 {
		t.Errorf("the dynamic client saw %d request(s), want none: %v", len(a), a)
	}

	_, err := c.Apply(t.Context(), []*unstructured.Unstructured{obj("monitoring.coreos.com/v1", "ServiceMonitor")}, false)
	if err == nil || !strings.HasPrefix(err.Error(), "the cluster does not serve monitoring.coreos.com/v1, Kind=ServiceMonitor: install what provides it") {
		t.Errorf("Apply of a ServiceMonitor without its CRD = %v", err)
	}
}
