package k8s

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PendingPod is a pod of a service that the scheduler cannot place.
type PendingPod struct {
	Name   string
	Reason string // what is missing: a claim, GPUs, a toleration (SchedulingReason)
}

// SchedulingReason says why the scheduler cannot place pod, shortened to what
// is missing ("persistentvolumeclaim "chat-models" not found", "Insufficient
// nvidia.com/gpu on 3 nodes", an untolerated taint); ok is false while the pod
// is placed or may still be. status and preflight both name pending pods with it.
func SchedulingReason(pod *corev1.Pod) (reason string, ok bool) {
	msg, ok := unschedulable(pod)
	if !ok {
		return "", false
	}
	return schedulerReason(msg, 0), true
}

// PendingPods lists the pods of svc, any colour, that the scheduler cannot
// place, with the reason status shows. It needs only namespaced rights.
func (c *Client) PendingPods(ctx context.Context, svc string) ([]PendingPod, error) {
	pods, err := c.Clientset.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelName + "=" + svc})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of %s: %w", svc, err)
	}
	var out []PendingPod
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		if reason, ok := SchedulingReason(pod); ok {
			out = append(out, PendingPod{Name: pod.Name, Reason: reason})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}
