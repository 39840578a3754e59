// Package units holds the value types that aideploy.yaml spells as text:
// durations such as "30s" and byte sizes such as "16Gi". They marshal back to
// the same text in YAML and JSON, so rendered files and --output json stay readable.
package units
