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

// PrewarmRecord is what prewarm writes on the HPA, in the same update that
// raises its bounds: the bounds to restore and the window.
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
	s, ok := hpa.Annotations[AnnotationPrewarm]
	if !ok {
		return nil, nil
	}
	var r PrewarmRecord
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("reading annotation %s of HPA %s: %w; delete the annotation and set minReplicas by hand", AnnotationPrewarm, hpa.Name, err)
	}
	return &r, nil
}

// Prewarm raises the floor of HPA name to replicas (and its ceiling when it is
// lower), recording the original bounds on the HPA in the same update, so a
// killed run leaves either nothing or a restorable record. A second prewarm
// keeps the first record's original bounds.
func (c *Client) Prewarm(ctx context.Context, name string, replicas int32, until time.Time, now time.Time) (PrewarmRecord, error) {
	var rec PrewarmRecord
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		hpas := c.Clientset.AutoscalingV2().HorizontalPodAutoscalers(c.Namespace)
		hpa, err := hpas.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading HPA %s: %w", name, err)
		}
		old, err := ReadPrewarm(hpa)
		if err != nil {
			return err
		}
		min := int32(1)
		if hpa.Spec.MinReplicas != nil {
			min = *hpa.Spec.MinReplicas
		}
		rec = PrewarmRecord{MinReplicas: min, MaxReplicas: hpa.Spec.MaxReplicas, Replicas: replicas, Since: now.UTC(), Until: until.UTC()}
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
		if hpa.Annotations == nil {
			hpa.Annotations = map[string]string{}
		}
		hpa.Annotations[AnnotationPrewarm] = string(b)
		floor := replicas
		hpa.Spec.MinReplicas = &floor
		hpa.Spec.MaxReplicas = max(rec.MaxReplicas, replicas)
		_, err = hpas.Update(ctx, hpa, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return rec, fmt.Errorf("raising the floor of HPA %s: %w", name, err)
	}
	return rec, nil
}

// Restore puts back the bounds prewarm recorded on HPA name and drops the
// record. It returns nil when there was nothing to restore.
func (c *Client) Restore(ctx context.Context, name string) (*PrewarmRecord, error) {
	var rec *PrewarmRecord
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		hpas := c.Clientset.AutoscalingV2().HorizontalPodAutoscalers(c.Namespace)
		hpa, err := hpas.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading HPA %s: %w", name, err)
		}
		if rec, err = ReadPrewarm(hpa); err != nil || rec == nil {
			return err
		}
		floor := rec.MinReplicas
		hpa.Spec.MinReplicas = &floor
		hpa.Spec.MaxReplicas = rec.MaxReplicas
		delete(hpa.Annotations, AnnotationPrewarm)
		_, err = hpas.Update(ctx, hpa, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("restoring HPA %s: %w", name, err)
	}
	return rec, nil
}

// CarryPrewarm keeps a prewarm in force across a re-apply of objs: an HPA
// whose live object carries a prewarm record keeps its live floor and
// ceiling instead of the file's, so neither `apply` nor a rollout's switch
// undoes a prewarm mid-peak; `prewarm --restore` is what puts them back.
func (c *Client) CarryPrewarm(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		if o.GetKind() != "HorizontalPodAutoscaler" {
			continue
		}
		hpa, err := c.Clientset.AutoscalingV2().HorizontalPodAutoscalers(c.Namespace).Get(ctx, o.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading HPA %s: %w", o.GetName(), err)
		}
		rec, err := ReadPrewarm(hpa)
		if err != nil || rec == nil {
			return err
		}
		if hpa.Spec.MinReplicas != nil {
			if err := unstructured.SetNestedField(o.Object, int64(*hpa.Spec.MinReplicas), "spec", "minReplicas"); err != nil {
				return err
			}
		}
		if err := unstructured.SetNestedField(o.Object, int64(hpa.Spec.MaxReplicas), "spec", "maxReplicas"); err != nil {
			return err
		}
	}
	return nil
}
