package k8s

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// With autoscaling.engine keda, status reads the ScaledObject: its bounds,
// the prewarm floor recorded on it, and the counts of the HPA KEDA made.
func TestReadStatusScaledObject(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 12, 24, 9, 0, 0, 0, time.UTC)
	rec, err := json.Marshal(PrewarmRecord{MinReplicas: 2, MaxReplicas: 12, Replicas: 10, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	so := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": KindScaledObject,
		"metadata": map[string]any{"name": "chat", "namespace": "serving", "annotations": map[string]any{AnnotationPrewarm: string(rec)}},
		"spec":     map[string]any{"scaleTargetRef": map[string]any{"name": "chat-green"}, "minReplicaCount": int64(10), "maxReplicaCount": int64(12)},
	}}
	kedaHPA := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "keda-hpa-chat", Namespace: "serving"},
		Status:     autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 4, DesiredReplicas: 10},
	}
	kinds := map[schema.GroupVersionResource]string{ScaledObjects: "ScaledObjectList"}
	c := &Client{Namespace: "serving", Clientset: fake.NewClientset(kedaHPA), Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds, so)}
	v, err := c.ReadStatus(t.Context(), "chat")
	if err != nil {
		t.Fatal(err)
	}
	want := ScaledObjectView{Name: "chat", Target: "chat-green", Min: 10, Max: 12, HPA: "keda-hpa-chat", Current: 4, Desired: 10}
	if v.HPA != nil || v.ScaledObject == nil || *v.ScaledObject != want {
		t.Fatalf("ReadStatus: HPA %+v, ScaledObject %+v; want no HPA and %+v", v.HPA, v.ScaledObject, want)
	}
	if v.Prewarm == nil || v.Prewarm.Replicas != 10 || v.Prewarm.MinReplicas != 2 || v.Prewarm.MaxReplicas != 12 {
		t.Errorf("prewarm record %+v, want floor 10 over 2–12", v.Prewarm)
	}
	var sb strings.Builder
	PrintStatus(&sb, v)
	for _, line := range []string{
		"KEDA:       ScaledObject chat on chat-green, floor 10, ceiling 12, current 4, desired 10 (HPA keda-hpa-chat)\n",
		"Prewarm:    floor 10 since 2026-12-24 09:00 UTC, until aideploy prewarm --restore (then 2–12)\n",
	} {
		if !strings.Contains(sb.String(), line) {
			t.Errorf("status lacks %q:\n%s", line, sb.String())
		}
	}

	// Before KEDA's operator has made its HPA, status says so.
	c.Clientset = fake.NewClientset()
	if v, err = c.ReadStatus(t.Context(), "chat"); err != nil || v.ScaledObject == nil || v.ScaledObject.HPA != "" {
		t.Fatalf("ReadStatus without KEDA's HPA = %+v, %v", v.ScaledObject, err)
	}
	if got, want := v.ScaledObject.String(), "ScaledObject chat on chat-green, floor 10, ceiling 12, no HPA made from it yet (KEDA's operator makes it)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// A cluster without KEDA's CRD answers 404 for ScaledObjects: no autoscaler, no error.
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds)
	dyn.PrependReactor("*", ScaledObjects.Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: ScaledObjects.Group, Resource: ScaledObjects.Resource}, "")
	})
	c = &Client{Namespace: "serving", Clientset: fake.NewClientset(), Dynamic: dyn}
	if v, err := c.ReadStatus(t.Context(), "chat"); err != nil || v.ScaledObject != nil || v.HPA != nil || v.Prewarm != nil {
		t.Errorf("ReadStatus without KEDA = %+v, %v; want no autoscaler", v, err)
	}
}
