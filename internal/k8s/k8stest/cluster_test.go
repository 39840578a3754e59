package k8stest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The tests of this package run on one 4-GPU node and one CPU node.
func TestMain(m *testing.M) {
	Main(m, Options{GPUNodes: []int{4}})
}

// gpuDeployment asks one nvidia.com/gpu per replica, on the GPU nodes only.
func gpuDeployment(name string, replicas int32, annotations map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
					Tolerations: []corev1.Toleration{{
						Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
					}},
					Containers: []corev1.Container{{
						Name:  "model",
						Image: "registry.example/model:v1",
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
							Limits:   corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")},
						},
					}},
				},
			},
		},
	}
}

// cpuDeployment is gpuDeployment without GPUs, so it leaves the GPU node alone.
func cpuDeployment(name string, replicas int32, annotations map[string]string) *appsv1.Deployment {
	d := gpuDeployment(name, replicas, annotations)
	d.Spec.Template.Spec.NodeSelector = nil
	d.Spec.Template.Spec.Tolerations = nil
	d.Spec.Template.Spec.Containers[0].Resources.Limits = nil
	return d
}

func listPods(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, app string) []corev1.Pod {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatalf("listing pods: %v", err)
	}
	return pods.Items
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func unschedulable(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Message
		}
	}
	return ""
}

func TestIntegrationClusterGPUCapacity(t *testing.T) {
	t.Parallel()
	c := Start(t)
	ctx := t.Context()
	d := gpuDeployment("six", 6, nil)
	if _, err := c.Clientset.AppsV1().Deployments(c.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var ready, pending []corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		ready, pending = nil, nil
		for _, p := range listPods(ctx, t, c.Clientset, c.Namespace, "six") {
			switch {
			case podReady(&p):
				ready = append(ready, p)
			case p.Status.Phase == corev1.PodPending && unschedulable(&p) != "":
				pending = append(pending, p)
			}
		}
		return len(ready) == 4 && len(pending) == 2, nil
	})
	if err != nil {
		t.Fatalf("want 4 Ready and 2 unschedulable pods, got %d and %d: %v", len(ready), len(pending), err)
	}
	for _, p := range pending {
		if msg := unschedulable(&p); !strings.Contains(msg, "Insufficient nvidia.com/gpu") {
			t.Errorf("pod %s: PodScheduled message %q does not name nvidia.com/gpu", p.Name, msg)
		}
	}
	for _, p := range ready {
		if p.Spec.NodeName != "gpu-node-0" {
			t.Errorf("pod %s runs on %s, want gpu-node-0", p.Name, p.Spec.NodeName)
		}
	}

	// The scheduler's event says the same, as kubectl describe shows it.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		events, err := c.Clientset.CoreV1().Events(c.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedScheduling"})
		if err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if strings.Contains(e.Message, "Insufficient nvidia.com/gpu") {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no FailedScheduling event naming Insufficient nvidia.com/gpu: %v", err)
	}
}

