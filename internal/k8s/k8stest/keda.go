package k8stest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

var crds = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// fetchKEDA copies KEDA's ScaledObject CRD out of its Go module into .cache
// (hack/keda-crd.sh) and returns its path. It reaches the module proxy only
// when the file is missing, so it runs before the network namespace and
// again, offline, inside it.
func (p *controlPlane) fetchKEDA(ctx context.Context) (string, error) {
	out, err := p.script(ctx, "hack/keda-crd.sh")
	if err != nil {
		return "", fmt.Errorf("fetching KEDA's ScaledObject CRD (hack/keda-crd.sh): %w\n%s", err, out)
	}
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return string(lines[len(lines)-1]), nil
}

// installKEDA creates KEDA's ScaledObject CRD, as KEDA's own manifests
// define it, and waits until the API server serves the resource. Only the
// CRD: no KEDA operator runs, so nothing turns a ScaledObject into an HPA.
func (p *controlPlane) installKEDA(ctx context.Context) error {
	path, err := p.fetchKEDA(ctx)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading KEDA's CRD: %w", err)
	}
	var crd unstructured.Unstructured
	if err := yaml.Unmarshal(bytes.TrimPrefix(data, []byte("---\n")), &crd.Object); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	dyn, err := dynamic.NewForConfig(p.restConfig)
	if err != nil {
		return fmt.Errorf("building a client: %w", err)
	}
	ri := dyn.Resource(crds)
	if _, err := ri.Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating CRD %s: %w", crd.GetName(), err)
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := ri.Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
}
