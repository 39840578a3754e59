package gateway

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"

	"github.com/buger/jsonparser"

	"github.com/aideploy/aideploy/internal/gateway/cache"
	"github.com/aideploy/aideploy/internal/gateway/openai"
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
	if bypass(x.r.Header) || x.oa.Sampled() && samples(x.route) && !g.cfg.Cache.StoreSampled() {
		x.cacheRes = "BYPASS"
		g.m.CacheResult("BYPASS", "")
		next(x)
		return
	}
	tenant := x.tenant
	if pol.Shared {
		tenant = ""
	}
	// The credentials go into the key even on a shared route: sharing is
	// between the gateway's tenants, never past the model server's own check.
	key, err := cache.Key(cache.Scope(tenant, credentials(x)), x.r.Method, x.route, x.oa.Model, keyBody(x.body))
	if err != nil {
		next(x) // the body parsed as JSON before; a key problem only costs the cache
		return
	}
	ctx := x.r.Context()
	if e, lvl, fr, ok := g.cache.Get(ctx, key); ok {
		if fr == cache.Fresh {
			if e, ok := asAsked(x, e); ok {
				g.m.CacheResult("HIT", lvl)
				g.replay(x, e, "HIT", lvl)
				return
			}
		} else if e, ok := asAsked(x, e); ok {
			x.stale = &e
		}
	}
	if x.oa.Stream {
		if s, ok := g.live.Load(key); ok && g.follow(x, s.(*share)) {
			return
		}
	}
	g.m.CacheResult("MISS", "")
	x.cacheRes = "MISS"
	leader := false
	v, _, _ := g.flight.Do(key, func() (any, error) {
		leader = true
		x.record = true
		if x.oa.Stream {
			s := &share{}
			x.share = s
			g.live.Store(key, s)
			defer func() {
				s.finish(cacheable(x))
				g.live.CompareAndDelete(key, s)
			}()
		}
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
		if e, ok := asAsked(x, *e); ok {
			g.m.CacheResult("HIT", "flight")
			g.replay(x, e, "HIT", "flight")
			return
		}
	}
	next(x) // the shared call gave nothing shareable: make our own
}

// keyBody leaves stream and stream_options out of the key: a streamed and a
// plain request for the same completion share one entry, converted on replay.
func keyBody(body []byte) []byte {
	if !bytes.Contains(body, []byte(`"stream`)) {
		return body
	}
	b := bytes.Clone(body)
	b = jsonparser.Delete(b, "stream")
	return jsonparser.Delete(b, "stream_options")
}

// asAsked returns e in the form the client asked for: SSE for a stream, JSON otherwise.
func asAsked(x *exchange, e cache.Entry) (cache.Entry, bool) {
	e, ok := asAskedForm(x, e)
	if ok && e.Stream && !x.oa.IncludeUsage {
		// Recorded streams keep the usage chunk the gateway asked for.
		e.Body = openai.DropUsageChunks(e.Body)
	}
	return e, ok
}

func asAskedForm(x *exchange, e cache.Entry) (cache.Entry, bool) {
	if e.Stream == x.oa.Stream {
		return e, true
	}
	conv, ct := openai.StreamToJSON, "application/json"
	if x.oa.Stream {
		conv, ct = openai.JSONToStream, "text/event-stream"
	}
	body, ok := conv(e.Body)
	if !ok {
		return e, false
	}
	h := e.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", ct)
	h.Del("Content-Encoding")
	e.Header, e.Body, e.Stream = h, body, x.oa.Stream
	return e, true
}

// cacheable says whether the answer may be stored: whole, successful, and in
// plain bytes (the gateway asks for no encoding, so an encoded answer is a
// server that did not listen, and could not be replayed to every client).
func cacheable(x *exchange) bool {
	return x.upStatus/100 == 2 && x.complete && !x.overflow && !x.abort &&
		len(x.upHeader.Values("Content-Encoding")) == 0
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
	setCacheHeaders(x, e.Header, result, level)
	x.w.Header()["Content-Length"] = []string{strconv.Itoa(len(e.Body))}
	x.w.WriteHeader(e.Status)
	_, _ = x.w.Write(e.Body)
}

// setCacheHeaders gives an answer from the cache or a shared call its stored
// header and X-Cache, X-Cache-Level.
func setCacheHeaders(x *exchange, stored http.Header, result, level string) {
	h := x.w.Header()
	for k, v := range stored {
		h[k] = v
	}
	h["X-Cache"] = headerValue(result)
	if level != "" {
		h["X-Cache-Level"] = headerValue(level)
	}
	x.cacheRes = result
}

// headerValue returns a one-value header slice, shared for the values the
// cache headers take so that a hit allocates none. Nothing mutates response
// header slices once set.
func headerValue(v string) []string {
	switch v {
	case "HIT":
		return hdrHit
	case "MISS":
		return hdrMiss
	case "STALE":
		return hdrStale
	case "BYPASS":
		return hdrBypass
	case cache.LevelL1:
		return hdrL1
	case cache.LevelL2:
		return hdrL2
	case "flight":
		return hdrFlight
	}
	return []string{v}
}

var (
	hdrHit, hdrMiss, hdrStale, hdrBypass = []string{"HIT"}, []string{"MISS"}, []string{"STALE"}, []string{"BYPASS"}
	hdrL1, hdrL2, hdrFlight              = []string{cache.LevelL1}, []string{cache.LevelL2}, []string{"flight"}
)
