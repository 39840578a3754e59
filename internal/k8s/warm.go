package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aideploy/aideploy/internal/rollout"
)

// AnnotationWarm on a retired colour's Deployment says until when it stays
// running for an instant rollback (rollout.keepWarm), as JSON.
const AnnotationWarm = "aideploy.dev/warm-until"

// warmRecord is the value of AnnotationWarm.
type warmRecord struct {
	Revision int       `json:"revision"`
	Until    time.Time `json:"until"`
}

// KeepWarm leaves d running and records until when: the first aideploy run
// under the rollout lock after then (a rollout, rollback or down) scales it
// to zero; status shows the window.
func (p *Platform) KeepWarm(ctx context.Context, d rollout.Deployment, until time.Time) error {
	b, err := json.Marshal(warmRecord{Revision: d.Revision, Until: until.UTC()})
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{AnnotationWarm: string(b)}}})
	if err != nil {
		return err
	}
	name := ColorName(p.name, d.Color)
	_, err = p.c.Clientset.AppsV1().Deployments(p.c.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("marking %s warm until %s: %w", name, until.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// warmUntil reads the keep-warm window of a Deployment running revision rev.
func warmUntil(ann map[string]string, rev int) (time.Time, bool) {
	var w warmRecord
	if s := ann[AnnotationWarm]; s == "" || json.Unmarshal([]byte(s), &w) != nil || w.Revision != rev {
		return time.Time{}, false
	}
	return w.Until, true
}

// retireCooled scales to zero every colour that does not serve and whose
// keep-warm window has passed; it runs under the rollout lock.
func (p *Platform) retireCooled(ctx context.Context) error {
	serving, err := p.c.ActiveColor(ctx, p.name)
	if err != nil {
		return err
	}
	for _, c := range []rollout.Color{rollout.Blue, rollout.Green} {
		if c == serving {
			continue
		}
		d, err := p.c.Clientset.AppsV1().Deployments(p.c.Namespace).Get(ctx, ColorName(p.name, c), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading Deployment %s: %w", ColorName(p.name, c), err)
		}
		in, err := liveInstance(d, c)
		if err != nil {
			return err
		}
		until, ok := warmUntil(d.Annotations, in.Revision)
		if !ok || in.Running == 0 || p.now().Before(until) {
			continue
		}
		if err := p.scale(ctx, in.Deployment, 0); err != nil {
			return err
		}
		p.logf("scaled %s down: its keep-warm window ended at %s; a rollback to it is now a cold start", in.Deployment, until.Format(time.RFC3339))
	}
	return nil
}
