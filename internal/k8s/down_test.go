package k8s

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aideploy/aideploy/internal/config"
)

// A wait that ends before the pods are gone says how many are left, the GPUs
// they hold and how to watch them.
func TestWaitPodsGoneReportsWhatIsLeft(t *testing.T) {
	t.Parallel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-blue-1", Namespace: "serving", Labels: map[string]string{LabelName: "chat", LabelColor: "blue"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "model", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{GPU: resource.MustParse("2")},
		}}}},
	}
	other := pod.DeepCopy()
	other.Name, other.Labels = "notes", map[string]string{LabelName: "chat"} // not a model pod
	p := NewPlatform(&Client{Namespace: "serving", Clientset: fake.NewClientset(pod, other)}, Options{Config: &config.Config{Name: "chat"}})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := p.WaitPodsGone(ctx)
	var left *PodsLeftError
	if !errors.As(err, &left) || left.Pods != 1 || left.GPUs != 2 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitPodsGone = %v, want 1 pod holding 2 GPUs left at the deadline", err)
	}
	if want := "kubectl get pods -n serving -l app.kubernetes.io/name=chat"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	// Once the pod is gone the wait returns at once.
	if err := p.c.Clientset.CoreV1().Pods("serving").Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitPodsGone(t.Context()); err != nil {
		t.Fatalf("WaitPodsGone with no pods left: %v", err)
	}
}
