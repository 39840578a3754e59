package render

import (
	"bytes"
	"encoding/json"
	"path"
	"strings"
	"text/template"
)

// funcs is the small FuncMap the templates use. Quoting goes through JSON,
// whose strings are also valid YAML double-quoted scalars.
func funcs() template.FuncMap {
	return template.FuncMap{
		"quote": quote,
		"json":  toJSON,
		"join":  strings.Join,
		"base":  path.Base,
	}
}

// quote writes s as a double-quoted string valid in YAML and JSON.
func quote(s string) string { return toJSON(s) }

// toJSON encodes v on one line without HTML escaping; v is always encodable
// (strings, numbers, string slices), so an error is a programming mistake.
func toJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("render: encoding template value: " + err.Error())
	}
	return strings.TrimSuffix(b.String(), "\n")
}
