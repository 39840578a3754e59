package preflight

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Kubernetes names the checks read.
const (
	gpuResource          corev1.ResourceName = "nvidia.com/gpu"
	gpuProductLabel                          = "nvidia.com/gpu.product"
	gpuMemoryLabel                           = "nvidia.com/gpu.memory" // MiB, from GPU Feature Discovery
	metricsGroup                             = "metrics.k8s.io"
	customMetricsGroup                       = "custom.metrics.k8s.io"
	customMetricsVersion                     = "custom.metrics.k8s.io/v1beta1"
)

func (r *runner) kubernetesGroup(ctx context.Context) []Result {
	const id, sub = "k8s.cluster", "cluster"
	required := r.opts.Require.Kubernetes
	if r.opts.Kubernetes == nil {
		return []Result{skipOrFail(required, id, sub, "no cluster configured", "pass --kubeconfig/--context or set KUBECONFIG")}
	}
	cs, err := r.opts.Kubernetes()
	if err != nil {
		return []Result{skipOrFail(required, id, sub, firstLine(err), "pass --kubeconfig/--context or set KUBECONFIG")}
	}
	reach := runOne(ctx, r.opts.CheckTimeout, check{id: id, subject: sub, run: func(context.Context) []Result {
		v, err := cs.Discovery().ServerVersion()
		if err != nil {
			return []Result{skipOrFail(required, id, sub, "cluster not reachable: "+firstLine(err),
				"check the kubeconfig context (kubectl cluster-info)")}
		}
		return []Result{pass(id, sub, "Kubernetes "+v.GitVersion, "reachable")}
	}})
	if reach[0].Status != Pass {
		return reach
	}
	checks := []check{
		{id: "k8s.gpu-capacity", subject: sub, run: func(ctx context.Context) []Result {
			return r.checkClusterGPUs(ctx, cs)
		}},
		{id: "k8s.metrics-api", subject: sub, run: func(context.Context) []Result {
			return r.checkMetricsAPIs(cs)
		}},
		{id: "k8s.model-storage", subject: "model volume", run: func(ctx context.Context) []Result {
			return r.checkModelStorage(ctx, cs)
		}},
	}
	if r.opts.PendingPods != nil {
		checks = append(checks, check{id: "k8s.pending-pods", subject: r.opts.Service, run: r.checkPendingPods})
	}
	return append(reach, runChecks(ctx, r.opts.CheckTimeout, checks)...)
}

// nodeGPUs is what one schedulable node offers.
type nodeGPUs struct {
	name        string
	allocatable int64
	requested   int64
	product     string
	memoryMiB   int64 // 0: no label
}

func (n nodeGPUs) free() int64 { return max(n.allocatable-n.requested, 0) }

// checkClusterGPUs reports free GPU capacity and whether the nodes' GPUs fit the model.
func (r *runner) checkClusterGPUs(ctx context.Context, cs kubernetes.Interface) []Result {
	const sub = "cluster"
	if !r.opts.Req.wantsGPU() {
		return []Result{skip("k8s.gpu-capacity", sub, "no GPUs requested")}
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return []Result{fail("k8s.gpu-capacity", sub, "listing nodes: "+firstLine(err), "", "grant list on nodes to this user, or run as a cluster admin")}
	}
	gpus := schedulableGPUNodes(nodes.Items)
	var results []Result
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "status.phase!=Succeeded,status.phase!=Failed"})
	if err != nil {
		results = append(results, warn("k8s.gpu-capacity", sub, "listing pods: "+firstLine(err), "",
			"grant list on pods cluster-wide; free GPUs are counted from allocatable only"))
	} else {
		subtractRequests(gpus, pods.Items)
	}
	results = append(results, gpuCapacity(gpus, r.opts.Req))
	return append(results, gpuLabels(gpus, r.opts.Req, r.estimate))
}

