package k8s

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/render"
	"github.com/aideploy/aideploy/internal/rollout"
)

// Manifests renders the Kubernetes objects of cfg in their blue/green form,
// the Deployment in colour c.
func Manifests(cfg *config.Config, source string, c rollout.Color) ([]*unstructured.Unstructured, error) {
	files, err := render.Render(cfg, source, render.Kubernetes)
	if err != nil {
		return nil, err
	}
	data := make([][]byte, 0, len(files))
	for _, f := range files {
		data = append(data, f.Data)
	}
	objs, err := Decode(data...)
	if err != nil {
		return nil, err
	}
	return BlueGreen(objs, cfg.Name, c)
}

// ActiveColor is the colour the active Service of svc selects, or "" when the
// Service does not exist or selects no colour.
func (c *Client) ActiveColor(ctx context.Context, svc string) (rollout.Color, error) {
	s, err := c.Clientset.CoreV1().Services(c.Namespace).Get(ctx, svc, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading Service %s: %w", svc, err)
	}
	return rollout.Color(s.Spec.Selector[LabelColor]), nil
}

// ServingManifests renders cfg's objects for the colour that serves now (blue
// before any rollout), keeping the image, replicas and revision the last
// rollout gave it, so that apply changes configuration and never versions,
// and keeping a prewarmed HPA's bounds.
func (c *Client) ServingManifests(ctx context.Context, cfg *config.Config, source string) ([]*unstructured.Unstructured, error) {
	objs, err := c.servingManifests(ctx, cfg, source)
	if err != nil {
		return nil, err
	}
	if err := c.CarryPrewarm(ctx, objs); err != nil {
		return nil, err
	}
	return objs, nil
}

func (c *Client) servingManifests(ctx context.Context, cfg *config.Config, source string) ([]*unstructured.Unstructured, error) {
	color, err := c.ActiveColor(ctx, cfg.Name)
	if err != nil {
		return nil, err
	}
	if color == "" {
		color = rollout.Blue
	}
	p := NewPlatform(c, Options{Config: cfg, Source: source})
	in, ok, err := p.instance(ctx, color)
	if err != nil {
		return nil, err
	}
	if !ok {
		return p.manifests(color, nil)
	}
	if in.Revision == 0 {
		// Not rolled out yet: apply still deploys the file's image, at the count that runs now.
		objs, err := p.manifests(color, nil)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if o.GetKind() == "Deployment" {
				if err := unstructured.SetNestedField(o.Object, int64(in.Running), "spec", "replicas"); err != nil {
					return nil, err
				}
			}
		}
		return objs, nil
	}
	d := in.Deployment
	d.Replicas = in.Running
	return p.manifests(color, &d)
}
