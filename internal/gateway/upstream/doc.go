// Package upstream owns pools of model servers: targets over http:// or unix
// sockets, least-outstanding selection with two random choices and weights,
// bounded in-flight work with a wait queue, health checks, draining and stats;
// and, for canaries, groups of targets (versions) with a split between them,
// a fallback group, a shadow group for mirrored requests, and per-group figures.
package upstream
