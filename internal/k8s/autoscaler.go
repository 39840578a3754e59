package k8s

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The kinds of autoscaler aideploy renders for the model pods.
const (
	KindHPA          = "HorizontalPodAutoscaler"
	KindScaledObject = "ScaledObject"
)

// ScaledObjects is KEDA's ScaledObject resource (autoscaling.engine keda).
var ScaledObjects = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}

// Autoscaler names the object that sets a service's floor and ceiling: its
// HPA, or KEDA's ScaledObject, which owns an HPA of its own
// (keda-hpa-<name>) and overwrites that HPA's bounds from its
// minReplicaCount and maxReplicaCount.
type Autoscaler struct {
	Kind string
	Name string
}

func (a Autoscaler) String() string {
	if a.Kind == KindHPA {
		return "HPA " + a.Name
	}
	return a.Kind + " " + a.Name
}

// floorFields says where an autoscaler kind keeps its bounds and what they
// default to when unset.
type floorFields struct {
	gvr             schema.GroupVersionResource
	min, max        string
	defMin, defMax  int64
	ceilingOptional bool
}

var (
	hpaFloor = &floorFields{
		gvr: schema.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
		min: "minReplicas", max: "maxReplicas", defMin: 1,
	}
	// KEDA's defaults: https://keda.sh/docs/2.x/reference/scaledobject-spec/
	kedaFloor = &floorFields{gvr: ScaledObjects, min: "minReplicaCount", max: "maxReplicaCount", defMin: 0, defMax: 100, ceilingOptional: true}
)

// floor returns where a's kind keeps its bounds, nil for other kinds.
func (a Autoscaler) floor() *floorFields {
	switch a.Kind {
	case KindHPA:
		return hpaFloor
	case KindScaledObject:
		return kedaFloor
	}
	return nil
}

func (f *floorFields) bounds(o *unstructured.Unstructured) (int32, int32, error) {
	lo, found, err := unstructured.NestedInt64(o.Object, "spec", f.min)
	if err != nil {
		return 0, 0, err
	}
	if !found {
		lo = f.defMin
	}
	hi, found, err := unstructured.NestedInt64(o.Object, "spec", f.max)
	if err != nil {
		return 0, 0, err
	}
	if !found {
		if !f.ceilingOptional {
			return 0, 0, fmt.Errorf("spec.%s is missing", f.max)
		}
		hi = f.defMax
	}
	return int32(lo), int32(hi), nil
}

func (f *floorFields) setBounds(o *unstructured.Unstructured, lo, hi int32) error {
	if err := unstructured.SetNestedField(o.Object, int64(lo), "spec", f.min); err != nil {
		return fmt.Errorf("setting spec.%s of %s %s: %w", f.min, o.GetKind(), o.GetName(), err)
	}
	if err := unstructured.SetNestedField(o.Object, int64(hi), "spec", f.max); err != nil {
		return fmt.Errorf("setting spec.%s of %s %s: %w", f.max, o.GetKind(), o.GetName(), err)
	}
	return nil
}

// FindAutoscaler returns the autoscaler of service name: its HPA, else its
// KEDA ScaledObject. A cluster without KEDA answers for ScaledObjects as for
// a missing one.
func (c *Client) FindAutoscaler(ctx context.Context, name string) (Autoscaler, error) {
	_, err := c.Clientset.AutoscalingV2().HorizontalPodAutoscalers(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return Autoscaler{Kind: KindHPA, Name: name}, nil
	}
	if !apierrors.IsNotFound(err) {
		return Autoscaler{}, fmt.Errorf("reading HPA %s: %w", name, err)
	}
	_, err = c.Dynamic.Resource(ScaledObjects).Namespace(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return Autoscaler{Kind: KindScaledObject, Name: name}, nil
	}
	if !apierrors.IsNotFound(err) {
		return Autoscaler{}, fmt.Errorf("reading ScaledObject %s: %w", name, err)
	}
	return Autoscaler{}, fmt.Errorf("no HPA or KEDA ScaledObject named %s in namespace %s: run aideploy apply with autoscaling.enabled, or pass --name and --namespace of the service", name, c.Namespace)
}

// BoundFields names the spec fields of a's floor and ceiling: minReplicas and
// maxReplicas of an HPA, minReplicaCount and maxReplicaCount of a ScaledObject.
func (a Autoscaler) BoundFields() (floor, ceiling string) {
	if f := a.floor(); f != nil {
		return f.min, f.max
	}
	return "", ""
}
