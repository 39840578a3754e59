package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aideploy/aideploy/internal/rollout"
)

// manifests renders the objects of colour c, running d when d is set.
func (p *Platform) manifests(c rollout.Color, d *rollout.Deployment) ([]*unstructured.Unstructured, error) {
	objs, err := Manifests(p.o.Config, p.o.Source, c)
	if err != nil {
		return nil, err
	}
	if p.o.Mutate != nil {
		p.o.Mutate(objs)
	}
	if d == nil {
		return objs, nil
	}
	rev, _ := json.Marshal(d)
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		o.SetAnnotations(with(o.GetAnnotations(), AnnotationRev, string(rev)))
		if err := unstructured.SetNestedField(o.Object, int64(d.Replicas), "spec", "replicas"); err != nil {
			return nil, err
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		if len(containers) > 0 {
			containers[0].(map[string]any)["image"] = d.Image
			_ = unstructured.SetNestedSlice(o.Object, containers, "spec", "template", "spec", "containers")
		}
		ann, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "annotations")
		_ = unstructured.SetNestedStringMap(o.Object, with(ann, AnnotationRev, strconv.Itoa(d.Revision)), "spec", "template", "metadata", "annotations")
	}
	return objs, nil
}

func pick(objs []*unstructured.Unstructured, keep func(*unstructured.Unstructured) bool) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if keep(o) {
			out = append(out, o)
		}
	}
	return out
}

// Check refuses a colour the GPUs of the cluster cannot hold next to the old
// one, counting only the nodes its pods may use. What it cannot see with the
// rights it has, it says, and goes on: the health step names any pod the
// cluster cannot schedule.
func (p *Platform) Check(ctx context.Context, to rollout.Deployment, from *rollout.Deployment) error {
	objs, err := p.manifests(to.Color, &to)
	if err != nil {
		return err
	}
	var spec *corev1.PodSpec
	for _, o := range pick(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "Deployment" }) {
		var d appsv1.Deployment
		if err := runtimeFromUnstructured(o, &d); err != nil {
			return err
		}
		spec = &d.Spec.Template.Spec
	}
	if spec == nil || PodGPUs(spec) == 0 {
		return nil
	}
	perPod := PodGPUs(spec)
	capa, err := p.c.ReadCapacityFor(ctx, spec)
	if err != nil {
		return err
	}
	if capa.NodesHidden != nil {
		p.logf("capacity check: %s; going on without it", capa.Unseen())
		return nil
	}
	if s := capa.Unseen(); s != "" {
		p.logf("capacity check: %s", s)
	}
	// Pods of the target colour that still exist are replaced, so their GPUs count as free.
	free := capa.Free() + capa.UsedBy(p.c.Namespace, map[string]string{LabelName: p.name, LabelColor: string(to.Color)})
	need := perPod * int64(to.Replicas)
	if need <= free {
		return nil
	}
	held := ""
	if from != nil {
		held = fmt.Sprintf(" while %s keeps %d", from, capa.UsedBy(p.c.Namespace, map[string]string{LabelName: p.name, LabelColor: string(from.Color)}))
	}
	where := "GPU nodes"
	if len(spec.NodeSelector) > 0 {
		where = fmt.Sprintf("GPU nodes matching %s", selectorString(spec.NodeSelector))
	}
	if p.o.Config.Rollout.Capacity == rollout.CapacityWait {
		p.logf("capacity check: %d of %d GPUs free on %d %s%s; rollout.capacity is wait: creating the pods for the node autoscaler to act on", free, need, capa.Nodes, where, held)
		return nil
	}
	return fmt.Errorf("not enough GPUs for %s: %d replicas × %d GPU need %d, %d of %d allocatable nvidia.com/gpu free on %d %s%s; free GPUs or lower --replicas, or set rollout.capacity: wait when a node autoscaler adds nodes",
		to, to.Replicas, perPod, need, free, capa.Allocatable, capa.Nodes, where, held)
}

// selectorString writes a node selector as kubectl does, keys sorted.
func selectorString(sel map[string]string) string {
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + sel[k]
	}
	return strings.Join(parts, ",")
}

// Create applies colour d's Deployment with d's image and replicas, and the
// preview Service selecting it.
func (p *Platform) Create(ctx context.Context, d rollout.Deployment) error {
	objs, err := p.manifests(d.Color, &d)
	if err != nil {
		return err
	}
	objs = pick(objs, func(o *unstructured.Unstructured) bool {
		return o.GetKind() == "Deployment" || (o.GetKind() == "Service" && o.GetName() == PreviewName(p.name))
	})
	if _, err := p.c.Apply(ctx, objs, false); err != nil {
		return err
	}
	return nil
}

