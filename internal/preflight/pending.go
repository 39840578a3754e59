package preflight

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// PendingPod is a pod of the service that the scheduler cannot place, with
// the reason as aideploy status shows it (internal/k8s reads both).
type PendingPod struct {
	Name   string
	Reason string
}

// checkPendingPods names why the service's pods stay Pending: a deployment
// that exists but cannot be placed fails here, with what is missing, rather
// than at the next rollout's health step.
func (r *runner) checkPendingPods(ctx context.Context) []Result {
	const id = "k8s.pending-pods"
	sub := r.opts.Service
	pods, err := r.opts.PendingPods(ctx)
	if err != nil {
		return []Result{warn(id, sub, firstLine(err), "", "grant list on pods in the namespace, or check the kubeconfig context")}
	}
	if len(pods) == 0 {
		return []Result{pass(id, sub, "no pod waits for the scheduler", "")}
	}
	byReason := map[string][]string{}
	for _, p := range pods {
		byReason[p.Reason] = append(byReason[p.Reason], p.Name)
	}
	reasons := make([]string, 0, len(byReason))
	for reason := range byReason {
		reasons = append(reasons, reason)
	}
	sort.Strings(reasons)
	var out []Result
	for _, reason := range reasons {
		names := byReason[reason]
		out = append(out, fail(id, sub, fmt.Sprintf("%d pod(s) Pending: %s (%s)", len(names), reason, strings.Join(names, ", ")),
			"every pod scheduled", pendingRemedy(reason, names[0])))
	}
	return out
}

// pendingRemedy says what fixes a scheduling reason.
func pendingRemedy(reason, pod string) string {
	switch {
	case strings.Contains(strings.ToLower(reason), "persistentvolumeclaim"):
		return "create the claim (aideploy apply applies the rendered k8s/pvc.yaml; it binds only where a StorageClass provisions it), or set model.volume to emptyDir or hostPath"
	case strings.Contains(reason, "Insufficient "+string(gpuResource)):
		return "free GPUs (aideploy status shows what holds them) or add GPU nodes, or lower resources.gpus or replicas"
	case strings.Contains(reason, "taint"):
		return "give the pods a toleration for that taint, or remove the taint from the nodes meant for them"
	case strings.Contains(reason, "affinity/selector"):
		return "check resources.gpuProduct against the nodes' " + gpuProductLabel + " labels (kubectl get nodes -L " + gpuProductLabel + ")"
	case strings.Contains(reason, "Insufficient"):
		return "lower resources.cpu/memory or add nodes with room for a replica"
	}
	return "kubectl describe pod " + pod + " names the scheduler's reason"
}
