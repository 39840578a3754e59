package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options are what the admin handler serves.
type Options struct {
	// Pools returns the pools of the gateway serving now (it changes on reload).
	Pools func() map[string]*upstream.Pool
	// Token returns the bearer token; empty refuses every admin API call.
	// It is asked on every call, so that a reload can rotate the token.
	Token func() string
	// Registry is exported on /metrics; nil serves no metrics.
	Registry *prometheus.Registry
	// Ready reports readiness for /readyz.
	Ready func() bool
}

// Handler returns the admin listener's handler.
func Handler(o Options) http.Handler {
	s := &server{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if o.Ready != nil && !o.Ready() {
			http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	if o.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry}))
	}
	// Profiles for diagnosing the gateway itself, behind the admin token. An
	// execution trace shows what a CPU profile cannot: where the slowest
	// requests waited (scheduler, collector, network).
	mux.HandleFunc("GET /debug/pprof/", s.auth(pprof.Index))
	mux.HandleFunc("GET /debug/pprof/profile", s.auth(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/trace", s.auth(pprof.Trace))
	mux.HandleFunc("GET "+adminapi.PathPools, s.auth(s.listPools))
	mux.HandleFunc("GET "+adminapi.PathPool, s.auth(s.getPool))
	mux.HandleFunc("PUT "+adminapi.PathTargets, s.auth(s.replaceTargets))
	mux.HandleFunc("PUT "+adminapi.PathWeights, s.auth(s.setWeights))
	mux.HandleFunc("POST "+adminapi.PathDrain, s.auth(s.drain))
	mux.HandleFunc("GET "+adminapi.PathStats, s.auth(s.stats))
	mux.HandleFunc("GET "+adminapi.PathSplit, s.auth(s.getSplit))
	mux.HandleFunc("PUT "+adminapi.PathSplit, s.auth(s.setSplit))
	mux.HandleFunc("GET "+adminapi.PathShadow, s.auth(s.getShadow))
	mux.HandleFunc("PUT "+adminapi.PathShadow, s.auth(s.setShadow))
	return mux
}

type server struct {
	o Options
}

func (s *server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		want := ""
		if s.o.Token != nil {
			want = s.o.Token()
		}
		if want == "" {
			writeErr(w, http.StatusForbidden, "the admin API is off: set gateway.adminTokenFile or "+adminapi.TokenEnv)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			// Through the Kubernetes API server's pod proxy, which keeps Authorization for itself.
			tok = r.Header.Get(adminapi.TokenHeader)
			ok = tok != ""
		}
		// Compared as hashes, so the time taken says nothing of the length.
		sum, wantSum := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(want))
		if !ok || subtle.ConstantTimeCompare(sum[:], wantSum[:]) != 1 {
			writeErr(w, http.StatusUnauthorized, "missing or wrong admin token")
			return
		}
		h(w, r)
	}
}

func (s *server) pool(w http.ResponseWriter, r *http.Request) *upstream.Pool {
	name := r.PathValue("pool")
	p, ok := s.o.Pools()[name]
	if !ok {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no pool %q", name))
		return nil
	}
	return p
}

func (s *server) listPools(w http.ResponseWriter, r *http.Request) {
	pools := s.o.Pools()
	out := make([]adminapi.Pool, 0, len(pools))
	for _, p := range pools {
		out = append(out, p.Snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getPool(w http.ResponseWriter, r *http.Request) {
	if p := s.pool(w, r); p != nil {
		writeJSON(w, http.StatusOK, p.Snapshot())
	}
}

func (s *server) replaceTargets(w http.ResponseWriter, r *http.Request) {
	p := s.pool(w, r)
	if p == nil {
		return
	}
	var req adminapi.ReplaceTargets
	if !readJSON(w, r, &req) {
		return
	}
	out, err := p.Replace(r.Context(), req)
	var hg *upstream.HealthGateError
	switch {
	case errors.As(err, &hg):
		writeErr(w, http.StatusConflict, "nothing changed: "+hg.Error())
	case err != nil:
		writeErr(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *server) setWeights(w http.ResponseWriter, r *http.Request) {
	p := s.pool(w, r)
	if p == nil {
		return
	}
	var req adminapi.SetWeights
	if !readJSON(w, r, &req) {
		return
	}
	out, err := p.SetWeights(req.Weights)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, upstream.ErrUnknownTarget) {
			code = http.StatusNotFound
		}
		writeErr(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) drain(w http.ResponseWriter, r *http.Request) {
	p := s.pool(w, r)
	if p == nil {
		return
	}
	var req adminapi.Drain
	if !readJSON(w, r, &req) {
		return
	}
	out, err := p.Drain(r.Context(), req.URL, req.Timeout.D())
	if err != nil {
		writeErr(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	p := s.pool(w, r)
	if p == nil {
		return
	}
	window := 30 * time.Second
	if v := r.URL.Query().Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeErr(w, http.StatusBadRequest, fmt.Sprintf("window %q must be a positive duration such as 30s", v))
			return
		}
		window = d
	}
	writeJSON(w, http.StatusOK, p.Stats(window))
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, adminapi.Error{Error: msg})
}
