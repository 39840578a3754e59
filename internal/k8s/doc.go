// Package k8s runs a service on Kubernetes: server-side apply of the rendered
// objects, blue/green colours switched through the gateway's pods (or, without
// the gateway, behind an active and a preview Service), canary and shadow
// shares set on every gateway pod, prewarm through the HPA's floor, and the
// status tree, all on client-go.
package k8s
