// Package fakemodel is a small OpenAI-compatible model server for tests, the demo and benchmarks.
// It owns the endpoints (chat, completions, embeddings, models, health, ready, stats), the
// fault knobs (delays, failures, hangs, crashes) and how they are read from flags and FAKEMODEL_* env.
package fakemodel
