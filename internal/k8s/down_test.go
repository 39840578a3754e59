package k8s

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/aideploy/aideploy/internal/config"
)

// A wait that ends before the pods are gone says how many are left, the GPUs
// they hold and how to watch them.
func TestWaitPodsGoneReportsWhatIsLeft(t *testing.T) {
	t.Parallel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-blue-1", Namespace: "serving", Labels: map[string]string{LabelName: "chat", LabelColor: "blue"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "model", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{GPU: resource.MustParse("2")},
		}}}},
	}
	other := pod.DeepCopy()
	other.Name, other.Labels = "notes", map[string]string{LabelName: "chat"} // not a model pod
	p := NewPlatform(&Client{Namespace: "serving", Clientset: fake.NewClientset(pod, other)}, Options{Config: &config.Config{Name: "chat"}})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := p.WaitPodsGone(ctx)
	var left *PodsLeftError
	if !errors.As(err, &left) || left.Pods != 1 || left.GPUs != 2 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitPodsGone = %v, want 1 pod holding 2 GPUs left at the deadline", err)
	}
	if want := "kubectl get pods -n serving -l app.kubernetes.io/name=chat"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	// Once the pod is gone the wait returns at once.
	if err := p.c.Clientset.CoreV1().Pods("serving").Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitPodsGone(t.Context()); err != nil {
		t.Fatalf("WaitPodsGone with no pods left: %v", err)
	}
}

// downFake is a dynamic client that serves every kind Down removes, holding
// objs; a request for ScaledObjects gets soErr when it is set, as from a
// cluster without KEDA's CRD.
func downFake(t *testing.T, soErr error, objs ...runtime.Object) *Client {
	t.Helper()
	kinds := map[schema.GroupVersionResource]string{}
	for _, gvr := range downKinds {
		kinds[gvr] = "List"
	}
	kinds[ScaledObjects] = "ScaledObjectList"
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds, objs...)
	if soErr != nil {
		dyn.PrependReactor("*", ScaledObjects.Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, soErr
		})
	}
	return &Client{Namespace: "serving", Clientset: fake.NewClientset(), Dynamic: dyn}
}

func unstructuredObj(apiVersion, kind, name string, labels map[string]string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion(apiVersion)
	o.SetKind(kind)
	o.SetName(name)
	o.SetNamespace("serving")
	o.SetLabels(labels)
	return o
}

// Down deletes the service's KEDA ScaledObject; on a cluster without KEDA's
// CRD, where the API server answers 404 for the resource, it skips the kind
// quietly and deletes the rest. Any other failure to list it still stops Down.
func TestDownScaledObject(t *testing.T) {
	t.Parallel()
	mine := map[string]string{LabelName: "chat", "app.kubernetes.io/managed-by": FieldManager}
	so := unstructuredObj("keda.sh/v1alpha1", KindScaledObject, "chat", mine)
	dep := unstructuredObj("apps/v1", "Deployment", "chat-blue", mine)
	others := unstructuredObj("keda.sh/v1alpha1", KindScaledObject, "search", map[string]string{LabelName: "search", "app.kubernetes.io/managed-by": FieldManager})
	cfg := &config.Config{Name: "chat"}

	c := downFake(t, nil, so, dep, others)
	n, err := NewPlatform(c, Options{Config: cfg}).Down(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("Down = %d, %v; want the ScaledObject and the Deployment deleted", n, err)
	}
	if _, err := c.Dynamic.Resource(ScaledObjects).Namespace("serving").Get(t.Context(), "chat", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the ScaledObject of chat is still there (%v)", err)
	}
	if _, err := c.Dynamic.Resource(ScaledObjects).Namespace("serving").Get(t.Context(), "search", metav1.GetOptions{}); err != nil {
		t.Errorf("Down deleted another service's ScaledObject: %v", err)
	}

	noCRD := apierrors.NewNotFound(schema.GroupResource{Group: ScaledObjects.Group, Resource: ScaledObjects.Resource}, "")
	c = downFake(t, noCRD, dep)
	if n, err := NewPlatform(c, Options{Config: cfg}).Down(t.Context()); err != nil || n != 1 {
		t.Errorf("Down without KEDA's CRD = %d, %v; want the Deployment deleted and no error", n, err)
	}

	denied := apierrors.NewForbidden(schema.GroupResource{Group: ScaledObjects.Group, Resource: ScaledObjects.Resource}, "", errors.New("RBAC"))
	c = downFake(t, denied, dep)
	if _, err := NewPlatform(c, Options{Config: cfg}).Down(t.Context()); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "scaledobjects") {
		t.Errorf("Down where listing ScaledObjects is forbidden = %v, want that error", err)
	}
}
