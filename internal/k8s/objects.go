package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/aideploy/aideploy/internal/rollout"
)

// Labels and annotations aideploy puts on the objects it manages.
const (
	FieldManager      = "aideploy"
	LabelName         = "app.kubernetes.io/name"
	LabelColor        = "aideploy.dev/color"
	AnnotationState   = "aideploy.dev/rollout"  // on the active Service: the journals, newest first
	AnnotationRev     = "aideploy.dev/revision" // on a colour's Deployment: the deployment it runs
	AnnotationPrewarm = "aideploy.dev/prewarm"  // on the HPA or ScaledObject: the bounds before prewarm, and the window
)

// Decode reads the objects of rendered YAML files, skipping empty documents.
func Decode(files ...[]byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, data := range files {
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("reading rendered manifests: %w", err)
			}
			if len(m) == 0 {
				continue
			}
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	return objs, nil
}

// ColorName is the name of the Deployment of service svc in colour c.
func ColorName(svc string, c rollout.Color) string { return svc + "-" + string(c) }

// PreviewName is the name of the Service that selects the colour under test.
func PreviewName(svc string) string { return svc + "-preview" }

// BlueGreen turns the rendered objects of service svc into their blue/green
// form with c as the serving colour: the Deployment becomes <svc>-<c> with the
// colour in its labels and selector, the Service selects c, a preview Service
// is added, and the autoscaler (HPA or ScaledObject) targets the coloured
// Deployment. There is never a colourless Deployment.
func BlueGreen(objs []*unstructured.Unstructured, svc string, c rollout.Color) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		o = o.DeepCopy()
		switch o.GetKind() {
		case "Deployment":
			if err := colorDeployment(o, svc, c); err != nil {
				return nil, err
			}
		case "Service":
			if err := unstructured.SetNestedField(o.Object, string(c), "spec", "selector", LabelColor); err != nil {
				return nil, fmt.Errorf("colouring Service %s: %w", o.GetName(), err)
			}
			preview := o.DeepCopy()
			preview.SetName(PreviewName(o.GetName()))
			out = append(out, o, preview)
			continue
		case KindHPA, KindScaledObject:
			if err := unstructured.SetNestedField(o.Object, ColorName(svc, c), "spec", "scaleTargetRef", "name"); err != nil {
				return nil, fmt.Errorf("retargeting %s %s: %w", o.GetKind(), o.GetName(), err)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

func colorDeployment(o *unstructured.Unstructured, svc string, c rollout.Color) error {
	o.SetName(ColorName(svc, c))
	o.SetLabels(with(o.GetLabels(), LabelColor, string(c)))
	for _, path := range [][]string{{"spec", "selector", "matchLabels"}, {"spec", "template", "metadata", "labels"}} {
		m, _, err := unstructured.NestedStringMap(o.Object, path...)
		if err != nil {
			return fmt.Errorf("colouring Deployment %s: %s: %w", svc, strings.Join(path, "."), err)
		}
		if err := unstructured.SetNestedStringMap(o.Object, with(m, LabelColor, string(c)), path...); err != nil {
			return fmt.Errorf("colouring Deployment %s: %w", svc, err)
		}
	}
	return nil
}

func with(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

// runtimeFromUnstructured converts a rendered object into its typed form.
func runtimeFromUnstructured(o *unstructured.Unstructured, into any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
		return fmt.Errorf("reading rendered %s %s: %w", o.GetKind(), o.GetName(), err)
	}
	return nil
}