func schedulableGPUNodes(nodes []corev1.Node) []nodeGPUs {
	var out []nodeGPUs
	for _, n := range nodes {
		q, ok := n.Status.Allocatable[gpuResource]
		if !ok || q.Value() == 0 || !schedulable(n) {
			continue
		}
		g := nodeGPUs{name: n.Name, allocatable: q.Value(), product: n.Labels[gpuProductLabel]}
		if mem, err := strconv.ParseInt(n.Labels[gpuMemoryLabel], 10, 64); err == nil {
			g.memoryMiB = mem
		}
		out = append(out, g)
	}
	return out
}

// schedulable: not cordoned, Ready, and no hard taint other than the GPU taints GPU pods tolerate.
func schedulable(n corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	for _, t := range n.Spec.Taints {
		if t.Effect != corev1.TaintEffectPreferNoSchedule && !strings.HasPrefix(t.Key, "nvidia.com/") {
			return false
		}
	}
	return ready
}

// subtractRequests counts the GPUs that running and pending pods hold on each node.
func subtractRequests(nodes []nodeGPUs, pods []corev1.Pod) {
	idx := map[string]int{}
	for i, n := range nodes {
		idx[n.name] = i
	}
	for _, p := range pods {
		i, ok := idx[p.Spec.NodeName]
		if !ok || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		nodes[i].requested += podGPUs(p.Spec)
	}
}

// podGPUs is the pod's effective GPU request: the containers' sum, or the largest init container's.
func podGPUs(spec corev1.PodSpec) int64 {
	var sum, initMax int64
	for _, c := range spec.Containers {
		sum += containerGPUs(c)
	}
	for _, c := range spec.InitContainers {
		initMax = max(initMax, containerGPUs(c))
	}
	return max(sum, initMax)
}

func containerGPUs(c corev1.Container) int64 {
	if q, ok := c.Resources.Requests[gpuResource]; ok {
		return q.Value()
	}
	if q, ok := c.Resources.Limits[gpuResource]; ok {
		return q.Value()
	}
	return 0
}

func gpuCapacity(nodes []nodeGPUs, req Requirements) Result {
	const id, sub = "k8s.gpu-capacity", "cluster"
	per := int64(req.GPUsPerReplica)
	var free, fits int64
	for _, n := range nodes {
		free += n.free()
		fits += n.free() / per
	}
	need := int64(req.NeededReplicas())
	measured := fmt.Sprintf("%d free GPU(s) on %d schedulable node(s): room for %d replica(s)", free, len(nodes), fits)
	threshold := fmt.Sprintf(">= %d replica(s) × %d GPU(s)", need, per)
	if req.BlueGreen {
		threshold += " (blue/green runs both colours)"
	}
	if fits < need {
		return fail(id, sub, measured, threshold,
			"add GPU nodes (or free GPUs held by other pods) before deploying; new pods would stay Pending")
	}
	return pass(id, sub, measured, threshold)
}

// gpuLabels compares GPU Feature Discovery's labels with the model estimate and the wanted product.
func gpuLabels(nodes []nodeGPUs, req Requirements, est *MemoryEstimate) Result {
	const id, sub = "k8s.gpu-labels", "cluster"
	if len(nodes) == 0 {
		return skip(id, sub, "no schedulable GPU nodes")
	}
	var need int64
	threshold := ""
	if est != nil {
		need = int64((est.PerGPU + (1 << 20) - 1) >> 20)
		threshold = fmt.Sprintf("%s >= %d MiB (model estimate)", gpuMemoryLabel, need)
	}
	if req.GPUProduct != "" {
		threshold = strings.TrimPrefix(threshold+", product "+req.GPUProduct, ", ")
	}
	labelled, fit := 0, 0
	var kinds []string
	for _, n := range nodes {
		if n.product == "" && n.memoryMiB == 0 {
			continue
		}
		labelled++
		kind := fmt.Sprintf("%s (%d MiB)", cmpOrString(n.product, "unknown product"), n.memoryMiB)
		if !slices.Contains(kinds, kind) {
			kinds = append(kinds, kind)
		}
		if (need == 0 || n.memoryMiB >= need) && (req.GPUProduct == "" || productMatches(n.product, req.GPUProduct)) {
			fit++
		}
	}
	if labelled == 0 {
		return warn(id, sub, "no "+gpuProductLabel+" labels", threshold,
			"install GPU Feature Discovery (part of the NVIDIA GPU Operator) so GPU models and memory are known")
	}
	measured := fmt.Sprintf("%d of %d labelled GPU node(s) fit: %s", fit, labelled, strings.Join(kinds, ", "))
	switch {
	case fit == 0:
		return fail(id, sub, measured, threshold, "no node's GPU fits: use larger GPUs, raise tensorParallel or lower the context")
	case fit < len(nodes):
		return warn(id, sub, measured, threshold,
			"pods may land on a GPU that is too small: add a nodeSelector on "+gpuProductLabel)
	}
	return pass(id, sub, measured, threshold)
}