// WaitHealthy waits for every pod of d to be Ready, failing as soon as one
// cannot be scheduled, cannot pull its image, crash-loops, is OOM-killed, or
// stays unready after its container started.
func (p *Platform) WaitHealthy(ctx context.Context, d rollout.Deployment, budget time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	name := ColorName(p.name, d.Color)
	sel := LabelName + "=" + p.name + "," + LabelColor + "=" + string(d.Color)
	unready := map[string]time.Time{}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		dep, err := p.c.Clientset.AppsV1().Deployments(p.c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading Deployment %s: %w", name, err)
		}
		pods, err := p.c.Clientset.CoreV1().Pods(p.c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return fmt.Errorf("listing pods of %s: %w", name, err)
		}
		ready := 0
		for i := range pods.Items {
			pod := &pods.Items[i]
			if pod.DeletionTimestamp != nil || pod.Annotations[AnnotationRev] != strconv.Itoa(d.Revision) {
				continue
			}
			if podReady(pod) {
				ready++
				continue
			}
			if err := p.podFailure(ctx, pod, unready); err != nil {
				return fmt.Errorf("%s: pod %s: %w", name, pod.Name, err)
			}
		}
		if ready >= d.Replicas && dep.Status.ObservedGeneration >= dep.Generation && int(dep.Status.ReadyReplicas) >= d.Replicas {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %d of %d pods ready when the startup budget (%s) ran out; raise rollout.startupBudget if the model loads slower", name, ready, d.Replicas, budget)
		case <-tick.C:
		}
	}
}

// podFailure says why a pod will not become ready, or nil while it may.
func (p *Platform) podFailure(ctx context.Context, pod *corev1.Pod, unready map[string]time.Time) error {
	if msg, ok := unschedulable(pod); ok {
		capa, err := p.c.ReadCapacityFor(ctx, &pod.Spec)
		if err != nil {
			return err
		}
		reason := schedulerReason(msg, capa.Nodes)
		if p.o.Config.Rollout.Capacity == rollout.CapacityWait && waitsForNodes(msg) {
			// A node autoscaler acts on exactly these pods: wait for it, within the startup budget.
			if unready[pod.Name+"/unschedulable"].IsZero() {
				unready[pod.Name+"/unschedulable"] = time.Now()
				p.logf("pod %s waits for a node (rollout.capacity: wait): %s", pod.Name, reason)
			}
			return nil
		}
		return fmt.Errorf("cannot be scheduled: %s", reason)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ImagePullBackOff", "ErrImagePull", "InvalidImageName":
				return fmt.Errorf("cannot pull image %s (%s): check the image name and the registry credentials", cs.Image, w.Reason)
			case "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError":
				why := w.Reason
				if t := cs.LastTerminationState.Terminated; t != nil {
					why += fmt.Sprintf(", last exit %d (%s)", t.ExitCode, t.Reason)
				}
				return fmt.Errorf("container %s keeps failing: %s, %d restarts; see kubectl logs --previous %s", cs.Name, why, cs.RestartCount, pod.Name)
			}
		}
		if t := cs.LastTerminationState.Terminated; t != nil && t.Reason == "OOMKilled" {
			return fmt.Errorf("container %s was OOMKilled; raise resources.memoryLimit", cs.Name)
		}
		if t := cs.State.Terminated; t != nil && t.Reason == "OOMKilled" {
			return fmt.Errorf("container %s was OOMKilled; raise resources.memoryLimit", cs.Name)
		}
		if cs.Started != nil && *cs.Started && !cs.Ready && cs.State.Running != nil {
			first, seen := unready[pod.Name]
			if !seen {
				unready[pod.Name] = time.Now()
			} else if time.Since(first) > p.o.ReadinessGrace {
				return fmt.Errorf("container %s started but stayed unready for %s: readiness is not progressing", cs.Name, p.o.ReadinessGrace)
			}
		}
	}
	return nil
}

