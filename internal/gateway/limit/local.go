package limit

import (
	"math"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/time/rate"
)

// result is what one check of one counter decided.
type result struct {
	allowed          bool
	limit, remaining int64
	reset, retry     time.Duration
}

// counter is one tenant's (or tenant and route's) state for one rule.
type counter interface {
	take(now time.Time, n int64) result
	settle(now time.Time, delta int64) // token budgets only
	idle() time.Duration               // after this long unused its state is as good as new
}

// localStore keeps counters in memory, bounded in number, dropping those idle long enough
// that dropping them loses nothing.
type localStore struct {
	c *otter.Cache[string, counter]
}

func newLocalStore(maxKeys int) *localStore {
	return &localStore{c: otter.Must(&otter.Options[string, counter]{
		MaximumSize: maxKeys,
		ExpiryCalculator: otter.ExpiryAccessingFunc(func(e otter.Entry[string, counter]) time.Duration {
			return e.Value.idle()
		}),
	})}
}

func (s *localStore) get(key string, newCounter func() counter) counter {
	if c, ok := s.c.GetIfPresent(key); ok {
		return c
	}
	c, _ := s.c.SetIfAbsent(key, newCounter())
	return c
}

func (s *localStore) close() { s.c.StopAllGoroutines() }

// newRequestCounter builds the local counter of a request rule.
func newRequestCounter(r Rule) counter {
	if r.Algorithm == TokenBucket {
		b := r.burst()
		return &bucket{lim: rate.NewLimiter(rate.Limit(float64(r.Requests)/r.Window.D().Seconds()), int(b)), burst: b, window: r.Window.D()}
	}
	return &window{limit: r.Requests, size: r.Window.D()}
}

// bucket is a token bucket of requests (golang.org/x/time/rate).
type bucket struct {
	lim    *rate.Limiter
	burst  int64
	window time.Duration
}

func (b *bucket) take(now time.Time, n int64) result {
	per := float64(b.lim.Limit())
	ok := b.lim.AllowN(now, int(n))
	tokens := b.lim.TokensAt(now)
	r := result{allowed: ok, limit: b.burst, remaining: max(0, int64(math.Floor(tokens))),
		reset: seconds((float64(b.burst) - tokens) / per)}
	if !ok {
		r.retry = seconds((float64(n) - tokens) / per)
	}
	return r
}

func (b *bucket) settle(time.Time, int64) {}
func (b *bucket) idle() time.Duration     { return 2 * b.window }

func seconds(s float64) time.Duration {
	return time.Duration(math.Ceil(max(s, 0) * float64(time.Second)))
}

// window is a sliding-window counter: the previous fixed window's count, weighted by how
// much of it still overlaps the sliding window, plus the current one's. O(1) memory.
type window struct {
	mu         sync.Mutex
	limit      int64
	size       time.Duration
	start      time.Time // of the current fixed window
	prev, curr int64
}

func (w *window) take(now time.Time, n int64) result {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.start) >= w.size {
		if now.Sub(w.start) >= 2*w.size {
			w.prev = 0
		} else {
			w.prev = w.curr
		}
		w.curr = 0
		w.start = now.Truncate(w.size)
	}
	elapsed := now.Sub(w.start)
	weight := 1 - float64(elapsed)/float64(w.size)
	used := float64(w.prev)*weight + float64(w.curr)
	r := result{limit: w.limit, reset: w.start.Add(2 * w.size).Sub(now)}
	if w.curr == 0 {
		r.reset = w.start.Add(w.size).Sub(now)
	}
	if used+float64(n) <= float64(w.limit)+1e-9 {
		w.curr += n
		r.allowed = true
		r.remaining = max(0, int64(math.Floor(float64(w.limit)-used-float64(n)+1e-9)))
		r.reset = w.start.Add(2 * w.size).Sub(now)
		return r
	}
	// Rejected: not counted. Retry once enough of the previous window has slid out.
	switch {
	case w.curr+n > w.limit:
		// Not before the next window; then the current count is the one sliding out.
		x := 1 - float64(w.limit-n)/float64(w.curr)
		r.retry = w.start.Add(w.size).Sub(now) + time.Duration(math.Ceil(x*float64(w.size)))
	default:
		x := 1 - float64(w.limit-w.curr-n)/float64(w.prev)
		r.retry = time.Duration(math.Ceil(x*float64(w.size))) - elapsed
	}
	r.retry = max(r.retry, time.Millisecond)
	return r
}

func (w *window) settle(time.Time, int64) {}
func (w *window) idle() time.Duration     { return 2 * w.size }

// gcra is a token budget by the generic cell rate algorithm: tat is the theoretical arrival
// time of the next unit; the budget is full when tat <= now. It can go into debt, which
// settling a larger real usage needs.
type gcra struct {
	mu       sync.Mutex
	emission time.Duration // time to earn one unit
	burst    int64
	tat      time.Time
}

func newTokenCounter(perMinute int64) counter {
	return &gcra{emission: time.Minute / time.Duration(perMinute), burst: perMinute}
}

func (g *gcra) take(now time.Time, n int64) result {
	g.mu.Lock()
	defer g.mu.Unlock()
	tat := g.tat
	if tat.Before(now) {
		tat = now
	}
	span := time.Duration(g.burst) * g.emission
	newTat := tat.Add(time.Duration(n) * g.emission)
	allowAt := newTat.Add(-span)
	// A reservation larger than the whole budget runs only when the budget is untouched.
	ok := !now.Before(allowAt) || (n > g.burst && !tat.After(now))
	if !ok {
		retry := allowAt.Sub(now)
		if n > g.burst {
			retry = tat.Sub(now)
		}
		return result{limit: g.burst, remaining: g.units(span - tat.Sub(now)), reset: tat.Sub(now), retry: retry}
	}
	g.tat = newTat
	return result{allowed: true, limit: g.burst, remaining: g.units(span - newTat.Sub(now)), reset: newTat.Sub(now)}
}

func (g *gcra) units(d time.Duration) int64 { return max(0, int64(d/g.emission)) }

func (g *gcra) settle(now time.Time, delta int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	tat := g.tat
	if tat.Before(now) {
		tat = now
	}
	g.tat = tat.Add(time.Duration(delta) * g.emission)
}

func (g *gcra) idle() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return max(time.Until(g.tat), 0) + time.Minute
}
