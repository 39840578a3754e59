package config

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// position is where a field path was written in the file.
type position struct{ line, col int }

// decoder walks a YAML tree into Go values, refusing unknown fields and
// collecting every problem with its line and column instead of stopping at the first.
type decoder struct {
	err       *Error
	positions map[string]position
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textType        = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.positions[path] = position{n.Line, n.Column}
	if n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	if v.Kind() != reflect.Pointer && v.CanAddr() && (v.Addr().Type().Implements(unmarshalerType) || v.Addr().Type().Implements(textType)) {
		d.scalar(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.mismatch(n, path, "a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.mismatch(n, path, "a mapping")
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := reflect.New(v.Type().Key()).Elem()
			if err := k.Decode(key.Addr().Interface()); err != nil {
				d.err.add(k.Line, k.Column, path, "has a key %q that is not a %s", k.Value, v.Type().Key())
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			if old := v.MapIndex(key); old.IsValid() {
				elem.Set(old)
			}
			d.decode(val, elem, join(path, k.Value))
			v.SetMapIndex(key, elem)
		}
	default:
		d.scalar(n, v, path)
	}
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.mismatch(n, path, "a mapping of fields")
		return
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		fp := join(path, k.Value)
		if seen[k.Value] {
			d.err.add(k.Line, k.Column, fp, "is set twice; keep one")
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			d.err.add(k.Line, k.Column, fp, "is not a known field; allowed here: %s", strings.Join(fieldNames(fields), ", "))
			continue
		}
		d.positions[fp] = position{k.Line, k.Column}
		d.decode(val, v.FieldByIndex(idx), fp)
		d.positions[fp] = position{k.Line, k.Column}
	}
}

func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.mismatch(n, path, describe(v.Type()))
		return
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		msg := err.Error()
		if te, ok := err.(*yaml.TypeError); ok || strings.HasPrefix(msg, "yaml: ") {
			_ = te
			d.mismatch(n, path, describe(v.Type()))
			return
		}
		d.err.add(n.Line, n.Column, path, "%s", msg)
		return
	}
	v.Set(tmp.Elem())
}

func (d *decoder) mismatch(n *yaml.Node, path, want string) {
	got := n.Value
	switch n.Kind {
	case yaml.MappingNode:
		got = "a mapping"
	case yaml.SequenceNode:
		got = "a list"
	default:
		got = strconv.Quote(got)
	}
	d.err.add(n.Line, n.Column, path, "must be %s, not %s", want, got)
}

func describe(t reflect.Type) string {
	switch t.Name() {
	case "Duration":
		return "a duration such as 30s or 5m"
	case "ByteSize":
		return "a size such as 512Mi or 16Gi"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	}
	return t.String()
}

// structFields maps YAML names to field indexes, following inline fields.
func structFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, sub := range structFields(f.Type) {
				out[k] = append([]int{i}, sub...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name[:1]) + f.Name[1:]
		}
		out[name] = []int{i}
	}
	return out
}

func fieldNames(fields map[string][]int) []string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
