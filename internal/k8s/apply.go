package k8s

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
// fields other managers set: a rollout owns the colours it creates and
// switches. dryRun asks the API server to validate and default them without
// storing anything.
func (c *Client) Apply(ctx context.Context, objs []*unstructured.Unstructured, dryRun bool) ([]Change, error) {
	return c.apply(ctx, objs, dryRun, true)
}

// ApplyRespecting is Apply for `aideploy apply`: a field another manager (an
// operator's kubectl edit) changed is not taken over unless force. It checks
// every object first with a server dry run, so that on a conflict nothing
// is applied and the ConflictError names every field.
func (c *Client) ApplyRespecting(ctx context.Context, objs []*unstructured.Unstructured, dryRun, force bool) ([]Change, error) {
	if force {
		return c.apply(ctx, objs, dryRun, true)
	}
	if err := c.checkKinds(objs); err != nil {
		return nil, err
	}
	var conflicts []string
	for _, o := range objs {
		if _, err := c.applyOne(ctx, o, true, false); err != nil {
			fields, ok := conflictFields(err)
			if !ok {
				return nil, err
			}
			for _, f := range fields {
				conflicts = append(conflicts, fmt.Sprintf("%s/%s %s", o.GetKind(), o.GetName(), f))
			}
		}
	}
	if len(conflicts) > 0 {
		return nil, &ConflictError{Fields: conflicts}
	}
	return c.apply(ctx, objs, dryRun, false)
}

// ConflictError lists the fields another manager changed that apply would overwrite.
type ConflictError struct {
	Fields []string // "PodDisruptionBudget/chat .spec.maxUnavailable (conflict with "kubectl-edit" using policy/v1)"
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("another manager changed %d field(s) that aideploy applies:\n  %s\nnothing was applied: put the value in aideploy.yaml, or rerun with --force-conflicts to take them over",
		len(e.Fields), strings.Join(e.Fields, "\n  "))
}

// conflictFields reads the fields of a server-side apply conflict.
func conflictFields(err error) ([]string, bool) {
	var se apierrors.APIStatus
	if !errors.As(err, &se) || !apierrors.IsConflict(err) {
		return nil, false
	}
	var out []string
	if d := se.Status().Details; d != nil {
		for _, c := range d.Causes {
			if c.Type == metav1.CauseTypeFieldManagerConflict {
				out = append(out, fmt.Sprintf("%s (%s)", c.Field, c.Message))
			}
		}
	}
	if len(out) == 0 {
		out = append(out, se.Status().Message)
	}
	return out, true
}

func (c *Client) apply(ctx context.Context, objs []*unstructured.Unstructured, dryRun, force bool) ([]Change, error) {
	if err := c.checkKinds(objs); err != nil {
		return nil, err
	}
	var changes []Change
	for _, o := range objs {
		ch, err := c.applyOne(ctx, o, dryRun, force)
		if err != nil {
			return changes, err
		}
		changes = append(changes, ch)
	}
	return changes, nil
}

func (c *Client) applyOne(ctx context.Context, o *unstructured.Unstructured, dryRun, force bool) (Change, error) {
	gvk := o.GroupVersionKind()
	ch := Change{Kind: gvk.Kind, Name: o.GetName()}
	m, err := c.mapping(o)
	if err != nil {
		return ch, err
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
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: force}
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

// checkKinds fails, before anything is applied, when the cluster does not
// serve the kind of one of objs.
func (c *Client) checkKinds(objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		if _, err := c.mapping(o); err != nil {
			return err
		}
	}
	return nil
}

// mapping finds the API resource of o's kind. A cluster without KEDA has no
// ScaledObject kind, which autoscaling.engine keda renders: the error says so.
func (c *Client) mapping(o *unstructured.Unstructured) (*meta.RESTMapping, error) {
	gvk := o.GroupVersionKind()
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case err == nil:
		return m, nil
	case meta.IsNoMatchError(err) && gvk.Group == ScaledObjects.Group && gvk.Kind == KindScaledObject:
		return nil, fmt.Errorf("KEDA is not installed in the cluster (no ScaledObject CRD): install KEDA or set autoscaling.engine: hpa in aideploy.yaml (%w)", err)
	case meta.IsNoMatchError(err):
		return nil, fmt.Errorf("the cluster does not serve %s: install what provides it, or leave it out of aideploy.yaml (%w)", gvk, err)
	}
	return nil, fmt.Errorf("finding the API of %s: %w", gvk, err)
}
