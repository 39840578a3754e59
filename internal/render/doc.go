// Package render turns aideploy.yaml into the files a team deploys: a Dockerfile,
// compose.yaml, Kubernetes manifests, monitoring (Prometheus, alerts, Grafana) and
// an edge nginx.conf. Output is deterministic; every file names the config it came from.
package render
