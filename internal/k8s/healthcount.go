package k8s

import (
	"context"
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aideploy/aideploy/internal/rollout"
)

// The health step's progress line needs the count.
var _ rollout.HealthCounter = (*Platform)(nil)

// CountHealthy counts the pods of d by health for the health step's progress
// line: Ready pods, pods that wait for a node, and the rest, still loading
// (WaitHealthy decides when one has failed).
func (p *Platform) CountHealthy(ctx context.Context, d rollout.Deployment) (rollout.HealthCount, error) {
	sel := LabelName + "=" + p.name + "," + LabelColor + "=" + string(d.Color)
	pods, err := p.c.Clientset.CoreV1().Pods(p.c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return rollout.HealthCount{}, fmt.Errorf("listing pods of %s: %w", ColorName(p.name, d.Color), err)
	}
	n := rollout.HealthCount{Want: d.Replicas}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp != nil || pod.Annotations[AnnotationRev] != strconv.Itoa(d.Revision) {
			continue
		}
		if podReady(pod) {
			n.Ready++
		} else if _, ok := unschedulable(pod); ok {
			n.Waiting++
		} else {
			n.Loading++
		}
	}
	return n, nil
}