// Warmup sends the configured request through the preview Service, via the
// API server's service proxy. Pods turn Ready a moment before the endpoint
// controller lists them behind the Service, so "no endpoints available" is
// retried until the warm-up timeout; any other error fails at once.
func (p *Platform) Warmup(ctx context.Context, d rollout.Deployment) (rollout.WarmupResult, error) {
	w := p.o.Config.Rollout.Warmup
	ctx, cancel := context.WithTimeout(ctx, w.Timeout.D())
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		t0 := time.Now()
		res := p.c.Clientset.CoreV1().RESTClient().Post().Namespace(p.c.Namespace).Resource("services").
			Name(fmt.Sprintf("http:%s:%d", PreviewName(p.name), p.o.Config.Port)).SubResource("proxy").
			Suffix(strings.TrimPrefix(w.Path, "/")).SetHeader("Content-Type", "application/json").Body([]byte(w.Body)).Do(ctx)
		err := res.Error()
		if err == nil {
			took := time.Since(t0)
			return rollout.WarmupResult{TimeToFirstToken: took, Total: took}, nil
		}
		if !noEndpoints(err) {
			return rollout.WarmupResult{}, fmt.Errorf("warm-up request to %s through the preview Service: %w", d, err)
		}
		select {
		case <-ctx.Done():
			return rollout.WarmupResult{}, fmt.Errorf("warm-up request to %s: the preview Service %s had no ready endpoints within %s: %w",
				d, PreviewName(p.name), w.Timeout, err)
		case <-tick.C:
		}
	}
}

// noEndpoints reports the service proxy's answer for a Service that has no
// ready endpoint yet.
func noEndpoints(err error) bool {
	return apierrors.IsServiceUnavailable(err) && strings.Contains(err.Error(), "no endpoints available")
}

// Switch points the active Service at colour to and the HPA at its Deployment.
func (p *Platform) Switch(ctx context.Context, to rollout.Deployment, from *rollout.Deployment) error {
	objs, err := p.manifests(to.Color, nil)
	if err != nil {
		return err
	}
	objs = pick(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() != "Deployment" })
	// The Service first: the HPA then scales what serves.
	var svc, rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Service" && o.GetName() == p.name {
			svc = append(svc, o)
		} else {
			rest = append(rest, o)
		}
	}
	if err := p.c.CarryPrewarm(ctx, rest); err != nil {
		return err
	}
	if _, err := p.c.Apply(ctx, append(svc, rest...), false); err != nil {
		return err
	}
	p.active = to.Color
	return nil
}

// Stats reports the pods of the active colour: how many are not Ready.
func (p *Platform) Stats(ctx context.Context, _ time.Duration) (rollout.Stats, error) {
	var st rollout.Stats
	c := p.active
	if c == "" {
		var err error
		if c, err = p.c.ActiveColor(ctx, p.name); err != nil {
			return st, err
		}
	}
	pods, err := p.c.Clientset.CoreV1().Pods(p.c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelName + "=" + p.name + "," + LabelColor + "=" + string(c)})
	if err != nil {
		return st, fmt.Errorf("listing pods: %w", err)
	}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp != nil {
			continue
		}
		st.Targets++
		if !podReady(&pods.Items[i]) {
			st.Unhealthy++
		}
	}
	return st, nil
}

// Drain returns at once: the Service no longer sends d new requests, and
// each pod's terminationGracePeriodSeconds lets long generations finish.
func (p *Platform) Drain(context.Context, rollout.Deployment, time.Duration) error { return nil }

// Stop scales d's Deployment to zero, keeping it for a rollback.
func (p *Platform) Stop(ctx context.Context, d rollout.Deployment) error {
	return p.scale(ctx, d, 0)
}

func (p *Platform) scale(ctx context.Context, d rollout.Deployment, n int32) error {
	in, ok, err := p.instance(ctx, d.Color)
	if err != nil || !ok || in.Revision != d.Revision {
		return err
	}
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	_, err = p.c.Clientset.AppsV1().Deployments(p.c.Namespace).Patch(ctx, ColorName(p.name, d.Color), types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("scaling %s to %d: %w", ColorName(p.name, d.Color), n, err)
	}
	return nil
}

// Remove deletes d's Deployment when it still runs d's revision.
func (p *Platform) Remove(ctx context.Context, d rollout.Deployment) error {
	in, ok, err := p.instance(ctx, d.Color)
	if err != nil || !ok || in.Revision != d.Revision {
		return err
	}
	fg := metav1.DeletePropagationBackground
	err = p.c.Clientset.AppsV1().Deployments(p.c.Namespace).Delete(ctx, ColorName(p.name, d.Color), metav1.DeleteOptions{PropagationPolicy: &fg})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting %s: %w", ColorName(p.name, d.Color), err)
	}
	return nil
}