func TestIntegrationClusterFailures(t *testing.T) {
	t.Parallel()
	type check func(p *corev1.Pod) error
	waiting := func(reasons ...string) check {
		return func(p *corev1.Pod) error {
			if len(p.Status.ContainerStatuses) != 1 {
				return fmt.Errorf("%d container statuses", len(p.Status.ContainerStatuses))
			}
			cs := p.Status.ContainerStatuses[0]
			if cs.State.Waiting == nil || cs.State.Waiting.Reason != reasons[0] {
				return fmt.Errorf("container state %+v, want waiting %s", cs.State, reasons[0])
			}
			if cs.Ready || cs.Image != "registry.example/model:v1" {
				return fmt.Errorf("container ready %v, image %q", cs.Ready, cs.Image)
			}
			return nil
		}
	}
	tests := []struct {
		fail  string
		phase corev1.PodPhase
		check check
	}{
		{
			fail:  "never-ready",
			phase: corev1.PodRunning,
			check: func(p *corev1.Pod) error {
				cs := p.Status.ContainerStatuses
				if len(cs) != 1 || cs[0].State.Running == nil || cs[0].Ready {
					return fmt.Errorf("container statuses %+v, want running and not ready", cs)
				}
				return nil
			},
		},
		{
			fail:  "crashloop",
			phase: corev1.PodRunning,
			check: func(p *corev1.Pod) error {
				if err := waiting("CrashLoopBackOff")(p); err != nil {
					return err
				}
				cs := p.Status.ContainerStatuses[0]
				if cs.RestartCount < 1 || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
					return fmt.Errorf("restartCount %d, last state %+v", cs.RestartCount, cs.LastTerminationState)
				}
				return nil
			},
		},
		{fail: "imagepull", phase: corev1.PodPending, check: waiting("ImagePullBackOff")},
	}
	for _, tt := range tests {
		t.Run(tt.fail, func(t *testing.T) {
			t.Parallel()
			c := Start(t)
			ctx := t.Context()
			d := cpuDeployment("failing", 1, map[string]string{"aideploy.test/fail": tt.fail})
			if _, err := c.Clientset.AppsV1().Deployments(c.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			var last error
			err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
				pods := listPods(ctx, t, c.Clientset, c.Namespace, "failing")
				if len(pods) != 1 {
					last = fmt.Errorf("%d pods", len(pods))
					return false, nil
				}
				p := &pods[0]
				switch {
				case p.Status.Phase != tt.phase:
					last = fmt.Errorf("phase %s, want %s", p.Status.Phase, tt.phase)
				case podReady(p):
					last = fmt.Errorf("pod is Ready")
				case !hasCondition(p, corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady"):
					last = fmt.Errorf("conditions %+v, want Ready=False ContainersNotReady", p.Status.Conditions)
				default:
					last = tt.check(p)
				}
				return last == nil, nil
			})
			if err != nil {
				t.Fatalf("pod never showed %s: %v", tt.fail, last)
			}
			// The Deployment reports the pod as unavailable, as it would on a real cluster.
			got, err := c.Clientset.AppsV1().Deployments(c.Namespace).Get(ctx, "failing", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.AvailableReplicas != 0 {
				t.Errorf("deployment has %d available replicas, want 0", got.Status.AvailableReplicas)
			}
		})
	}
}

func TestIntegrationClusterCrashLoopRestartCountGrows(t *testing.T) {
	t.Parallel()
	c := Start(t)
	ctx := t.Context()
	d := cpuDeployment("crash", 1, map[string]string{"aideploy.test/fail": "crashloop"})
	if _, err := c.Clientset.AppsV1().Deployments(c.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var cs corev1.ContainerStatus
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pods := listPods(ctx, t, c.Clientset, c.Namespace, "crash")
		if len(pods) != 1 || len(pods[0].Status.ContainerStatuses) != 1 {
			return false, nil
		}
		cs = pods[0].Status.ContainerStatuses[0]
		return cs.RestartCount >= 2, nil
	})
	if err != nil {
		t.Fatalf("restartCount is %d, did not reach 2: %v", cs.RestartCount, err)
	}
	// A restart keeps the whole status a kubelet shows.
	if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.Ready || cs.Image == "" {
		t.Errorf("after restarts the container status is %+v, want waiting CrashLoopBackOff with its image", cs)
	}
}

func hasCondition(p *corev1.Pod, typ corev1.PodConditionType, status corev1.ConditionStatus, reason string) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status == status && c.Reason == reason
		}
	}
	return false
}

func TestIntegrationClusterHPAFollowsMetrics(t *testing.T) {
	t.Parallel()
	c := Start(t)
	ctx := t.Context()
	d := cpuDeployment("scaled", 1, nil)
	if _, err := c.Clientset.AppsV1().Deployments(c.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "scaled"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "scaled"},
			MinReplicas:    ptr.To[int32](1),
			MaxReplicas:    3,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](50)},
				},
			}},
		},
	}
	if _, err := c.Clientset.AutoscalingV2().HorizontalPodAutoscalers(c.Namespace).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// 1 CPU used of 1 requested is 200% of the target: the HPA goes to its maximum.
	c.SetPodCPU("", 1000)
	waitReplicas(ctx, t, c, "scaled", 3)
	// Idle pods: it comes back to its minimum after the downscale window.
	c.SetPodCPU("", 10)
	waitReplicas(ctx, t, c, "scaled", 1)
}

func waitReplicas(ctx context.Context, t *testing.T, c *Cluster, name string, want int32) {
	t.Helper()
	var got int32
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := c.Clientset.AppsV1().Deployments(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = *d.Spec.Replicas
		return got == want, nil
	})
	if err != nil {
		t.Fatalf("deployment %s has %d replicas, want %d: %v", name, got, want, err)
	}
}
