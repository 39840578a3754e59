package limit

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The kinds of limit a Decision is about.
const (
	KindRequests = "requests"
	KindTokens   = "tokens"
)

// Decision is the answer to one request for admission.
type Decision struct {
	Allowed    bool          // whether the request may go on
	Limit      int64         // the quota that applied; 0 when no rule applied (no headers then)
	Remaining  int64         // what is left of it after this request
	Reset      time.Duration // until the quota is whole again
	RetryAfter time.Duration // until a rejected request could be admitted; 0 when allowed
	Backend    string        // "local", "redis", "local-fallback", or "" when no rule applied
	Kind       string        // "requests" or "tokens"
}

// Reservation is a token budget taken before a call; settle it with the real usage.
type Reservation struct {
	key       string // "" when there is nothing to settle
	tokens    int64
	perMinute int64
	backend   string
}

// Tokens is how many tokens the reservation holds.
func (r Reservation) Tokens() int64 { return r.tokens }

// Limiter decides admissions. It is safe for concurrent use; build one per configuration.
type Limiter struct {
	cfg      Config
	routes   map[string]Rule // cfg.Routes by route template
	redis    *redisBackend   // nil: local only
	local    *localStore     // full limits (backend local)
	fallback *localStore     // limits at localShare (backend redis, while Redis fails)
	m        *Metrics
	log      *slog.Logger
	now      func() time.Time

	downUntil  atomic.Int64 // unix ns until which Redis is not tried
	inFallback atomic.Bool
}

// New builds a limiter from a validated cfg. With backend redis and a nil rdb every decision
// is made by the fallback (and says so). m nil records no metrics; log nil discards logs.
// Call Close to stop the local counters' background work.
func New(cfg Config, rdb redis.UniversalClient, m *Metrics, log *slog.Logger) *Limiter {
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Limiter{cfg: cfg, m: m, log: log, now: time.Now, routes: make(map[string]Rule, len(cfg.Routes))}
	for _, r := range cfg.Routes {
		l.routes[r.Route] = r.Rule
	}
	switch {
	case cfg.Backend != BackendRedis:
		l.local = newLocalStore(cfg.MaxKeys)
	default:
		l.fallback = newLocalStore(cfg.MaxKeys)
		if rdb != nil {
			l.redis = newRedisBackend(rdb, cfg)
		} else {
			l.enterFallback(errors.New("no Redis client configured"))
		}
	}
	return l
}

// Close stops background work; the limiter must not be used afterwards.
func (l *Limiter) Close() {
	for _, s := range []*localStore{l.local, l.fallback} {
		if s != nil {
			s.close()
		}
	}
}

// rule resolves the rule of a request and the key its counters live under.
func (l *Limiter) rule(tenant, route string) (Rule, string) {
	if r, ok := l.routes[route]; ok {
		return r, strconv.Itoa(len(tenant)) + ":" + tenant + ":" + route
	}
	if r, ok := l.cfg.Tenants[tenant]; ok {
		return r, strconv.Itoa(len(tenant)) + ":" + tenant
	}
	return l.cfg.Default, strconv.Itoa(len(tenant)) + ":" + tenant
}

// AllowRequest counts one request of tenant on route against its request limit.
func (l *Limiter) AllowRequest(ctx context.Context, tenant, route string) Decision {
	r, key := l.rule(tenant, route)
	if !l.cfg.Enabled || r.Requests <= 0 {
		return Decision{Allowed: true, Kind: KindRequests}
	}
	key = "req:" + key
	res, backend := l.decide(ctx,
		func(ctx context.Context) (result, error) { return l.redis.takeRequest(ctx, key, r) },
		func(s *localStore, r Rule) result {
			return s.get(key, func() counter { return newRequestCounter(r) }).take(l.now(), 1)
		}, r)
	d := l.decision(res, backend, KindRequests)
	if backend == BackendFallback {
		d.Limit = r.share(l.cfg.LocalShare).burstOrRequests()
	} else {
		d.Limit = r.burstOrRequests()
	}
	return d
}

// burstOrRequests is the quota a rule's headers show: the bucket size, or the window's count.
func (r Rule) burstOrRequests() int64 {
	if r.Algorithm == TokenBucket {
		return r.burst()
	}
	return r.Requests
}

