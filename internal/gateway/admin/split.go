package admin

import (
	"net/http"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
)

// getSplit answers the pool's split, JSON null when it has none.
func (s *server) getSplit(w http.ResponseWriter, r *http.Request) {
	if p := s.pool(w, r); p != nil {
		writeJSON(w, http.StatusOK, p.Split())
	}
}

// setSplit installs a split (an empty percent removes it) and answers the pool.
func (s *server) setSplit(w http.ResponseWriter, r *http.Request) {
	p := s.pool(w, r)
	if p == nil {
		return
	}
	var req adminapi.Split
	if !readJSON(w, r, &req) {
		return
	}
	out, err := p.SetSplit(req)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// getShadow answers the pool's shadow, JSON null when it has none.
func (s *server) getShadow(w http.ResponseWriter, r *http.Request) {
	if p := s.pool(w, r); p != nil {
		writeJSON(w, http.StatusOK, p.Shadow())
	}
}

// setShadow installs a shadow (group "" and percent 0 remove it) and answers the pool.
func (s *server) setShadow(w http.ResponseWriter, r *http.Request) {
	p := s.pool(w, r)
	if p == nil {
		return
	}
	var req adminapi.Shadow
	if !readJSON(w, r, &req) {
		return
	}
	out, err := p.SetShadow(req)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}
