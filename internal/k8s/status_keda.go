package k8s

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ScaledObjectView is KEDA's ScaledObject of a service (autoscaling.engine
// keda): its floor and ceiling, and the counts of the HPA KEDA makes from it.
type ScaledObjectView struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Min    int32  `json:"min"`
	Max    int32  `json:"max"`
	// HPA names the HPA KEDA made from the ScaledObject, empty while there
	// is none (KEDA's operator has not acted on it yet, or does not run);
	// Current and Desired are that HPA's.
	HPA     string `json:"hpa,omitempty"`
	Current int32  `json:"current"`
	Desired int32  `json:"desired"`
}

func (s *ScaledObjectView) String() string {
	line := fmt.Sprintf("ScaledObject %s on %s, floor %d, ceiling %d", s.Name, s.Target, s.Min, s.Max)
	if s.HPA == "" {
		return line + ", no HPA made from it yet (KEDA's operator makes it)"
	}
	return line + fmt.Sprintf(", current %d, desired %d (HPA %s)", s.Current, s.Desired, s.HPA)
}

// kedaHPAName is the HPA KEDA makes from ScaledObject so: the name KEDA
// recorded in its status, else the one it chooses (keda-hpa-<name>), unless
// the ScaledObject names its own.
func kedaHPAName(so *unstructured.Unstructured) string {
	if n, _, _ := unstructured.NestedString(so.Object, "status", "hpaName"); n != "" {
		return n
	}
	if n, _, _ := unstructured.NestedString(so.Object, "spec", "advanced", "horizontalPodAutoscalerConfig", "name"); n != "" {
		return n
	}
	return "keda-hpa-" + so.GetName()
}

// readScaledObject reads the ScaledObject of service svc and its prewarm
// record; nil when there is none, or the cluster has no KEDA.
func (c *Client) readScaledObject(ctx context.Context, svc string) (*ScaledObjectView, *PrewarmRecord, error) {
	so, err := c.Dynamic.Resource(ScaledObjects).Namespace(c.Namespace).Get(ctx, svc, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading ScaledObject %s: %w", svc, err)
	}
	a := Autoscaler{Kind: KindScaledObject, Name: svc}
	v := &ScaledObjectView{Name: svc}
	v.Target, _, _ = unstructured.NestedString(so.Object, "spec", "scaleTargetRef", "name")
	if v.Min, v.Max, err = kedaFloor.bounds(so); err != nil {
		return nil, nil, fmt.Errorf("reading the bounds of %s: %w", a, err)
	}
	rec, err := readPrewarm(so.GetAnnotations(), a)
	if err != nil {
		return nil, nil, err
	}
	name := kedaHPAName(so)
	hpa, err := c.Clientset.AutoscalingV2().HorizontalPodAutoscalers(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		v.HPA, v.Current, v.Desired = name, hpa.Status.CurrentReplicas, hpa.Status.DesiredReplicas
	case !apierrors.IsNotFound(err):
		return nil, nil, fmt.Errorf("reading HPA %s, which KEDA made from %s: %w", name, a, err)
	}
	return v, rec, nil
}
