// Package validate collects field errors of a configuration section. Each error
// names the field path ("autoscaling.maxReplicas") and what is allowed; the config
// loader adds the file, line and column, so sections need not know about YAML.
package validate
