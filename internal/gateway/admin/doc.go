// Package admin serves the gateway's admin listener: the adminapi contract
// (pools, health-gated target swaps, weights, drains, stats) behind a bearer
// token, plus /metrics, /healthz and /readyz.
package admin
