package fakemodel

import (
	"encoding/json"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Stats are the request counters served by GET /stats.
type Stats struct {
	// Requests counts model requests (chat, completions, embeddings) received.
	Requests int64 `json:"requests"`
	// Inflight counts model requests being answered now.
	Inflight int64 `json:"inflight"`
	// Queued counts model requests waiting for a free slot (see Options.Slots).
	Queued int64 `json:"queued"`
	// Cancelled counts model requests whose client went away before the answer was complete.
	Cancelled int64 `json:"cancelled"`
	// Failed counts model requests answered 500 on purpose (failure rate, fail-after).
	Failed int64 `json:"failed"`
	// HealthChecks counts requests to /health and /ready.
	HealthChecks int64 `json:"healthChecks"`
}

// Handler serves the fake model's endpoints; it is safe for concurrent use.
type Handler struct {
	opts    Options
	started time.Time
	mux     *http.ServeMux

	requests, inflight, queued, cancelled, failed, health atomic.Int64
	// seq numbers model requests so that the failure rate is exact and deterministic.
	seq atomic.Int64
	// slots holds one token per request being worked on when opts.Slots bounds them.
	slots chan struct{}
}

// NewHandler returns a handler whose startup delay, fail-after and crash-after count from now.
func NewHandler(opts Options) *Handler {
	h := &Handler{opts: opts, started: time.Now(), mux: http.NewServeMux()}
	if opts.Slots > 0 {
		h.slots = make(chan struct{}, opts.Slots)
	}
	h.mux.HandleFunc("POST /v1/chat/completions", h.model(h.chat))
	h.mux.HandleFunc("POST /v1/completions", h.model(h.completions))
	h.mux.HandleFunc("POST /v1/embeddings", h.model(h.embeddings))
	h.mux.HandleFunc("GET /v1/models", h.models)
	h.mux.HandleFunc("GET /health", h.healthz)
	h.mux.HandleFunc("GET /ready", h.healthz)
	h.mux.HandleFunc("GET /stats", h.stats)
	return h
}

// Stats returns a snapshot of the request counters.
func (h *Handler) Stats() Stats {
	return Stats{
		Requests:     h.requests.Load(),
		Inflight:     h.inflight.Load(),
		Queued:       h.queued.Load(),
		Cancelled:    h.cancelled.Load(),
		Failed:       h.failed.Load(),
		HealthChecks: h.health.Load(),
	}
}

// ServeHTTP answers one request, hanging first when the hang knob is on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Model-Version", h.opts.Version)
	if h.opts.Hang && r.URL.Path != "/stats" {
		if isModelPath(r.URL.Path) {
			h.requests.Add(1)
			h.inflight.Add(1)
			defer h.inflight.Add(-1)
			defer h.cancelled.Add(1)
		}
		// the server notices a client that went away only once the body is read
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 8<<20))
		<-r.Context().Done()
		return
	}
	h.mux.ServeHTTP(w, r)
}

func isModelPath(p string) bool {
	return p == "/v1/chat/completions" || p == "/v1/completions" || p == "/v1/embeddings"
}

// model wraps a model endpoint with the counters, the loading gate and the injected failures.
func (h *Handler) model(next func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		h.inflight.Add(1)
		defer h.inflight.Add(-1)
		n := h.seq.Add(1)
		if h.loading() {
			writeError(w, http.StatusServiceUnavailable, "model is loading; retry after /health answers 200", "unavailable")
			return
		}
		if h.failing(n) {
			h.failed.Add(1)
			writeError(w, http.StatusInternalServerError, "injected failure", "server_error")
			return
		}
		if h.slots != nil {
			// A channel's blocked senders are served in arrival order, like an engine's queue.
			h.queued.Add(1)
			select {
			case h.slots <- struct{}{}:
				h.queued.Add(-1)
				defer func() { <-h.slots }()
			case <-r.Context().Done():
				h.queued.Add(-1)
				h.cancelled.Add(1)
				return
			}
		}
		if err := next(w, r); err != nil && r.Context().Err() != nil {
			h.cancelled.Add(1)
		}
	}
}

func (h *Handler) loading() bool { return time.Since(h.started) < h.opts.StartupDelay }

// failing reports whether the n-th model request (from 1) gets an injected 500: request n fails
// when floor(n*rate) steps up, so exactly rate*N of any N consecutive requests fail, rounded.
func (h *Handler) failing(n int64) bool {
	if h.opts.FailAfter > 0 && time.Since(h.started) >= h.opts.FailAfter {
		return true
	}
	r := h.opts.FailureRate
	return r > 0 && int64(float64(n)*r) > int64(float64(n-1)*r)
}

func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	h.health.Add(1)
	switch {
	case h.opts.HealthFail:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "version": h.opts.Version})
	case h.loading():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "loading", "version": h.opts.Version})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": h.opts.Version})
	}
}

func (h *Handler) stats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, h.Stats())
}

func (h *Handler) models(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list",
		"data": []map[string]any{{
			"id": h.opts.Model, "object": "model", "created": h.started.Unix(), "owned_by": "fakemodel",
		}},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes an OpenAI-style error body.
func writeError(w http.ResponseWriter, status int, msg, typ string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": status}})
}
