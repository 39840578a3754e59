package cli

import (
	"encoding/json"

	"io"

	"sigs.k8s.io/yaml"
)

// Output formats accepted by --output.
// wide is the table with every column whole, where a command has a narrower
// default (preflight); elsewhere it is the table.
var outputFormats = []string{"table", "wide", "json", "yaml"}

// printOutput writes v as JSON or YAML, or calls table for the human form.
func printOutput(w io.Writer, format string, v any, table func(io.Writer) error) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	case "table", "":
		return table(w)
	}
	return UsageErrorf("--output %q is not supported; use table, wide, json or yaml", format)
}

func validateOutput(format string) error {
	for _, f := range outputFormats {
		if f == format {
			return nil
		}
	}
	return UsageErrorf("--output %q is not supported; use table, wide, json or yaml", format)
}
