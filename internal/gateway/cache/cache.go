package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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
// Both tiers hold each answer as its envelope (Encode's bytes); L1 keeps them
// in freecache's preallocated ring buffers (see l1), so the garbage
// collector's work stays flat however full the cache is.
type Cache struct {
	cfg     Config
	l1      *l1
	rdb     redis.UniversalClient // nil: L1 only
	m       *Metrics
	now     func() time.Time
	l2Fails atomic.Int64 // consecutive L2 errors
	l2Until atomic.Int64 // unix ns until which L2 is skipped; 0 once L2 answered after that
	log     *slog.Logger
	envs    sync.Pool // *[]byte: Set's envelope buffers; both tiers copy them
}

// maxPooledEnvelope bounds the envelope buffers Set keeps for reuse: a rare
// long answer should not pin its size in the pool.
const maxPooledEnvelope = 64 << 10

// New builds a cache from a validated cfg. rdb nil (or cfg.L2.Enabled false) runs on L1 alone;
// m nil records no metrics, log nil logs nothing (it gets one line when L2
// starts failing and one when it answers again). Call Close when done with it.
func New(cfg Config, rdb redis.UniversalClient, m *Metrics, log *slog.Logger) *Cache {
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !cfg.L2.Enabled {
		rdb = nil
	}
	c := &Cache{cfg: cfg, rdb: rdb, m: m, now: time.Now, log: log}
	c.l1 = newL1(int(cfg.L1MaxBytes), func() time.Time { return c.now() })
	m.l1.Store(c.l1)
	return c
}

// Close releases the cache; it must not be used afterwards. The L1 tier runs
// no goroutines, so this only lets the metrics stop reading it.
func (c *Cache) Close() { c.m.l1.CompareAndSwap(c.l1, nil) }

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
	env, ok := c.l1.get(key)
	if ok {
		var err error
		if e, err = Decode(env); err != nil {
			c.l1.del(key) // cannot happen short of memory corruption; never serve it
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
		c.l1.set(key, env2, c.life(e2, now))
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
	life := c.life(e, now)
	if life <= 0 {
		return
	}
	bp, _ := c.envs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	env := e.AppendEncode((*bp)[:0])
	defer func() {
		if cap(env) <= maxPooledEnvelope {
			*bp = env
			c.envs.Put(bp)
		}
	}()
	c.l1.set(key, env, life)
	if !c.l2Usable() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.L2.Timeout.D())
	defer cancel()
	c.l2Result(c.rdb.Set(ctx, c.cfg.L2.KeyPrefix+key, env, max(life, time.Millisecond)).Err())
}

// life is how long after now e may still be served: fresh, then stale.
func (c *Cache) life(e Entry, now time.Time) time.Duration {
	return e.StoredAt.Add(e.TTL + c.cfg.StaleFor.D()).Sub(now)
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
// after which one call tries again. It logs the first break of an outage and
// the first success after it. A success only reads the shared counters unless
// they need resetting: it runs on every L2 call of every request.
func (c *Cache) l2Result(err error) {
	if err == nil {
		if c.l2Fails.Load() != 0 {
			c.l2Fails.Store(0)
		}
		if c.l2Until.Load() != 0 && c.l2Until.Swap(0) != 0 {
			c.log.Info("the cache's L2 (Redis) answers again")
		}
		return
	}
	c.m.l2Errors.Inc()
	if c.l2Fails.Add(1) >= int64(c.cfg.L2.BreakAfter) {
		c.l2Fails.Store(0)
		// A break while the last one has seen no success since is the same outage.
		if c.l2Until.Swap(time.Now().Add(c.cfg.L2.BreakFor.D()).UnixNano()) == 0 {
			c.log.Warn("the cache's L2 (Redis) is failing: answers come from L1 and the model until it answers again",
				"error", err, "retryEvery", c.cfg.L2.BreakFor.D())
		}
	}
}
