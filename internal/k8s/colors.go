package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
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
		ready, waiting := 0, 0
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
			if _, ok := unschedulable(pod); ok {
				waiting++ // podFailure let it wait for a node (rollout.capacity: wait)
			}
		}
		if ready >= d.Replicas && dep.Status.ObservedGeneration >= dep.Generation && int(dep.Status.ReadyReplicas) >= d.Replicas {
			return nil
		}
		select {
		case <-ctx.Done():
			if waiting > 0 {
				return fmt.Errorf("%s: %d of %d pods ready when the startup budget (%s) ran out, %d still waiting for a node (rollout.capacity: wait); check that the node autoscaler can add GPU nodes, or raise rollout.startupBudget",
					name, ready, d.Replicas, budget, waiting)
			}
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

// Warmup sends the configured request to every ready pod of d, pod by pod
// through the API server's pod proxy, so that each replica has loaded its
// model before it takes traffic, not just the one a Service would pick. It
// waits, within the warm-up timeout, for d's pods to be ready and for each to
// answer at all (the proxy's 503 while nothing listens yet); any other error,
// such as a 500 from the model, fails at once. The result is the slowest pod.
func (p *Platform) Warmup(ctx context.Context, d rollout.Deployment) (rollout.WarmupResult, error) {
	w := p.o.Config.Rollout.Warmup
	ctx, cancel := context.WithTimeout(ctx, w.Timeout.D())
	defer cancel()
	pods, err := p.readyPods(ctx, d, w.Timeout.D())
	if err != nil {
		return rollout.WarmupResult{}, err
	}
	var res rollout.WarmupResult
	for _, pod := range pods {
		took, err := p.warmPod(ctx, d, pod)
		if err != nil {
			return res, err
		}
		res.TimeToFirstToken, res.Total = max(res.TimeToFirstToken, took), max(res.Total, took)
	}
	return res, nil
}

// readyPods waits until d has as many ready pods as replicas (at least one)
// and returns their names.
func (p *Platform) readyPods(ctx context.Context, d rollout.Deployment, timeout time.Duration) ([]string, error) {
	sel := LabelName + "=" + p.name + "," + LabelColor + "=" + string(d.Color)
	want := max(d.Replicas, 1)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := p.c.Clientset.CoreV1().Pods(p.c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, fmt.Errorf("listing the pods of %s to warm up: %w", d, err)
		}
		var names []string
		for i := range list.Items {
			pod := &list.Items[i]
			rev := pod.Annotations[AnnotationRev]
			if podReady(pod) && (rev == "" || rev == strconv.Itoa(d.Revision)) {
				names = append(names, pod.Name)
			}
		}
		if len(names) >= want {
			sort.Strings(names)
			return names, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("warm-up of %s: %d of %d pods ready within the warm-up timeout (%s)", d, len(names), want, timeout)
		case <-tick.C:
		}
	}
}

// warmPod sends the warm-up request to one pod and says how long it took.
func (p *Platform) warmPod(ctx context.Context, d rollout.Deployment, pod string) (time.Duration, error) {
	w := p.o.Config.Rollout.Warmup
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		t0 := time.Now()
		err := p.c.Clientset.CoreV1().RESTClient().Post().Namespace(p.c.Namespace).Resource("pods").
			Name(fmt.Sprintf("http:%s:%d", pod, p.o.Config.Port)).SubResource("proxy").
			Suffix(strings.TrimPrefix(w.Path, "/")).SetHeader("Content-Type", "application/json").Body([]byte(w.Body)).Do(ctx).Error()
		if err == nil {
			return time.Since(t0), nil
		}
		if !apierrors.IsServiceUnavailable(err) {
			return 0, fmt.Errorf("warm-up request to pod %s of %s: %w", pod, d, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("warm-up request to pod %s of %s: no answer within the warm-up timeout (%s): %w", pod, d, w.Timeout, err)
		case <-tick.C:
		}
	}
}

// Switch sends traffic to colour to. In either mode the active Service
// selects to and the HPA scales to's Deployment: without the gateway that
// selector is the switch. With the gateway (gateway.enabled and its
// Deployment applied) the switch is prepared first (see prepareGateway);
// then every gateway pod's default pool moves to to's headless Service,
// health-gated and drained, while the gateway's ConfigMap, the Service and
// the HPA follow to beside it: the traffic moves as soon as it can, which
// is what a switch back from a failing colour needs most.
func (p *Platform) Switch(ctx context.Context, to rollout.Deployment, from *rollout.Deployment) error {
	mode, err := p.trafficMode(ctx)
	if err != nil {
		return err
	}
	if mode.Mode != TrafficGateway {
		return p.switchSelector(ctx, to)
	}
	pods, gate, err := p.prepareGateway(ctx, to)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var flipErr error
	wg.Add(1)
	go func() { defer wg.Done(); flipErr = p.flipGateway(ctx, to, pods, gate) }()
	err = p.pointGatewayConfig(ctx, to)
	if err == nil {
		err = p.switchSelector(ctx, to)
	}
	wg.Wait()
	return errors.Join(flipErr, err)
}

// switchSelector points the active Service at colour to and the HPA at its Deployment.
func (p *Platform) switchSelector(ctx context.Context, to rollout.Deployment) error {
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

// Stats reads, through the gateway, what the serving colour's pods answered
// over the window in every gateway pod. Without the gateway there are no
// figures of requests: it counts the pods of the active colour that are not Ready.
func (p *Platform) Stats(ctx context.Context, window time.Duration) (rollout.Stats, error) {
	mode, err := p.trafficMode(ctx)
	if err != nil {
		return rollout.Stats{}, err
	}
	if mode.Mode == TrafficGateway {
		return p.gatewayStats(ctx, window)
	}
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

// Drain waits, with the gateway, until no gateway pod has requests in flight
// to d's pods. Without it, it returns at once: the Service no longer sends d
// new requests, and each pod's terminationGracePeriodSeconds lets long
// generations finish.
func (p *Platform) Drain(ctx context.Context, d rollout.Deployment, timeout time.Duration) error {
	mode, err := p.trafficMode(ctx)
	if err != nil {
		return err
	}
	if mode.Mode == TrafficGateway {
		return p.drainGateway(ctx, d, timeout)
	}
	return nil
}

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
