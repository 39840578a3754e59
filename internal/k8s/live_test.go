package k8s

import (
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aideploy/aideploy/internal/rollout"
)

func deployment(t *testing.T, rev *rollout.Deployment, image string, replicas, ready int32) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "chat-blue", Annotations: map[string]string{}}}
	if rev != nil {
		b, err := json.Marshal(rev)
		if err != nil {
			t.Fatal(err)
		}
		d.Annotations[AnnotationRev] = string(b)
	}
	d.Spec.Replicas = &replicas
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "model", Image: image}}
	d.Status.ReadyReplicas = ready
	return d
}

// TestLiveInstance shows that what a Deployment runs is read from the object
// as it is now, so a rollout adopts kubectl's and the autoscaler's changes.
func TestLiveInstance(t *testing.T) {
	t.Parallel()
	r1 := &rollout.Deployment{Color: rollout.Blue, Revision: 1, Image: "model:v1", Replicas: 2}
	tests := []struct {
		name string
		d    *appsv1.Deployment
		want rollout.Instance
	}{
		{"made by apply", deployment(t, nil, "model:v1", 2, 2),
			rollout.Instance{Deployment: rollout.Deployment{Color: rollout.Blue, Image: "model:v1", Replicas: 2}, Running: 2, Total: 2, Ready: 2}},
		{"rolled out", deployment(t, r1, "model:v1", 2, 1),
			rollout.Instance{Deployment: *r1, Running: 2, Total: 2, Ready: 1}},
		{"image set and scaled by hand", deployment(t, r1, "model:hotfix", 10, 10),
			rollout.Instance{Deployment: rollout.Deployment{Color: rollout.Blue, Revision: 1, Image: "model:hotfix", Replicas: 10}, Running: 10, Total: 10, Ready: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := liveInstance(tt.d, rollout.Blue)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestAdopt(t *testing.T) {
	t.Parallel()
	blue := rollout.Instance{Deployment: rollout.Deployment{Color: rollout.Blue, Image: "model:v1", Replicas: 2}, Ready: 2}
	green := rollout.Instance{Deployment: rollout.Deployment{Color: rollout.Green, Revision: 3, Image: "model:v3", Replicas: 2}, Ready: 2}
	tests := []struct {
		name      string
		selected  rollout.Color
		instances []rollout.Instance
		want      rollout.Color // "" means nothing serves
	}{
		{"nothing", "", nil, ""},
		{"no Service, a Deployment", "", []rollout.Instance{blue}, ""},
		{"apply only", rollout.Blue, []rollout.Instance{blue}, rollout.Blue},
		{"both colours, Service on blue", rollout.Blue, []rollout.Instance{green, blue}, rollout.Blue},
		{"both colours, Service on green", rollout.Green, []rollout.Instance{green, blue}, rollout.Green},
		{"Service on a colour with no Deployment", rollout.Green, []rollout.Instance{blue}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := adopt(tt.selected, tt.instances)
			var c rollout.Color
			if got != nil {
				c = got.Color
			}
			if c != tt.want {
				t.Errorf("adopted %q, want %q", c, tt.want)
			}
		})
	}
}
