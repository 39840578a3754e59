package gateway

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/aideploy/aideploy/internal/gateway/cache"
)

// cacheStep answers repeats from the cache and makes identical concurrent
// misses share one upstream call.
func (g *Gateway) cacheStep(x *exchange, next func(*exchange)) {
	if g.cache == nil || !x.isOA {
		next(x)
		return
	}
	pol := g.cfg.Cache.Route(x.route)
	if !pol.Enabled {
		next(x)
		return
	}
	if bypass(x.r.Header) {
		x.cacheRes = "BYPASS"
		g.m.Cache.WithLabelValues("BYPASS", "").Inc()
		next(x)
		return
	}
	tenant := x.tenant
	if pol.Shared {
		tenant = ""
	}
	key, err := cache.Key(tenant, x.r.Method, x.route, x.oa.Model, x.body)
	if err != nil {
		next(x) // the body parsed as JSON before; a key problem only costs the cache
		return
	}
	ctx := x.r.Context()
	if e, lvl, fr, ok := g.cache.Get(ctx, key); ok {
		if fr == cache.Fresh {
			g.m.Cache.WithLabelValues("HIT", lvl).Inc()
			g.replay(x, e, "HIT", lvl)
			return
		}
		x.stale = &e
	}
	g.m.Cache.WithLabelValues("MISS", "").Inc()
	x.cacheRes = "MISS"
	leader := false
	v, _, _ := g.flight.Do(key, func() (any, error) {
		leader = true
		x.record = true
		next(x)
		if !cacheable(x) {
			return nil, nil
		}
		e := cache.Entry{Status: x.upStatus, Header: cache.KeepHeaders(x.upHeader), Body: x.captured, Stream: x.streamed}
		g.cache.Set(ctx, key, e, pol.TTL)
		return &e, nil
	})
	if leader {
		return
	}
	if e, ok := v.(*cache.Entry); ok && e != nil {
		g.m.Cache.WithLabelValues("HIT", "flight").Inc()
		g.replay(x, *e, "HIT", "flight")
		return
	}
	next(x) // the shared call gave nothing shareable: make our own
}

func cacheable(x *exchange) bool {
	return x.upStatus/100 == 2 && x.complete && !x.overflow && !x.abort
}

// bypass says whether the client asked not to be served from or stored into the cache.
func bypass(h http.Header) bool {
	for _, v := range h["Cache-Control"] {
		v = strings.ToLower(v)
		if strings.Contains(v, "no-cache") || strings.Contains(v, "no-store") {
			return true
		}
	}
	return false
}

// replay writes a stored answer; a recorded stream is sent back as the same SSE bytes.
func (g *Gateway) replay(x *exchange, e cache.Entry, result, level string) {
	h := x.w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	h["X-Cache"] = []string{result}
	if level != "" {
		h["X-Cache-Level"] = []string{level}
	}
	h["Content-Length"] = []string{strconv.Itoa(len(e.Body))}
	x.cacheRes = result
	x.w.WriteHeader(e.Status)
	_, _ = x.w.Write(e.Body)
}
