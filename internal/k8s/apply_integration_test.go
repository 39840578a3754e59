package k8s_test

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
)

// The manifests rendered for the golden configurations pass a server dry run
// in their blue/green form, and the dry run stores nothing.
func TestIntegrationK8sApplyGoldenDryRun(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"cpu", "gpu1", "gpu4-rps", "keda"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := golden(t, name)
			_, kc := start(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			objs, err := k8s.Manifests(cfg, "aideploy.yaml", rollout.Blue)
			if err != nil {
				t.Fatal(err)
			}
			changes, err := kc.Apply(ctx, objs, true)
			if err != nil {
				t.Fatalf("server dry run: %v", err)
			}
			var kinds []string
			for _, c := range changes {
				kinds = append(kinds, c.Kind+"/"+c.Name)
				if c.Action != k8s.Created {
					t.Errorf("%s: %s, want created", c.Kind, c.Action)
				}
			}
			got := strings.Join(kinds, " ")
			wants := []string{"Deployment/" + cfg.Name + "-blue", "Service/" + cfg.Name, "Service/" + cfg.Name + "-preview"}
			if cfg.Autoscaling.Engine == config.EngineKEDA {
				// Checked by the API server against KEDA's own CRD (k8stest Options.KEDA).
				wants = append(wants, "ScaledObject/"+cfg.Name)
			}
			for _, want := range wants {
				if !strings.Contains(got, want) {
					t.Errorf("applied %s, missing %s", got, want)
				}
			}
			if strings.Contains(got, "Deployment/"+cfg.Name+" ") || strings.HasSuffix(got, "Deployment/"+cfg.Name) {
				t.Errorf("applied a colourless Deployment: %s", got)
			}
			if _, err := kc.Clientset.AppsV1().Deployments(kc.Namespace).Get(ctx, cfg.Name+"-blue", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("a dry run stored the Deployment (err %v)", err)
			}
		})
	}
}

// Applying twice changes nothing; a changed image shows in the diff of the
// serving colour's Deployment only.
func TestIntegrationK8sApplyDiff(t *testing.T) {
	t.Parallel()
	cfg := golden(t, "cpu")
	_, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs := runnable(t, cfg, rollout.Blue, nil)
	if _, err := kc.Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	again, err := kc.Apply(ctx, objs, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range again {
		if c.Action != k8s.Unchanged {
			t.Errorf("second apply: %s %s\n%s", c, c.Action, c.Diff)
		}
	}
	cfg2 := *cfg
	cfg2.Image = strings.Split(cfg.Image, ":")[0] + ":9.9.9"
	changes, err := kc.Apply(ctx, runnable(t, &cfg2, rollout.Blue, nil), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Kind == "Deployment" {
			if c.Action != k8s.Configured || !strings.Contains(c.Diff, "+ ") || !strings.Contains(c.Diff, ":9.9.9") {
				t.Errorf("Deployment: %s, diff:\n%s", c.Action, c.Diff)
			}
		}
	}
	d, err := kc.Clientset.AppsV1().Deployments(kc.Namespace).Get(ctx, cfg.Name+"-blue", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != cfg.Image {
		t.Errorf("dry run changed the image to %s", img)
	}
	if d.Spec.Selector.MatchLabels[k8s.LabelColor] != "blue" {
		t.Errorf("selector %v has no colour", d.Spec.Selector.MatchLabels)
	}
}

// KEDA's CRD really validates: a ScaledObject whose floor is above its
// ceiling, or that names an unknown field, fails the server dry run that the
// rendered one passes, so that pass is not the API server storing anything.
func TestIntegrationK8sScaledObjectSchema(t *testing.T) {
	t.Parallel()
	cfg := golden(t, "keda")
	_, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs, err := k8s.Manifests(cfg, "aideploy.yaml", rollout.Blue)
	if err != nil {
		t.Fatal(err)
	}
	var so *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == k8s.KindScaledObject {
			so = o
		}
	}
	if so == nil {
		t.Fatal("no ScaledObject rendered for engine keda")
	}
	if _, err := kc.Apply(ctx, []*unstructured.Unstructured{so}, true); err != nil {
		t.Fatalf("the rendered ScaledObject: %v", err)
	}
	for name, mutate := range map[string]func(o *unstructured.Unstructured){
		"floor above ceiling": func(o *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(o.Object, int64(50), "spec", "minReplicaCount")
		},
		"unknown field": func(o *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(o.Object, int64(3), "spec", "minReplicas")
		},
	} {
		bad := so.DeepCopy()
		mutate(bad)
		if _, err := kc.Apply(ctx, []*unstructured.Unstructured{bad}, true); err == nil {
			t.Errorf("%s: the API server accepted it", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
