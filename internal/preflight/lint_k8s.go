package preflight

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// object is one Kubernetes document of a manifest file.
type object struct {
	file      string
	kind      string
	name      string
	namespace string
	json      []byte
}

func (o object) subject() string { return o.file + ":" + o.kind + "/" + o.name }

func decodeObjects(f Manifest) ([]object, error) {
	reader := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(f.Data)))
	var objs []object
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.Name, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", f.Name, err)
		}
		if len(bytes.TrimSpace(js)) == 0 || string(bytes.TrimSpace(js)) == "null" {
			continue
		}
		var meta struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(js, &meta); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", f.Name, err)
		}
		objs = append(objs, object{file: f.Name, kind: meta.Kind, name: meta.Metadata.Name, namespace: meta.Metadata.Namespace, json: js})
	}
}

// workload is a Deployment or StatefulSet, reduced to what the rules read.
type workload struct {
	object
	replicas int32
	template corev1.PodTemplateSpec
}

func (l *linter) kubernetes(objs []object) {
	var workloads []workload
	var hpas []hpaObject
	var pdbs []policyv1.PodDisruptionBudget
	for _, o := range objs {
		var err error
		switch o.kind {
		case "Deployment":
			var d appsv1.Deployment
			if err = json.Unmarshal(o.json, &d); err == nil {
				workloads = append(workloads, workload{o, replicasOf(d.Spec.Replicas), d.Spec.Template})
			}
		case "StatefulSet":
			var s appsv1.StatefulSet
			if err = json.Unmarshal(o.json, &s); err == nil {
				workloads = append(workloads, workload{o, replicasOf(s.Spec.Replicas), s.Spec.Template})
			}
		case "HorizontalPodAutoscaler":
			var h autoscalingv2.HorizontalPodAutoscaler
			if err = json.Unmarshal(o.json, &h); err == nil {
				hpas = append(hpas, hpaObject{o, h.Spec})
			}
		case "PodDisruptionBudget":
			var p policyv1.PodDisruptionBudget
			if err = json.Unmarshal(o.json, &p); err == nil {
				pdbs = append(pdbs, p)
			}
		}
		if err != nil {
			l.add(fail("lint.parse", o.subject(), firstLine(err), "", "fix the manifest so kubectl apply --dry-run=server accepts it"))
		}
	}
	for _, w := range workloads {
		l.workload(w)
		hpa := findHPA(hpas, w)
		if hpa != nil {
			l.hpa(*hpa, w)
		}
		if (w.replicas > 1 || hpa != nil) && !hasPDB(pdbs, w) {
			l.add(warn("lint.pdb", w.subject(), "no PodDisruptionBudget selects its pods", "a PodDisruptionBudget",
				"add a PodDisruptionBudget (maxUnavailable: 1) so a node drain cannot evict every replica at once"))
		}
	}
}

