// Package breaker owns the per-upstream circuit breaker (sony/gobreaker/v2, two-step form):
// it opens on consecutive failures or a failure ratio over a window, probes half-open after
// a cooldown, and exports its state as ai_gateway_breaker_state{upstream}.
//
// What counts as a failure (5xx, timeouts, connection errors) is the caller's decision,
// reported through the done function that Allow returns. Requests that say nothing about the
// upstream (the client went away) should be reported with done(true) only if they reached it.
package breaker
