package k8s

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/rollout"
)

// liveInstance reads what a colour's Deployment runs from the object itself:
// the revision from aideploy's annotation when a rollout wrote one (revision 0
// when `aideploy apply` or a human made it), but the image and the replica
// count as they are now, since kubectl, the autoscaler or prewarm may have
// changed them since.
func liveInstance(d *appsv1.Deployment, c rollout.Color) (rollout.Instance, error) {
	var dep rollout.Deployment
	if s := d.Annotations[AnnotationRev]; s != "" {
		if err := json.Unmarshal([]byte(s), &dep); err != nil {
			return rollout.Instance{}, fmt.Errorf("reading annotation %s of Deployment %s: %w; delete the annotation to adopt it as revision 0", AnnotationRev, d.Name, err)
		}
	}
	dep.Color = c
	if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 {
		dep.Image = cs[0].Image
	}
	n := 1 // the API server's default when spec.replicas is unset
	if d.Spec.Replicas != nil {
		n = int(*d.Spec.Replicas)
	}
	dep.Replicas = n
	return rollout.Instance{Deployment: dep, Running: n, Total: n, Ready: int(d.Status.ReadyReplicas), Created: d.CreationTimestamp.Time}, nil
}

// adopt says what serves from what the cluster holds: the Deployment of the
// colour the active Service selects. Nothing serves when there is no Service,
// it selects no colour, or the colour it selects has no Deployment (then a
// rollout must not take the other colour's Deployment for the serving one).
func adopt(selected rollout.Color, instances []rollout.Instance) *rollout.Deployment {
	if selected == "" {
		return nil
	}
	for _, in := range instances {
		if in.Color == selected {
			d := in.Deployment
			return &d
		}
	}
	return nil
}

// floor is the fewest replicas a new colour may start with: the serving
// colour's live count when an autoscaler sizes it, and never below the
// autoscaler's floor (HPA minReplicas or ScaledObject minReplicaCount, which a
// prewarm raises). Without an autoscaler the file's count rules.
func (p *Platform) floor(ctx context.Context, live *rollout.Deployment) (int, error) {
	// The file's engine says which kind to read, so a Role for an HPA needs
	// no rights on KEDA's resources.
	a := Autoscaler{Kind: KindHPA, Name: p.name}
	if p.o.Config != nil && p.o.Config.Autoscaling.Engine == config.EngineKEDA {
		a.Kind = KindScaledObject
	}
	f := a.floor()
	o, err := p.c.Dynamic.Resource(f.gvr).Namespace(p.c.Namespace).Get(ctx, p.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return 0, nil
	case apierrors.IsForbidden(err):
		p.logf("cannot read %s (%v): the new colour starts at the serving colour's count", a, err)
		if live != nil {
			return live.Replicas, nil
		}
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("reading %s: %w", a, err)
	}
	lo, _, err := f.bounds(o)
	if err != nil {
		return 0, fmt.Errorf("reading the bounds of %s: %w", a, err)
	}
	// KEDA's HPA keeps at least one replica; below that KEDA itself activates.
	n := max(1, int(lo))
	if live != nil {
		n = max(n, live.Replicas)
	}
	return n, nil
}

// Restore puts in back in its colour's slot: the Deployment of its revision,
// image and replica count, rendered from the current configuration. A failed
// rollout that had to reuse a slot leaves it as it found it.
func (p *Platform) Restore(ctx context.Context, in rollout.Instance) error {
	d := in.Deployment
	d.Replicas = in.Running
	objs, err := p.manifests(d.Color, &d)
	if err != nil {
		return err
	}
	objs = pick(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "Deployment" })
	if _, err := p.c.Apply(ctx, objs, false); err != nil {
		return fmt.Errorf("restoring %s: %w", ColorName(p.name, d.Color), err)
	}
	return nil
}
