// Package gateway is the HTTP front of aideploy: a streaming reverse proxy that
// knows the OpenAI routes, with cache, limits, breakers, auth, metrics, an admin
// API for traffic switches, graceful shutdown and reload.
package gateway
