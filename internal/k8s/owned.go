package k8s

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ownedFields returns the field set (the FieldsV1 tree of managedFields) that
// manager owns in o through apply, or nil when it owns nothing.
func ownedFields(o *unstructured.Unstructured, manager string) map[string]any {
	var set map[string]any
	for _, e := range o.GetManagedFields() {
		if e.Manager != manager || e.Operation != metav1.ManagedFieldsOperationApply || e.FieldsV1 == nil {
			continue
		}
		var f map[string]any
		if json.Unmarshal(e.FieldsV1.Raw, &f) != nil {
			continue
		}
		set = mergeFields(set, f)
	}
	return set
}

// mergeFields returns the union of two field sets.
func mergeFields(a, b map[string]any) map[string]any {
	if a == nil {
		return b
	}
	for k, bv := range b {
		bm, _ := bv.(map[string]any)
		am, _ := a[k].(map[string]any)
		a[k] = mergeFields(am, bm)
		if a[k] == nil {
			a[k] = map[string]any{}
		}
	}
	return a
}

// project keeps of obj only what the field set names. Kubernetes encodes a
// field set as a tree whose keys are "f:<field>" for map fields,
// "k:<json>" for list items picked by their key fields, "v:<json>" for set
// items and "i:<n>" for list items by index; "." marks the node itself. An
// empty subtree means the whole value below.
func project(obj any, set map[string]any) any {
	if len(set) == 0 || (len(set) == 1 && set["."] != nil) {
		return obj
	}
	switch v := obj.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, sub := range set {
			name, ok := strings.CutPrefix(k, "f:")
			if !ok {
				continue
			}
			if val, ok := v[name]; ok {
				subset, _ := sub.(map[string]any)
				out[name] = project(val, subset)
			}
		}
		return out
	case []any:
		var out []any
		for i, item := range v {
			if sub, ok := itemFields(item, i, set); ok {
				out = append(out, project(item, sub))
			}
		}
		return out
	default:
		return obj
	}
}

// itemFields finds the subtree of set that names the list item at index i.
func itemFields(item any, i int, set map[string]any) (map[string]any, bool) {
	for k, sub := range set {
		subset, _ := sub.(map[string]any)
		switch {
		case strings.HasPrefix(k, "i:"):
			if n, err := strconv.Atoi(k[2:]); err == nil && n == i {
				return subset, true
			}
		case strings.HasPrefix(k, "v:"):
			var want any
			if json.Unmarshal([]byte(k[2:]), &want) == nil && reflect.DeepEqual(jsonValue(item), want) {
				return subset, true
			}
		case strings.HasPrefix(k, "k:"):
			var keys map[string]any
			m, isMap := item.(map[string]any)
			if !isMap || json.Unmarshal([]byte(k[2:]), &keys) != nil {
				continue
			}
			if matchesKeys(m, keys) {
				return subset, true
			}
		}
	}
	return nil, false
}

func matchesKeys(m, keys map[string]any) bool {
	for name, want := range keys {
		if !reflect.DeepEqual(jsonValue(m[name]), want) {
			return false
		}
	}
	return true
}

// jsonValue normalises v to what encoding/json decodes it as, so that an
// int64 port compares equal to the float64 of a field-set key.
func jsonValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}