// checkMetricsAPIs checks that the APIs the HPA's targets read from are served.
func (r *runner) checkMetricsAPIs(cs kubernetes.Interface) []Result {
	const sub = "cluster"
	as := r.opts.Req.Autoscaling
	var resourceMetrics, customMetrics []string
	for _, m := range as.Metrics {
		if m == "cpu" || m == "memory" {
			resourceMetrics = append(resourceMetrics, m)
		} else {
			customMetrics = append(customMetrics, m)
		}
	}
	if !as.Enabled || len(as.Metrics) == 0 {
		return []Result{skip("k8s.metrics-api", sub, "no autoscaling")}
	}
	groups, err := cs.Discovery().ServerGroups()
	if err != nil {
		return []Result{warn("k8s.metrics-api", sub, "listing API groups: "+firstLine(err), "", "check kubectl api-versions")}
	}
	served := map[string]bool{}
	for _, g := range groups.Groups {
		served[g.Name] = true
	}
	var results []Result
	const mid = "k8s.metrics-api"
	switch {
	case len(resourceMetrics) == 0:
		results = append(results, skip(mid, sub, "no cpu or memory target"))
	case served[metricsGroup]:
		results = append(results, pass(mid, sub, metricsGroup+" served", metricsGroup+" for "+strings.Join(resourceMetrics, ", ")))
	default:
		results = append(results, fail(mid, sub, metricsGroup+" not served", metricsGroup+" for "+strings.Join(resourceMetrics, ", "),
			"install metrics-server; without it the HPA's "+strings.Join(resourceMetrics, "/")+" targets stay <unknown>"))
	}
	const cid = "k8s.custom-metrics-api"
	threshold := customMetricsGroup + " for " + strings.Join(customMetrics, ", ")
	switch {
	case len(customMetrics) == 0:
		return append(results, skip(cid, sub, "no custom metric target"))
	case !served[customMetricsGroup]:
		return append(results, fail(cid, sub, customMetricsGroup+" not served", threshold,
			"install prometheus-adapter (or KEDA) to serve "+strings.Join(customMetrics, ", ")+"; without it the HPA never scales on it"))
	}
	missing := missingCustomMetrics(cs, customMetrics)
	if len(missing) > 0 {
		return append(results, warn(cid, sub, customMetricsGroup+" served, but not "+strings.Join(missing, ", "), threshold,
			"add a prometheus-adapter rule that exposes the metric for pods"))
	}
	return append(results, pass(cid, sub, customMetricsGroup+" serves "+strings.Join(customMetrics, ", "), threshold))
}

// missingCustomMetrics lists the pods metrics the custom metrics API does not expose.
func missingCustomMetrics(cs kubernetes.Interface, names []string) []string {
	list, err := cs.Discovery().ServerResourcesForGroupVersion(customMetricsVersion)
	if err != nil {
		return nil // an adapter may list metrics lazily; served is enough
	}
	have := map[string]bool{}
	for _, r := range list.APIResources {
		have[r.Name] = true
	}
	var missing []string
	for _, n := range names {
		if !have["pods/"+n] {
			missing = append(missing, n)
		}
	}
	return missing
}

func cmpOrString(v, fallback string) string {
	if v != "" {
		return v
	}
	return fallback
}
