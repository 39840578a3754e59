package cache

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// Level names the tier an answer came from.
type Level = string

// The levels Get reports.
const (
	LevelL1 Level = "L1"
	LevelL2 Level = "L2"
)

// Freshness says whether a found answer is within its TTL.
type Freshness int

// The freshness Get reports.
const (
	Fresh Freshness = iota // within its TTL: serve it as a HIT
	Stale                  // past its TTL but within staleFor: serve it only when upstreams are down
)

// String returns "fresh" or "stale".
func (f Freshness) String() string {
	if f == Stale {
		return "stale"
	}
	return "fresh"
}

// Cache is the two-tier answer cache. It is safe for concurrent use.
//
// L1 holds each answer as its envelope (Encode's bytes), the same bytes L2
// stores: one pointer-free object per entry instead of a header map with its
// strings, which keeps the garbage collector's work flat as the cache fills.
type Cache struct {
	cfg     Config
	l1      *otter.Cache[string, []byte]
	rdb     redis.UniversalClient // nil: L1 only
	m       *Metrics
	now     func() time.Time
	l2Fails atomic.Int64 // consecutive L2 errors
	l2Until atomic.Int64 // unix ns until which L2 is skipped
}

// New builds a cache from a validated cfg. rdb nil (or cfg.L2.Enabled false) runs on L1 alone;
// m nil records no metrics. Call Close to stop the L1 tier's background work.
func New(cfg Config, rdb redis.UniversalClient, m *Metrics) *Cache {
	if m == nil {
		m = NewMetrics(nil)
	}
	if !cfg.L2.Enabled {
		rdb = nil
	}
	c := &Cache{cfg: cfg, rdb: rdb, m: m, now: time.Now}
	c.l1 = otter.Must(&otter.Options[string, []byte]{
		MaximumWeight: uint64(cfg.L1MaxBytes),
		Weigher: func(key string, env []byte) uint32 {
			return uint32(min(len(key)+len(env)+64, 1<<31))
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(oe otter.Entry[string, []byte]) time.Duration {
			storedAt, ttl := envelopeTimes(oe.Value)
			return max(time.Until(storedAt.Add(ttl+cfg.StaleFor.D())), time.Millisecond)
		}),
		// Maintenance runs on the goroutine that wrote: the default executor
		// starts a goroutine for nearly every write, and on a cache miss
		// that goroutine and the thread woken to run it cost more than the
		// drain itself. Nothing here runs user code under the cache's locks
		// (no OnDeletion, no Compute, no refresh).
		Executor: func(fn func()) { fn() },
	})
	m.l1.Store(c.l1)
	return c
}

// Close stops the L1 tier's background goroutines; the cache must not be used afterwards.
func (c *Cache) Close() { c.l1.StopAllGoroutines() }

// freshness classifies e at now; ok is false once it is past staleFor too.
func (c *Cache) freshness(e Entry, now time.Time) (Freshness, bool) {
	age := now.Sub(e.StoredAt)
	switch {
	case age < e.TTL:
		return Fresh, true
	case age < e.TTL+c.cfg.StaleFor.D():
		return Stale, true
	}
	return Fresh, false
}

// Get looks key up in L1, then in L2. A fresh L2 answer is copied into L1. When L1 holds
// only a stale answer, L2 is asked for a fresher one (another replica may have refreshed it).
// Redis problems only make Get report less; they are counted, never returned.
func (c *Cache) Get(ctx context.Context, key string) (Entry, Level, Freshness, bool) {
	now := c.now()
	var e Entry
	var f Freshness
	env, ok := c.l1.GetIfPresent(key)
	if ok {
		var err error
		if e, err = Decode(env); err != nil {
			c.l1.Invalidate(key) // cannot happen short of memory corruption; never serve it
			ok = false
		}
	}
	if ok {
		f, ok = c.freshness(e, now)
	}
	if ok && f == Fresh {
		c.m.l1Hits.Inc()
		return e, LevelL1, Fresh, true
	}
	if e2, env2, f2, ok2 := c.getL2(ctx, key, now); ok2 && (!ok || f2 == Fresh) {
		c.l1.Set(key, env2)
		c.count(LevelL2, f2)
		return e2, LevelL2, f2, true
	}
	if ok {
		c.count(LevelL1, f)
		return e, LevelL1, f, true
	}
	c.m.misses.Inc()
	return Entry{}, "", Fresh, false
}

func (c *Cache) count(level Level, f Freshness) {
	switch {
	case level == LevelL1 && f == Fresh:
		c.m.l1Hits.Inc()
	case f == Fresh:
		c.m.l2Hits.Inc()
	default:
		c.m.staleHits.WithLabelValues(level).Inc()
	}
}

func (c *Cache) getL2(ctx context.Context, key string, now time.Time) (Entry, []byte, Freshness, bool) {
	if !c.l2Usable() {
		return Entry{}, nil, Fresh, false
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.L2.Timeout.D())
	defer cancel()
	data, err := c.rdb.Get(ctx, c.cfg.L2.KeyPrefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		c.l2Result(nil)
		return Entry{}, nil, Fresh, false
	}
	if err != nil {
		if ctx.Err() == nil || !errors.Is(context.Cause(ctx), context.Canceled) {
			c.l2Result(err)
		}
		return Entry{}, nil, Fresh, false
	}
	c.l2Result(nil)
	e, err := Decode(data)
	if err != nil {
		c.m.l2Errors.Inc()
		return Entry{}, nil, Fresh, false
	}
	f, ok := c.freshness(e, now)
	return e, data, f, ok
}

// Set stores e under key in both tiers, fresh for ttl and servable as stale for staleFor
// more. StoredAt is set to now when zero. Answers larger than maxEntryBytes are not stored.
// The L2 write outlives ctx's cancellation (the client may be gone) but not the L2 timeout.
func (c *Cache) Set(ctx context.Context, key string, e Entry, ttl time.Duration) {
	if ttl <= 0 || e.Size() > int(c.cfg.MaxEntryBytes) {
		return
	}
	now := c.now()
	if e.StoredAt.IsZero() {
		e.StoredAt = now
	}
	e.TTL = ttl
	env := e.Encode()
	c.l1.Set(key, env)
	if !c.l2Usable() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.L2.Timeout.D())
	defer cancel()
	life := e.StoredAt.Add(ttl + c.cfg.StaleFor.D()).Sub(now)
	if life <= 0 {
		return
	}
	c.l2Result(c.rdb.Set(ctx, c.cfg.L2.KeyPrefix+key, env, max(life, time.Millisecond)).Err())
}

// l2Usable says whether L2 exists and is not being skipped after repeated errors.
// It runs on the real clock, not on c.now, which tests move to check freshness.
func (c *Cache) l2Usable() bool {
	if c.rdb == nil {
		return false
	}
	if time.Now().UnixNano() < c.l2Until.Load() {
		c.m.l2Skipped.Inc()
		return false
	}
	return true
}

// l2Result feeds the simple L2 circuit: breakAfter consecutive errors skip L2 for breakFor,
// after which one call tries again.
func (c *Cache) l2Result(err error) {
	if err == nil {
		c.l2Fails.Store(0)
		return
	}
	c.m.l2Errors.Inc()
	if c.l2Fails.Add(1) >= int64(c.cfg.L2.BreakAfter) {
		c.l2Fails.Store(0)
		c.l2Until.Store(time.Now().Add(c.cfg.L2.BreakFor.D()).UnixNano())
	}
}
