package gateway

import (
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/aideploy/aideploy/internal/gateway/breaker"
	"github.com/aideploy/aideploy/internal/gateway/cache"
	"github.com/aideploy/aideploy/internal/gateway/limit"
	"github.com/aideploy/aideploy/internal/gateway/metrics"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
)

// depsBuilder makes a configuration's cache, limiter and breakers over what
// lives as long as the process: Redis and the metrics, whose collectors can
// be registered once only.
type depsBuilder struct {
	log      *slog.Logger
	m        *metrics.Metrics
	rdb      *redis.Client
	cacheM   *cache.Metrics
	limitM   *limit.Metrics
	breakerM *breaker.Metrics

	// the settings each cache and limiter was built from: a reload compares
	// with those of the one serving, not of the last one built, which a
	// refused reload may have thrown away
	mu        sync.Mutex
	cacheCfgs map[Cache]cache.Config
	limitCfgs map[Limiter]limit.Config
}

func newDepsBuilder(log *slog.Logger, m *metrics.Metrics, rdb *redis.Client) *depsBuilder {
	return &depsBuilder{log: log, m: m, rdb: rdb, cacheM: cache.NewMetrics(m.Registry),
		limitM: limit.NewMetrics(m.Registry), breakerM: breaker.NewMetrics(m.Registry),
		cacheCfgs: map[Cache]cache.Config{}, limitCfgs: map[Limiter]limit.Config{}}
}

// first builds the dependencies of the first configuration.
func (b *depsBuilder) first(cfg Config) Deps {
	d, _, _ := b.build(cfg, Deps{Logger: b.log, Metrics: b.m})
	return d
}

// build makes cfg's dependencies, keeping prev's cache and limiter where
// their settings are the same (so a reload that changes a route does not
// empty the L1); retire closes those of prev that were replaced, drop those
// of d that are new. The breakers are made afresh with the new gateway's
// targets either way.
func (b *depsBuilder) build(cfg Config, prev Deps) (d Deps, retire, drop func()) {
	d = Deps{Logger: b.log, Metrics: b.m}
	bcfg, bm := cfg.Breaker, b.breakerM
	d.Breakers = func(target string) upstream.Breaker { return breaker.New(target, bcfg, bm, breaker.WithLogger(b.log)) }
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !cfg.Cache.Enabled:
	case prev.Cache != nil && reflect.DeepEqual(cfg.Cache, b.cacheCfgs[prev.Cache]):
		d.Cache = prev.Cache
	default:
		c := cache.New(cfg.Cache, redisOrNil(b.rdb), b.cacheM, b.log)
		d.Cache = c
		b.cacheCfgs[c] = cfg.Cache
	}
	lc := limitsConfig(cfg)
	switch {
	case !cfg.Limits.Enabled:
	case prev.Limiter != nil && reflect.DeepEqual(lc, b.limitCfgs[prev.Limiter]):
		d.Limiter = prev.Limiter
	default:
		l := limit.New(lc, redisOrNil(b.rdb), b.limitM, b.log)
		d.Limiter = l
		b.limitCfgs[l] = lc
	}
	return d, func() { b.close(prev, d) }, func() { b.close(d, prev) }
}

// close closes what d holds that keep does not: the old dependencies a
// reload replaced, or new ones of a reload that was refused.
func (b *depsBuilder) close(d, keep Deps) {
	b.mu.Lock()
	if d.Cache != keep.Cache {
		delete(b.cacheCfgs, d.Cache)
	}
	if d.Limiter != keep.Limiter {
		delete(b.limitCfgs, d.Limiter)
	}
	b.mu.Unlock()
	closeDeps(d, keep)
}

// closeDeps closes what d holds that keep does not.
func closeDeps(d, keep Deps) {
	if c, ok := d.Cache.(*cache.Cache); ok && d.Cache != keep.Cache {
		c.Close()
	}
	if l, ok := d.Limiter.(*limit.Limiter); ok && d.Limiter != keep.Limiter {
		l.Close()
	}
}

// needsRestart names the settings that changed from old to cfg and that a
// reload cannot apply, because they belong to the listeners or to Redis,
// which live as long as the process.
func needsRestart(old, cfg Config) []string {
	var out []string
	add := func(name string, changed bool) {
		if changed {
			out = append(out, name)
		}
	}
	add("listen", old.Listen != cfg.Listen)
	add("adminListen", old.AdminListen != cfg.AdminListen)
	add("redisURL", old.RedisURL != cfg.RedisURL)
	o, n := old.Server, cfg.Server
	add("server.tls (turning TLS on or off)", o.TLS.Enabled() != n.TLS.Enabled())
	add("server.disableH2C", o.DisableH2C != n.DisableH2C)
	add("server.maxHeaderBytes", o.MaxHeaderBytes != n.MaxHeaderBytes)
	add("server.readHeaderTimeout", o.ReadHeaderTimeout != n.ReadHeaderTimeout)
	add("server.idleTimeout", o.IdleTimeout != n.IdleTimeout)
	return out
}

// reloadMessage is the log line of a reload: it names what waits for a restart.
func reloadMessage(restart []string) string {
	if len(restart) == 0 {
		return "configuration reloaded; every setting applied"
	}
	return fmt.Sprintf("configuration reloaded; these settings apply after a restart: %v", restart)
}
