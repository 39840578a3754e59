package k8s

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// unschedulableGrace is how long pods may stay unschedulable for a reason
// other than missing GPUs before a wait gives up.
const unschedulableGrace = 10 * time.Second

// Progress counts the pods of a scale-up.
type Progress struct {
	Want          int    `json:"want"`
	Ready         int    `json:"ready"`
	Pending       int    `json:"pending"`       // created, not ready
	Unschedulable int    `json:"unschedulable"` // of the pending, how many no node can take
	Reason        string `json:"reason,omitempty"`
}

func (p Progress) String() string {
	s := fmt.Sprintf("%d/%d ready, %d pending", p.Ready, p.Want, p.Pending)
	if p.Unschedulable > 0 {
		s += fmt.Sprintf(" (%d unschedulable: %s)", p.Unschedulable, p.Reason)
	}
	return s
}

// CapacityError says the cluster cannot run what was asked, with the numbers.
type CapacityError struct {
	Progress Progress
	Free     int64 // GPUs this service could use: free ones and its own
	Needed   int64 // GPUs it needs for Want pods
}

func (e *CapacityError) Error() string {
	s := fmt.Sprintf("%d of %d pending: %s", e.Progress.Unschedulable, e.Progress.Want, e.Progress.Reason)
	if e.Needed > 0 {
		s += fmt.Sprintf("; %d GPUs free, %d needed", e.Free, e.Needed)
	}
	return s
}

// WaitScaled waits until the Deployment behind the autoscaler (HPA or
// ScaledObject) name has want Ready pods, reporting progress on every poll. It
// fails as soon as pods are unschedulable for lack of GPUs, and after
// unschedulableGrace for any other reason.
func (c *Client) WaitScaled(ctx context.Context, name string, want int, report func(Progress)) error {
	a, err := c.FindAutoscaler(ctx, name)
	if err != nil {
		return err
	}
	o, err := c.Dynamic.Resource(a.floor().gvr).Namespace(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading %s: %w", a, err)
	}
	deploy, _, err := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "name")
	if err != nil || deploy == "" {
		return fmt.Errorf("%s names no Deployment in spec.scaleTargetRef.name (%v); re-apply it with aideploy apply", a, err)
	}
	var since time.Time
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		d, err := c.Clientset.AppsV1().Deployments(c.Namespace).Get(ctx, deploy, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading Deployment %s: %w", deploy, err)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			return fmt.Errorf("reading the selector of Deployment %s: %w", deploy, err)
		}
		pods, err := c.Clientset.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return fmt.Errorf("listing pods of %s: %w", deploy, err)
		}
		p := Progress{Want: want}
		var msg string
		for i := range pods.Items {
			pod := &pods.Items[i]
			if pod.DeletionTimestamp != nil {
				continue
			}
			if podReady(pod) {
				p.Ready++
				continue
			}
			p.Pending++
			if m, ok := unschedulable(pod); ok {
				p.Unschedulable++
				msg = m
			}
		}
		if p.Unschedulable > 0 {
			capa, err := c.ReadCapacity(ctx)
			if err != nil {
				return err
			}
			p.Reason = schedulerReason(msg, capa.Nodes)
			perPod := PodGPUs(&d.Spec.Template.Spec)
			free := capa.Free() + capa.UsedBy(c.Namespace, d.Spec.Selector.MatchLabels)
			needed := perPod * int64(want)
			if since.IsZero() {
				since = time.Now()
			}
			if report != nil {
				report(p)
			}
			// Without the right to list nodes the GPU count is unknown: only the grace judges.
			short := capa.NodesHidden == nil && perPod > 0 && free < needed
			if short || time.Since(since) > unschedulableGrace {
				return &CapacityError{Progress: p, Free: free, Needed: needed}
			}
		} else {
			since = time.Time{}
			if report != nil {
				report(p)
			}
		}
		if p.Ready >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d ready pods of %s (%s): %w", want, deploy, p, ctx.Err())
		case <-tick.C:
		}
	}
}
