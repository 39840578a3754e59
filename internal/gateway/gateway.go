package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/cache"
	"github.com/aideploy/aideploy/internal/gateway/metrics"
	"github.com/aideploy/aideploy/internal/gateway/openai"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"golang.org/x/sync/singleflight"
)

// Cache is the answer cache the gateway consults (the cache package's two tiers).
type Cache interface {
	Get(ctx context.Context, key string) (cache.Entry, cache.Level, cache.Freshness, bool)
	Set(ctx context.Context, key string, e cache.Entry, ttl time.Duration)
}

// Deps are the shared pieces a Gateway uses; nil fields turn a feature off.
type Deps struct {
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	Cache   Cache
	Limiter Limiter
	// Breakers makes one breaker per upstream target.
	Breakers upstream.BreakerFactory
}

// Gateway is one configured handler with its pools. A reload builds a new one.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics.Metrics
	cache  Cache
	limit  Limiter
	pools  map[string]*upstream.Pool
	routes map[string]*upstream.Pool // route label -> pool, where not the default
	allow  routeTable
	def    *upstream.Pool
	keys   []apiKey
	serve  func(*exchange)
	flight singleflight.Group
	live   sync.Map // cache key -> *share: streams that followers join live

	degradedBody []byte
	retryAfter   string
	idPrefix     string
	idSeq        atomic.Uint64
	bufs         sync.Pool
	inflight     atomic.Int64
}

// New builds a gateway from a validated cfg; Run starts its health checks.
func New(cfg Config, d Deps) (*Gateway, error) {
	cfg.SetDefaults()
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	g := &Gateway{
		cfg: cfg, log: d.Logger, m: d.Metrics, cache: d.Cache, limit: d.Limiter,
		pools: map[string]*upstream.Pool{}, routes: map[string]*upstream.Pool{},
		keys: parseKeys(cfg.Auth.Keys),
	}
	for _, pc := range cfg.Pools {
		p, err := upstream.NewPool(pc, cfg.Timeouts, d.Breakers)
		if err != nil {
			return nil, err
		}
		g.pools[pc.Name] = p
		g.m.Retries.WithLabelValues(pc.Name) // exported from 0, so rate() sees the first retry
		g.m.Fallbacks.WithLabelValues(pc.Name)
	}
	g.def = g.pools[upstreamDefault]
	if g.def == nil {
		return nil, errors.New("the gateway needs a pool named \"default\" with a target; add gateway.pools or use --upstream URL")
	}
	for _, r := range cfg.Routes {
		g.routes[r.Path] = g.pools[orDefault(r.Pool)]
	}
	table, err := newRouteTable(effectiveRoutes(cfg.Routes))
	if err != nil {
		return nil, fmt.Errorf("gateway.routes: %w", err)
	}
	g.allow = table
	g.degradedBody = []byte(cfg.Degraded.Body)
	if len(g.degradedBody) == 0 {
		g.degradedBody = openai.ErrorBody("server_busy", "service_unavailable", "The service is busy; try again later.")
	}
	g.retryAfter = strconv.FormatInt(max(1, cfg.Degraded.RetryAfter.Seconds()), 10)
	var b [4]byte
	_, _ = rand.Read(b[:])
	g.idPrefix = hex.EncodeToString(b[:]) + "-"
	g.bufs.New = func() any { b := make([]byte, 16<<10); return &b }
	g.serve = g.chain(cfg.Order)
	return g, nil
}

const upstreamDefault = "default"

// Run runs the pools' health checks until ctx ends.
func (g *Gateway) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range g.pools {
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(ctx) }()
		wg.Add(1)
		go func() { defer wg.Done(); p.WatchDNS(ctx, net.DefaultResolver, upstream.DNSInterval, g.log) }()
	}
	wg.Wait()
}

// Pools returns the pools by name.
func (g *Gateway) Pools() map[string]*upstream.Pool { return g.pools }

// Inflight is the number of proxied requests in progress.
func (g *Gateway) Inflight() int64 { return g.inflight.Load() }

// Ready says whether the default pool has a usable target.
func (g *Gateway) Ready() bool {
	for _, t := range g.def.Targets() {
		if t.Healthy() {
			return true
		}
	}
	return false
}

// chain builds the steps before the upstream in the configured order: the
// only place that decides what runs before what.
func (g *Gateway) chain(order []string) func(*exchange) {
	steps := map[string]func(x *exchange, next func(*exchange)){
		"cache": g.cacheStep,
		"limit": g.limitStep,
	}
	h := g.proxy
	for i := len(order) - 1; i >= 0; i-- {
		step, ok := steps[order[i]]
		if !ok {
			continue // "upstream" is the end of every chain
		}
		next := h
		h = func(x *exchange) { step(x, next) }
	}
	return h
}

// exchange is one request on its way through the chain.
type exchange struct {
	w      responseWriter
	r      *http.Request
	start  time.Time
	id     string
	route  string
	tenant string
	key    *apiKey
	body   []byte // the body of OpenAI routes, read whole
	oa     openai.Request
	isOA   bool

	stale     *cache.Entry // an answer past its TTL, for when no upstream can answer
	record    bool         // capture the answer for the cache
	captured  []byte
	overflow  bool
	usage     openai.Usage
	hasUsage  bool
	upStatus  int
	upHeader  http.Header
	streamed  bool
	dropUsage bool   // the gateway asked for the stream's usage chunk; the client did not
	share     *share // this stream's bytes, for identical requests that follow it live
	abort     bool
	complete  bool // the upstream body arrived whole
	cacheRes  string
	onUsage   func(openai.Usage)
	settleRes func()
	firstByte time.Time // the first byte of the upstream's answer body
	finish    string    // the answer's finish_reason
	chunks    int       // a stream's content chunks
}

