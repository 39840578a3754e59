package k8s

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/aideploy/aideploy/internal/rollout"
)

// LockHolder returns who holds the service's rollout Lease, nil when nobody
// does, and whether that holder's process is known to be gone.
func (p *Platform) LockHolder(ctx context.Context) (*rollout.Holder, bool, error) {
	l, err := p.c.Clientset.CoordinationV1().Leases(p.c.Namespace).Get(ctx, p.lockName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading Lease %s: %w", p.lockName(), err)
	}
	h, err := holderOf(l)
	if h == nil {
		return nil, false, nil
	}
	if err != nil {
		h.Owner = *l.Spec.HolderIdentity
	}
	return h, h.Gone(), nil
}

// downKinds are the kinds aideploy creates for a service, in the order Down
// removes them: traffic first, then the workloads, then their bookkeeping.
var downKinds = []schema.GroupVersionResource{
	{Version: "v1", Resource: "services"},
	{Group: "batch", Version: "v1", Resource: "cronjobs"},
	{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
	{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Version: "v1", Resource: "configmaps"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	{Version: "v1", Resource: "serviceaccounts"},
}

// Down deletes every object aideploy made for the service in the namespace:
// the Services, both colours' Deployments (their pods go in the background,
// as kubectl delete does), the autoscaler, the disruption budget, prewarm
// CronJobs with their ServiceAccount and Role, the rollout history and the
// rollout Lease. It picks objects by
// the labels app.kubernetes.io/name and app.kubernetes.io/managed-by=aideploy,
// so what others made beside them stays. It returns how many it deleted.
func (p *Platform) Down(ctx context.Context) (int, error) {
	sel := LabelName + "=" + p.name + ",app.kubernetes.io/managed-by=" + FieldManager
	background := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &background}
	n := 0
	for _, gvr := range downKinds {
		ri := p.c.Dynamic.Resource(gvr).Namespace(p.c.Namespace)
		list, err := ri.List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return n, fmt.Errorf("listing the %s of %s: %w", gvr.Resource, p.name, err)
		}
		for _, o := range list.Items {
			if err := ri.Delete(ctx, o.GetName(), del); err != nil && !apierrors.IsNotFound(err) {
				return n, fmt.Errorf("deleting %s %s: %w", o.GetKind(), o.GetName(), err)
			}
			p.logf("deleted %s/%s", o.GetKind(), o.GetName())
			n++
		}
	}
	err := p.c.Clientset.CoordinationV1().Leases(p.c.Namespace).Delete(ctx, p.lockName(), metav1.DeleteOptions{})
	switch {
	case err == nil:
		p.logf("deleted Lease/%s", p.lockName())
		n++
	case !apierrors.IsNotFound(err):
		return n, fmt.Errorf("deleting Lease %s: %w", p.lockName(), err)
	}
	return n, nil
}
