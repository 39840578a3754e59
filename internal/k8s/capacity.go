package k8s

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GPU is the extended resource of the NVIDIA device plugin.
const GPU corev1.ResourceName = "nvidia.com/gpu"

// Capacity is the GPU capacity of the schedulable nodes of the cluster.
type Capacity struct {
	// Nodes is the number of schedulable nodes with GPUs (that the pod may use, see ReadCapacityFor).
	Nodes int
	// Allocatable is the sum of their allocatable GPUs.
	Allocatable int64
	// Used is what pods bound to them request.
	Used int64
	// NodesHidden says the nodes could not be listed (namespace-scoped rights):
	// the figures above are unknown, and the caller goes on without them.
	NodesHidden error
	// PodsOf, when set, is the only namespace whose pods could be listed: Used
	// then counts those alone and is a lower bound.
	PodsOf string
	// pods are the pods read, for UsedBy.
	pods []corev1.Pod
}

// Free is the number of GPUs no pod requests.
func (c Capacity) Free() int64 { return max(c.Allocatable-c.Used, 0) }

// Unseen says what the reading could not see, "" when it saw everything.
func (c Capacity) Unseen() string {
	switch {
	case c.NodesHidden != nil:
		return fmt.Sprintf("cannot list nodes with these rights (%v), so GPU capacity is unknown", c.NodesHidden)
	case c.PodsOf != "":
		return fmt.Sprintf("can list pods of namespace %s only, so GPUs held by other namespaces count as free", c.PodsOf)
	}
	return ""
}

// UsedBy sums the GPUs requested by bound pods matching labels in namespace ns.
func (c Capacity) UsedBy(ns string, labels map[string]string) int64 {
	var n int64
	for i := range c.pods {
		p := &c.pods[i]
		if p.Namespace == ns && p.Spec.NodeName != "" && matches(p.Labels, labels) {
			n += PodGPUs(&p.Spec)
		}
	}
	return n
}

// ReadCapacity sums allocatable GPUs of schedulable nodes and the requests of
// the pods bound to them.
func (c *Client) ReadCapacity(ctx context.Context) (Capacity, error) {
	return c.ReadCapacityFor(ctx, nil)
}

// ReadCapacityFor is ReadCapacity over the nodes a pod of spec may run on:
// those its nodeSelector (gpuProduct) matches and whose NoSchedule and
// NoExecute taints it tolerates; nil counts every GPU node. With rights in
// one namespace only it reads what it may and says what it could not
// (Capacity.Unseen) instead of failing.
func (c *Client) ReadCapacityFor(ctx context.Context, spec *corev1.PodSpec) (Capacity, error) {
	var capa Capacity
	nodes, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		capa.NodesHidden = err
		return capa, nil
	}
	if err != nil {
		return capa, fmt.Errorf("listing nodes: %w", err)
	}
	gpuNodes := map[string]bool{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		q, ok := n.Status.Allocatable[GPU]
		if !ok || q.Value() == 0 || n.Spec.Unschedulable || !fits(spec, n) {
			continue
		}
		gpuNodes[n.Name] = true
		capa.Nodes++
		capa.Allocatable += q.Value()
	}
	live := metav1.ListOptions{FieldSelector: "status.phase!=Succeeded,status.phase!=Failed"}
	pods, err := c.Clientset.CoreV1().Pods("").List(ctx, live)
	if apierrors.IsForbidden(err) {
		capa.PodsOf = c.Namespace
		pods, err = c.Clientset.CoreV1().Pods(c.Namespace).List(ctx, live)
	}
	if err != nil {
		return capa, fmt.Errorf("listing pods: %w", err)
	}
	capa.pods = pods.Items
	for i := range pods.Items {
		p := &pods.Items[i]
		if gpuNodes[p.Spec.NodeName] {
			capa.Used += PodGPUs(&p.Spec)
		}
	}
	return capa, nil
}

// fits reports whether a pod of spec may be placed on n as far as labels and
// taints go; nil fits everywhere.
func fits(spec *corev1.PodSpec, n *corev1.Node) bool {
	if spec == nil {
		return true
	}
	if !matches(n.Labels, spec.NodeSelector) {
		return false
	}
	for i := range n.Spec.Taints {
		t := &n.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		tolerated := false
		for j := range spec.Tolerations {
			if tolerates(&spec.Tolerations[j], t) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			return false
		}
	}
	return true
}

// tolerates is the scheduler's toleration rule for one taint.
func tolerates(tol *corev1.Toleration, t *corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != t.Key {
		return false
	}
	switch tol.Operator {
	case corev1.TolerationOpExists:
		return true
	case "", corev1.TolerationOpEqual:
		return tol.Key == t.Key && tol.Value == t.Value
	}
	return false
}

// PodGPUs is the number of GPUs a pod asks for.
func PodGPUs(spec *corev1.PodSpec) int64 {
	var n int64
	for _, c := range spec.Containers {
		if q, ok := c.Resources.Requests[GPU]; ok {
			n += q.Value()
		} else if q, ok := c.Resources.Limits[GPU]; ok {
			n += q.Value()
		}
	}
	return n
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// unschedulable returns the scheduler's message when the pod cannot be placed.
func unschedulable(p *corev1.Pod) (string, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Message, true
		}
	}
	return "", false
}

// waitsForNodes reports whether a FailedScheduling message is one a node
// autoscaler can fix by adding nodes (lack of resources), not one that no
// new node fixes (a missing claim).
func waitsForNodes(msg string) bool {
	return !strings.Contains(msg, "persistentvolumeclaim") && !strings.Contains(msg, "volume")
}

// podReady reports the pod's Ready condition.
func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// schedulerReason shortens a FailedScheduling message such as
// "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector,
// 3 Insufficient nvidia.com/gpu. preemption: ..." to what is missing:
// "Insufficient nvidia.com/gpu on all 3 GPU nodes".
func schedulerReason(msg string, gpuNodes int) string {
	body := msg
	if i := strings.Index(body, "are available: "); i >= 0 {
		body = body[i+len("are available: "):]
	}
	if i := strings.Index(body, " preemption:"); i >= 0 {
		body = body[:i]
	}
	body = strings.TrimSuffix(strings.TrimSpace(body), ".")
	var insufficient, other []string
	for _, part := range strings.Split(body, ", ") {
		count, text, ok := strings.Cut(strings.TrimSpace(part), " ")
		n, err := strconv.Atoi(count)
		if !ok || err != nil {
			other = append(other, part)
			continue
		}
		if !strings.HasPrefix(text, "Insufficient ") {
			other = append(other, part)
			continue
		}
		switch {
		case text == "Insufficient "+string(GPU) && n == gpuNodes && n > 1:
			insufficient = append(insufficient, fmt.Sprintf("%s on all %d GPU nodes", text, n))
		case n == 1:
			insufficient = append(insufficient, text+" on 1 node")
		default:
			insufficient = append(insufficient, fmt.Sprintf("%s on %d nodes", text, n))
		}
	}
	if len(insufficient) > 0 {
		sort.Strings(insufficient)
		return strings.Join(insufficient, ", ")
	}
	if body == "" {
		return "unschedulable"
	}
	return body
}