// ServeHTTP proxies one request through the chain.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		writeText(w, http.StatusOK, "ok\n")
		return
	case "/readyz":
		if g.Ready() {
			writeText(w, http.StatusOK, "ready\n")
		} else {
			writeText(w, http.StatusServiceUnavailable, "no healthy upstream\n")
		}
		return
	}
	route, refused, allowHdr := g.allow.match(r)
	g.inflight.Add(1)
	defer g.inflight.Add(-1)
	x := &exchange{r: r, start: time.Now(), route: route, tenant: anonymous}
	if refused != 0 {
		x.route = openai.RouteOther // a bounded metric label whatever paths clients try
	}
	x.w.reset(w)
	x.id = r.Header.Get("X-Request-Id")
	if x.id == "" || len(x.id) > 128 {
		x.id = g.idPrefix + strconv.FormatUint(g.idSeq.Add(1), 10)
	}
	w.Header()["X-Request-Id"] = []string{x.id}
	defer g.finish(x)

	if refused != 0 {
		refuseRoute(&x.w, r, refused, allowHdr)
		return
	}
	if g.cfg.Auth.Enabled {
		k, ok := authenticate(g.keys, r.Header.Get("Authorization"))
		if !ok {
			openai.WriteError(&x.w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "Missing or unknown API key; send Authorization: Bearer KEY.")
			return
		}
		x.key, x.tenant = k, k.tenant
	}
	limit := int64(g.cfg.MaxBodyBytes)
	if r.ContentLength > limit {
		openai.WriteError(&x.w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", fmt.Sprintf("The request body is larger than %d bytes.", limit))
		return
	}
	x.isOA = openai.IsBodyRoute(x.route) && r.Method == http.MethodPost
	if x.isOA {
		if !g.readOpenAI(x, limit) {
			return
		}
		// The model answers in plain bytes: the gateway reads usage from
		// them, converts streams, and stores one answer for every client,
		// whatever encodings each accepts.
		delete(r.Header, "Accept-Encoding")
	} else if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(&x.w, r.Body, limit)
	}
	g.serve(x)
}

// readOpenAI reads the body of an OpenAI route whole and parses what the
// gateway acts on. The buffer grows as bytes arrive, never to the announced
// Content-Length up front: a header alone must not cost memory.
func (g *Gateway) readOpenAI(x *exchange, limit int64) bool {
	buf, err := readBody(x.r.Body, x.r.ContentLength, limit)
	if errors.Is(err, errTooLarge) {
		openai.WriteError(&x.w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", fmt.Sprintf("The request body is larger than %d bytes.", limit))
		return false
	}
	if err != nil {
		if isTimeout(err) { // the body deadline: the connection is beyond use
			x.abort = true
			return false
		}
		openai.WriteError(&x.w, http.StatusBadRequest, "invalid_request_error", "invalid_body", "The request body could not be read: "+err.Error())
		return false
	}
	oa, err := openai.ParseRequest(buf)
	if errors.Is(err, openai.ErrDuplicateKey) {
		openai.WriteError(&x.w, http.StatusBadRequest, "invalid_request_error", "duplicate_key", "The request body is not accepted: "+err.Error())
		return false
	}
	if err != nil {
		openai.WriteError(&x.w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "The request body is not valid JSON: "+err.Error())
		return false
	}
	x.body, x.oa = buf, oa
	return true
}

// finish records metrics and the access log of one exchange.
func (g *Gateway) finish(x *exchange) {
	status := x.w.status
	if !x.w.wroteHeader {
		status = 499 // the client went away before an answer
	}
	d := time.Since(x.start)
	g.m.ObserveRequest(x.route, methodLabel(x.r.Method), status, d.Seconds())
	if x.hasUsage {
		s := g.m.ForModel(x.oa.Model)
		s.TokensIn.Add(float64(x.usage.PromptTokens))
		s.TokensOut.Add(float64(x.usage.CompletionTokens))
	}
	if x.settleRes != nil {
		x.settleRes()
	}
	if g.log.Enabled(x.r.Context(), slog.LevelDebug) {
		g.log.Debug("request", "request_id", x.id, "method", x.r.Method, "path", x.r.URL.Path, "status", status,
			"tenant", x.tenant, "cache", x.cacheRes, "duration", d, "bytes", x.w.written)
	}
	if x.abort {
		panic(http.ErrAbortHandler) // end the response uncleanly so the client sees the cut
	}
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodHead, http.MethodOptions, http.MethodPatch:
		return m
	}
	return "OTHER"
}

func writeText(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, s)
}

// unavailable answers when no upstream can take the request: a stale cached
// answer if there is one, else the degraded answer.
func (g *Gateway) unavailable(x *exchange, reason string) {
	if x.stale != nil {
		g.m.Degraded.WithLabelValues("stale").Inc()
		g.replay(x, *x.stale, "STALE", "")
		return
	}
	g.m.Degraded.WithLabelValues(reason).Inc()
	h := x.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Retry-After", g.retryAfter)
	h.Set("X-Degraded", "true")
	h.Set("Content-Length", strconv.Itoa(len(g.degradedBody)))
	x.w.WriteHeader(g.cfg.Degraded.Status)
	_, _ = x.w.Write(g.degradedBody)
}
