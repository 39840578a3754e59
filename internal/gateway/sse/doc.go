// Package sse splits a text/event-stream into events as the bytes arrive, so
// the gateway can flush, record and inspect a stream without buffering it.
// It also writes the error event that ends a stream cut by the upstream.
package sse