func replicasOf(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// gpuIntent says whether the pod is meant for GPU nodes: GPU resources, a GPU toleration,
// a GPU node selector or affinity, or a model-server image.
func (l *linter) gpuIntent(spec corev1.PodSpec) bool {
	if podGPUs(spec) > 0 {
		return true
	}
	for _, t := range spec.Tolerations {
		if strings.HasPrefix(t.Key, "nvidia.com/") {
			return true
		}
	}
	for k := range spec.NodeSelector {
		if strings.Contains(strings.ToLower(k), "gpu") {
			return true
		}
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil {
		if js, _ := json.Marshal(a.NodeAffinity); strings.Contains(string(js), "nvidia.com/gpu") {
			return true
		}
	}
	for _, c := range spec.Containers {
		if l.wantsGPUImage(c.Image) {
			return true
		}
	}
	return false
}

// gpuContainers are the containers that run the model: those with GPU resources, else
// the model-server image, else the first container.
func (l *linter) gpuContainers(spec corev1.PodSpec) []corev1.Container {
	var out []corev1.Container
	for _, c := range spec.Containers {
		if containerGPUs(c) > 0 {
			out = append(out, c)
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, c := range spec.Containers {
		if l.wantsGPUImage(c.Image) {
			out = append(out, c)
		}
	}
	if len(out) == 0 && len(spec.Containers) > 0 {
		out = append(out, spec.Containers[0])
	}
	return out
}

func (l *linter) workload(w workload) {
	spec := w.template.Spec
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		l.latestTag(w.subject(), c.Image)
	}
	if !l.gpuIntent(spec) {
		return
	}
	for _, c := range l.gpuContainers(spec) {
		l.gpuLimit(w, c)
		l.probes(w, c)
		l.memoryLimit(w, c)
	}
	if avail := l.opts.AvailableGPUs; avail > 0 {
		if need := int64(w.replicas) * podGPUs(spec); need > int64(avail) {
			l.add(fail("lint.replicas-gpus", w.subject(), fmt.Sprintf("%d replicas need %d GPUs", w.replicas, need), fmt.Sprintf("<= %d GPUs available", avail),
				"lower replicas or add GPU nodes; the extra pods stay Pending"))
		}
	}
}

func (l *linter) gpuLimit(w workload, c corev1.Container) {
	sub := w.subject()
	limit, hasLimit := c.Resources.Limits[gpuResource]
	request, hasRequest := c.Resources.Requests[gpuResource]
	switch {
	case !hasLimit:
		l.add(fail("lint.gpu-limit", sub, "container "+c.Name+" sets no nvidia.com/gpu limit", "limit = request >= 1",
			"set resources.limits[nvidia.com/gpu]; without it the pod lands on a GPU node but gets no GPU"))
	case hasRequest && request.Cmp(limit) != 0:
		l.add(fail("lint.gpu-limit", sub, fmt.Sprintf("container %s requests %s GPU(s) but limits %s", c.Name, request.String(), limit.String()),
			"limit = request", "set the nvidia.com/gpu request equal to the limit (GPUs cannot be overcommitted)"))
	}
}

// probeSpan is how long a probe lets a container fail before acting.
func probeSpan(p *corev1.Probe) time.Duration {
	period := cmpOr(int(p.PeriodSeconds), 10)
	threshold := cmpOr(int(p.FailureThreshold), 3)
	return time.Duration(int(p.InitialDelaySeconds)+period*threshold) * time.Second
}

func (l *linter) probes(w workload, c corev1.Container) {
	sub := w.subject()
	budget := l.opts.Req.StartupBudget
	live, ready, start := c.LivenessProbe, c.ReadinessProbe, c.StartupProbe
	if live != nil && start == nil {
		l.add(fail("lint.startup-probe", sub,
			fmt.Sprintf("container %s has a livenessProbe (initialDelaySeconds %d) and no startupProbe", c.Name, live.InitialDelaySeconds),
			"a startupProbe covering the model load",
			"add a startupProbe whose failureThreshold × periodSeconds covers the model load; liveness then starts after it"))
		if budget > 0 && time.Duration(live.InitialDelaySeconds)*time.Second < budget {
			l.add(fail("lint.liveness-delay", sub,
				fmt.Sprintf("liveness restarts container %s after ~%s (initialDelaySeconds %d)", c.Name, probeSpan(live), live.InitialDelaySeconds),
				">= "+budget.String()+" startup budget",
				"a fixed initialDelaySeconds shorter than the model load kills the pod in a loop: use a startupProbe"))
		}
	}
	if start != nil && budget > 0 && probeSpan(start) < budget {
		l.add(fail("lint.startup-budget", sub,
			fmt.Sprintf("startupProbe of %s gives up after %s", c.Name, probeSpan(start)), ">= "+budget.String()+" startup budget",
			"raise the startupProbe's failureThreshold so failureThreshold × periodSeconds covers the model load"))
	}
	if live != nil && ready != nil && equality.Semantic.DeepEqual(live.ProbeHandler, ready.ProbeHandler) {
		l.add(warn("lint.readiness-same", sub, "container "+c.Name+": readinessProbe is the livenessProbe", "distinct endpoints",
			"point readiness at an endpoint that reports 'model loaded and not overloaded' (/ready); an overloaded pod should leave rotation, not restart"))
	}
}

func (l *linter) memoryLimit(w workload, c corev1.Container) {
	q, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok || l.estimate == nil {
		return
	}
	if q.Value() < int64(l.estimate.Weights) {
		l.add(fail("lint.memory-limit", w.subject(),
			fmt.Sprintf("container %s memory limit %s", c.Name, q.String()),
			fmt.Sprintf(">= %s (model weights pass through host memory while loading)", formatBytes(l.estimate.Weights)),
			"raise resources.limits.memory above the model's size, or the pod is OOM-killed while loading"))
	}
}

// hpaObject is a HorizontalPodAutoscaler with the file it came from.
type hpaObject struct {
	object
	spec autoscalingv2.HorizontalPodAutoscalerSpec
}

func findHPA(hpas []hpaObject, w workload) *hpaObject {
	for i, h := range hpas {
		ref := h.spec.ScaleTargetRef
		if ref.Kind == w.kind && ref.Name == w.name && h.namespace == w.namespace {
			return &hpas[i]
		}
	}
	return nil
}

func hasPDB(pdbs []policyv1.PodDisruptionBudget, w workload) bool {
	for _, p := range pdbs {
		if p.Namespace != w.namespace || p.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(w.template.Labels)) {
			return true
		}
	}
	return false
}

// hpa checks that a GPU workload's HPA scales on a GPU-aware signal and cannot outgrow the GPUs.
func (l *linter) hpa(h hpaObject, w workload) {
	spec := w.template.Spec
	if !l.gpuIntent(spec) {
		return
	}
	sub := h.subject()
	var resource, other []string
	gpuAware := false
	for _, m := range h.spec.Metrics {
		name := metricName(m)
		switch {
		case m.Type == autoscalingv2.ResourceMetricSourceType || m.Type == autoscalingv2.ContainerResourceMetricSourceType:
			resource = append(resource, name)
		case strings.Contains(strings.ToLower(name), "gpu") || strings.Contains(strings.ToLower(name), "dcgm"):
			gpuAware = true
		default:
			other = append(other, name)
		}
	}
	if !gpuAware && len(resource) > 0 {
		measured := "scales a GPU " + w.kind + " on " + strings.Join(append(resource, other...), ", ")
		remedy := "scale on GPU utilisation (DCGM_FI_DEV_GPU_UTIL) or queue depth; CPU and memory stay low while the GPU saturates"
		l.add(failOrWarn(len(other) == 0, "lint.hpa-gpu-blind", sub, measured, "a GPU-aware metric", remedy))
	}
	if avail := l.opts.AvailableGPUs; avail > 0 {
		if need := int64(h.spec.MaxReplicas) * podGPUs(spec); need > int64(avail) {
			l.add(warn("lint.replicas-gpus", sub, fmt.Sprintf("maxReplicas %d needs %d GPUs", h.spec.MaxReplicas, need),
				fmt.Sprintf("<= %d GPUs available", avail), "lower maxReplicas to what the GPUs hold; pods beyond stay Pending during the peak"))
		}
	}
}

func metricName(m autoscalingv2.MetricSpec) string {
	switch {
	case m.Resource != nil:
		return string(m.Resource.Name)
	case m.ContainerResource != nil:
		return string(m.ContainerResource.Name)
	case m.Pods != nil:
		return m.Pods.Metric.Name
	case m.Object != nil:
		return m.Object.Metric.Name
	case m.External != nil:
		return m.External.Metric.Name
	}
	return string(m.Type)
}
