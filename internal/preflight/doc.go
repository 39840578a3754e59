// Package preflight answers "will this model run here?" before a deploy: it checks the
// GPUs through NVML, the Docker engine, the Kubernetes cluster's free GPUs and metrics APIs,
// and lints manifests for known pitfalls, and prints the findings as a table or JSON.
package preflight
