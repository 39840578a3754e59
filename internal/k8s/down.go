package k8s

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/aideploy/aideploy/internal/rollout"
)

// LockHolder returns who holds the service's rollout Lease, nil when nobody
// does, and whether that holder is known to be gone: its process ended on
// this host, or its Lease expired unrenewed.
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
	expiry, ok := leaseExpiry(l)
	return h, h.Gone() || (ok && !p.now().Before(expiry)), nil
}

// downKinds are the kinds aideploy creates for a service, in the order Down
// removes them: traffic first, then the workloads, then their bookkeeping.
var downKinds = []schema.GroupVersionResource{
	{Version: "v1", Resource: "services"},
	{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
	{Group: "batch", Version: "v1", Resource: "cronjobs"},
	// Before the HPAs: KEDA would remake its keda-hpa-<name>, which carries
	// the ScaledObject's labels, while the ScaledObject is there.
	ScaledObjects,
	{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
	{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"},
	{Version: "v1", Resource: "configmaps"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	{Version: "v1", Resource: "serviceaccounts"},
}

// optionalKinds are the downKinds a cluster may not serve: a cluster
// without KEDA has no ScaledObjects to delete.
var optionalKinds = map[schema.GroupVersionResource]bool{ScaledObjects: true}

// Down deletes every object aideploy made for the service in the namespace:
// the Services, both colours' Deployments (their pods go in the background,
// as kubectl delete does), the autoscaler (HPA or KEDA ScaledObject), the
// disruption budget, prewarm CronJobs with their ServiceAccount and Role,
// the gateway's objects and its Redis, the rollout history and the rollout
// Lease. It picks objects by the labels app.kubernetes.io/name
// (app.kubernetes.io/part-of for the gateway's) and
// app.kubernetes.io/managed-by=aideploy, so what others made beside them
// stays; the admin token Secret, which the operator made, stays too. It
// returns how many it deleted.
func (p *Platform) Down(ctx context.Context) (int, error) {
	managed := ",app.kubernetes.io/managed-by=" + FieldManager
	selectors := []string{LabelName + "=" + p.name + managed, LabelPartOf + "=" + p.name + managed}
	background := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &background}
	n := 0
	for _, gvr := range downKinds {
		ri := p.c.Dynamic.Resource(gvr).Namespace(p.c.Namespace)
		done := map[string]bool{}
		for _, sel := range selectors {
			list, err := ri.List(ctx, metav1.ListOptions{LabelSelector: sel})
			if optionalKinds[gvr] && (apierrors.IsNotFound(err) || meta.IsNoMatchError(err)) {
				break // the cluster does not serve the kind: nothing of it to delete
			}
			if err != nil {
				return n, fmt.Errorf("listing the %s of %s: %w", gvr.Resource, p.name, err)
			}
			for _, o := range list.Items {
				if done[o.GetName()] {
					continue
				}
				done[o.GetName()] = true
				if err := ri.Delete(ctx, o.GetName(), del); err != nil && !apierrors.IsNotFound(err) {
					return n, fmt.Errorf("deleting %s %s: %w", o.GetKind(), o.GetName(), err)
				}
				p.logf("deleted %s/%s", o.GetKind(), o.GetName())
				n++
			}
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

// PodsLeft counts the service's model pods that still exist, terminating ones
// included, and the GPUs they request: until they are gone the GPUs are not
// free for anything else, a new rollout of the service included.
func (p *Platform) PodsLeft(ctx context.Context) (pods int, gpus int64, err error) {
	list, err := p.c.Clientset.CoreV1().Pods(p.c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelName + "=" + p.name + "," + LabelColor})
	if err != nil {
		return 0, 0, fmt.Errorf("listing the pods of %s: %w", p.name, err)
	}
	for i := range list.Items {
		gpus += PodGPUs(&list.Items[i].Spec)
	}
	return len(list.Items), gpus, nil
}

// PodsLeftError says the service's pods were still there when a wait ended.
type PodsLeftError struct {
	Service, Namespace string
	Pods               int
	GPUs               int64
	Err                error // why the wait ended
}

func (e *PodsLeftError) Error() string {
	return fmt.Sprintf("%d pod(s) of %s are still terminating and hold %d GPU(s) (%v); watch them with: kubectl get pods -n %s -l %s=%s",
		e.Pods, e.Service, e.GPUs, e.Err, e.Namespace, LabelName, e.Service)
}

func (e *PodsLeftError) Unwrap() error { return e.Err }

// WaitPodsGone waits until the service's model pods are gone, as kubectl
// delete --wait does for the objects it deletes, logging each change in
// their number. When ctx ends first it returns a *PodsLeftError.
func (p *Platform) WaitPodsGone(ctx context.Context) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last, lastGPUs := -1, int64(0)
	for {
		n, gpus, err := p.PodsLeft(ctx)
		if err != nil {
			if ctx.Err() != nil && last > 0 {
				return &PodsLeftError{Service: p.name, Namespace: p.c.Namespace, Pods: last, GPUs: lastGPUs, Err: ctx.Err()}
			}
			return err
		}
		if n == 0 {
			return nil
		}
		if n != last {
			p.logf("waiting for %d pod(s) of %s to terminate (%d GPU(s) held)", n, p.name, gpus)
		}
		last, lastGPUs = n, gpus
		select {
		case <-ctx.Done():
			return &PodsLeftError{Service: p.name, Namespace: p.c.Namespace, Pods: n, GPUs: gpus, Err: ctx.Err()}
		case <-tick.C:
		}
	}
}
