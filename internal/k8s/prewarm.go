package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
)

// PrewarmRecord is what prewarm writes on the autoscaler (the HPA or KEDA's
// ScaledObject), in the same update that raises its bounds: the bounds to
// restore and the window.
type PrewarmRecord struct {
	// MinReplicas is the floor before prewarm.
	MinReplicas int32 `json:"minReplicas"`
	// MaxReplicas is the ceiling before prewarm.
	MaxReplicas int32 `json:"maxReplicas"`
	// Replicas is the floor prewarm set.
	Replicas int32 `json:"replicas"`
	// Since is when prewarm raised the floor.
	Since time.Time `json:"since"`
	// Until is when the floor is due back; zero means at the next --restore.
	Until time.Time `json:"until,omitzero"`
}

// ReadPrewarm returns the prewarm record of an HPA, or nil.
func ReadPrewarm(hpa *autoscalingv2.HorizontalPodAutoscaler) (*PrewarmRecord, error) {
	return readPrewarm(hpa.Annotations, Autoscaler{Kind: KindHPA, Name: hpa.Name})
}

func readPrewarm(annotations map[string]string, a Autoscaler) (*PrewarmRecord, error) {
	s, ok := annotations[AnnotationPrewarm]
	if !ok {
		return nil, nil
	}
	var r PrewarmRecord
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("reading annotation %s of %s: %w; delete the annotation and set %s by hand", AnnotationPrewarm, a, err, a.floor().min)
	}
	return &r, nil
}

// Prewarm raises the floor of the autoscaler of service name (its HPA, or
// with autoscaling.engine keda its ScaledObject) to replicas, and its ceiling
// when it is lower, recording the original bounds on the object in the same
// update, so a killed run leaves either nothing or a restorable record. A
// second prewarm keeps the first record's original bounds.
func (c *Client) Prewarm(ctx context.Context, name string, replicas int32, until time.Time, now time.Time) (PrewarmRecord, error) {
	var rec PrewarmRecord
	a, err := c.FindAutoscaler(ctx, name)
	if err != nil {
		return rec, err
	}
	f := a.floor()
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ri := c.Dynamic.Resource(f.gvr).Namespace(c.Namespace)
		o, err := ri.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading %s: %w", a, err)
		}
		old, err := readPrewarm(o.GetAnnotations(), a)
		if err != nil {
			return err
		}
		lo, hi, err := f.bounds(o)
		if err != nil {
			return fmt.Errorf("reading the bounds of %s: %w", a, err)
		}
		rec = PrewarmRecord{MinReplicas: lo, MaxReplicas: hi, Replicas: replicas, Since: now.UTC(), Until: until.UTC()}
		if until.IsZero() {
			rec.Until = time.Time{}
		}
		if old != nil {
			rec.MinReplicas, rec.MaxReplicas, rec.Since = old.MinReplicas, old.MaxReplicas, old.Since
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("recording prewarm: %w", err)
		}
		o.SetAnnotations(with(o.GetAnnotations(), AnnotationPrewarm, string(b)))
		if err := f.setBounds(o, replicas, max(rec.MaxReplicas, replicas)); err != nil {
			return err
		}
		_, err = ri.Update(ctx, o, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return rec, fmt.Errorf("raising the floor of %s: %w", a, err)
	}
	return rec, nil
}

// Restore puts back the bounds prewarm recorded on the autoscaler of service
// name and drops the record. It returns nil when there was nothing to restore.
func (c *Client) Restore(ctx context.Context, name string) (*PrewarmRecord, error) {
	a, err := c.FindAutoscaler(ctx, name)
	if err != nil {
		return nil, err
	}
	f := a.floor()
	var rec *PrewarmRecord
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ri := c.Dynamic.Resource(f.gvr).Namespace(c.Namespace)
		o, err := ri.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading %s: %w", a, err)
		}
		if rec, err = readPrewarm(o.GetAnnotations(), a); err != nil || rec == nil {
			return err
		}
		if err := f.setBounds(o, rec.MinReplicas, rec.MaxReplicas); err != nil {
			return err
		}
		ann := o.GetAnnotations()
		delete(ann, AnnotationPrewarm)
		o.SetAnnotations(ann)
		_, err = ri.Update(ctx, o, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("restoring %s: %w", a, err)
	}
	return rec, nil
}

// CarryPrewarm keeps a prewarm in force across a re-apply of objs: an
// autoscaler (HPA or ScaledObject) whose live object carries a prewarm record
// keeps its live floor and ceiling instead of the file's, so neither `apply`
// nor a rollout's switch undoes a prewarm mid-peak; `prewarm --restore` is
// what puts them back.
func (c *Client) CarryPrewarm(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		a := Autoscaler{Kind: o.GetKind(), Name: o.GetName()}
		f := a.floor()
		if f == nil {
			continue
		}
		live, err := c.Dynamic.Resource(f.gvr).Namespace(c.Namespace).Get(ctx, o.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", a, err)
		}
		rec, err := readPrewarm(live.GetAnnotations(), a)
		if err != nil || rec == nil {
			return err
		}
		lo, hi, err := f.bounds(live)
		if err != nil {
			return fmt.Errorf("reading the bounds of %s: %w", a, err)
		}
		if err := f.setBounds(o, lo, hi); err != nil {
			return err
		}
	}
	return nil
}
