// Package metrics holds the gateway's Prometheus collectors on a registry of
// its own: the seed's request, duration, token and inference metrics with
// bounded labels, plus upstream in-flight, queue depth and time to first token.
package metrics
