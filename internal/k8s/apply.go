package k8s

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Action says what applying an object did, or would do.
type Action string

// The outcomes of applying one object.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
)

// Change is the outcome of applying one object.
type Change struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Action Action `json:"action"`
	// Diff shows the lines that changed, live object first ("-") then applied ("+").
	Diff string `json:"diff,omitempty"`
}

func (c Change) String() string { return fmt.Sprintf("%s/%s %s", c.Kind, c.Name, c.Action) }

// Apply server-side applies objs with the field manager aideploy, taking over
// fields other managers set; dryRun asks the API server to validate and
// default them without storing anything.
func (c *Client) Apply(ctx context.Context, objs []*unstructured.Unstructured, dryRun bool) ([]Change, error) {
	var changes []Change
	for _, o := range objs {
		ch, err := c.applyOne(ctx, o, dryRun)
		if err != nil {
			return changes, err
		}
		changes = append(changes, ch)
	}
	return changes, nil
}

func (c *Client) applyOne(ctx context.Context, o *unstructured.Unstructured, dryRun bool) (Change, error) {
	gvk := o.GroupVersionKind()
	ch := Change{Kind: gvk.Kind, Name: o.GetName()}
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return ch, fmt.Errorf("finding the API of %s: %w", gvk, err)
	}
	ri := c.Dynamic.Resource(m.Resource)
	var res interface {
		Get(context.Context, string, metav1.GetOptions, ...string) (*unstructured.Unstructured, error)
		Apply(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions, ...string) (*unstructured.Unstructured, error)
	} = ri
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		o = o.DeepCopy()
		o.SetNamespace(c.Namespace)
		res = ri.Namespace(c.Namespace)
	}
	live, err := res.Get(ctx, o.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		live, err = nil, nil
	}
	if err != nil {
		return ch, fmt.Errorf("reading %s %s: %w", gvk.Kind, o.GetName(), err)
	}
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	got, err := res.Apply(ctx, o.GetName(), o, opts)
	if err != nil {
		return ch, fmt.Errorf("applying %s %s: %w", gvk.Kind, o.GetName(), err)
	}
	if ch.Diff, err = ownedDiff(live, got); err != nil {
		return ch, err
	}
	switch {
	case live == nil:
		ch.Action = Created
	case ch.Diff == "":
		ch.Action = Unchanged
	default:
		ch.Action = Configured
	}
	return ch, nil
}

// ownedDiff shows what applying changed in the fields aideploy applies, now
// or before: a controller writing its own fields (a Deployment's revision
// annotation) between the read and the apply is not a change aideploy made.
// live is nil for an object the apply created.
func ownedDiff(live, got *unstructured.Unstructured) (string, error) {
	owned := ownedFields(got, FieldManager)
	if live != nil {
		owned = mergeFields(ownedFields(live, FieldManager), owned)
	}
	after, err := comparable(got, owned)
	if err != nil {
		return "", err
	}
	before := ""
	if live != nil {
		if before, err = comparable(live, owned); err != nil {
			return "", err
		}
	}
	return lineDiff(before, after, 3), nil
}

// comparable renders o as YAML: its identity and the fields in owned, or all
// but the fields the server maintains when owned is empty.
func comparable(o *unstructured.Unstructured, owned map[string]any) (string, error) {
	o = o.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "uid", "generation", "creationTimestamp"} {
		unstructured.RemoveNestedField(o.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(o.Object, "status")
	obj := o.Object
	if len(owned) > 0 {
		obj, _ = project(o.Object, owned).(map[string]any)
		obj["apiVersion"], obj["kind"] = o.GetAPIVersion(), o.GetKind()
		md, _ := obj["metadata"].(map[string]any)
		if md == nil {
			md = map[string]any{}
			obj["metadata"] = md
		}
		md["name"] = o.GetName()
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		return "", fmt.Errorf("showing %s %s: %w", o.GetKind(), o.GetName(), err)
	}
	return string(b), nil
}