// Reserve takes tokens (max_tokens or an estimate) from the tenant's token budget before the
// call. When it is allowed, the caller must Settle the reservation with the real usage.
func (l *Limiter) Reserve(ctx context.Context, tenant, route string, tokens int64) (Reservation, Decision) {
	r, key := l.rule(tenant, route)
	if !l.cfg.Enabled || r.TokensPerMinute <= 0 {
		return Reservation{}, Decision{Allowed: true, Kind: KindTokens}
	}
	tokens = max(tokens, 0)
	key = "tok:" + key
	res, backend := l.decide(ctx,
		func(ctx context.Context) (result, error) {
			return l.redis.takeTokens(ctx, key, r.TokensPerMinute, tokens)
		},
		func(s *localStore, r Rule) result {
			return s.get(key, func() counter { return newTokenCounter(r.TokensPerMinute) }).take(l.now(), tokens)
		}, r)
	d := l.decision(res, backend, KindTokens)
	perMinute := r.TokensPerMinute
	if backend == BackendFallback {
		perMinute = r.share(l.cfg.LocalShare).TokensPerMinute
	}
	d.Limit = perMinute
	if !d.Allowed {
		return Reservation{}, d
	}
	return Reservation{key: key, tokens: tokens, perMinute: perMinute, backend: backend}, d
}

// Settle charges the difference between the real usage and the reservation: a refund when
// fewer tokens were used, a debt when more. Call it once the answer (or stream) has ended,
// even if the client went away; it does not wait on ctx's cancellation.
func (l *Limiter) Settle(ctx context.Context, res Reservation, actualTokens int64) {
	delta := max(actualTokens, 0) - res.tokens
	if res.key == "" || delta == 0 {
		return
	}
	if res.backend == BackendRedis && l.redis != nil {
		if err := l.redis.settleTokens(ctx, res.key, res.perMinute, delta); err != nil {
			l.redisFailed(err)
		}
		return
	}
	s := l.local
	if res.backend == BackendFallback {
		s = l.fallback
	}
	if s == nil {
		return
	}
	perMinute := res.perMinute
	s.get(res.key, func() counter { return newTokenCounter(perMinute) }).settle(l.now(), delta)
}

// decide asks Redis when it is the backend and is not known to be down, else the local store.
func (l *Limiter) decide(ctx context.Context, remote func(context.Context) (result, error), local func(*localStore, Rule) result, r Rule) (result, string) {
	if l.local != nil {
		return local(l.local, r), BackendLocal
	}
	if l.redis != nil && time.Now().UnixNano() >= l.downUntil.Load() {
		res, err := remote(ctx)
		if err == nil {
			l.leaveFallback()
			return res, BackendRedis
		}
		if ctx.Err() == nil {
			l.redisFailed(err)
		}
	}
	l.m.fallbackDecisions.Inc()
	return local(l.fallback, r.share(l.cfg.LocalShare)), BackendFallback
}

func (l *Limiter) decision(res result, backend, kind string) Decision {
	d := Decision{Allowed: res.allowed, Remaining: res.remaining, Reset: res.reset, Backend: backend, Kind: kind}
	if !res.allowed {
		d.RetryAfter = max(res.retry, time.Millisecond)
	}
	l.m.decision(d)
	return d
}

// redisFailed counts a Redis error and stops asking Redis for redis.retryAfter.
func (l *Limiter) redisFailed(err error) {
	l.m.redisErrors.Inc()
	l.downUntil.Store(time.Now().Add(l.cfg.Redis.RetryAfter.D()).UnixNano())
	l.enterFallback(err)
}

func (l *Limiter) enterFallback(err error) {
	if l.inFallback.CompareAndSwap(false, true) {
		l.m.fallback.Set(1)
		l.log.Warn("rate limits fall back to local counters at a share of the global limit until Redis answers again",
			"error", err, "localShare", l.cfg.LocalShare)
	}
}

func (l *Limiter) leaveFallback() {
	if l.inFallback.CompareAndSwap(true, false) {
		l.m.fallback.Set(0)
		l.log.Info("rate limits are shared through Redis again")
	}
}
