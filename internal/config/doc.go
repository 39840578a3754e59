// Package config owns aideploy.yaml, the one source of truth: its Go types,
// defaults, strict decoding with file:line:column errors, validation and the
// JSON Schema that editors use. Sections owned by other packages plug in here.
package config
