package cache

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/aideploy/aideploy/internal/testutil/redistest"
	"github.com/aideploy/aideploy/internal/units"
)

// fakeClock is a settable clock for freshness decisions.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testConfig() Config {
	cfg := Default()
	cfg.TTL = units.Duration(time.Minute)
	cfg.StaleFor = units.Duration(time.Minute)
	cfg.L2.Timeout = units.Duration(100 * time.Millisecond)
	return cfg
}

func newTestCache(t *testing.T, cfg Config, rdb redis.UniversalClient) (*Cache, *Metrics, *fakeClock) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	c := New(cfg, rdb, m, nil)
	clk := &fakeClock{t: time.Now()}
	c.now = clk.Now
	t.Cleanup(c.Close)
	return c, m, clk
}

func mustFloat(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

func answer(body string) Entry {
	return Entry{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}
}

func TestL1FreshStaleExpired(t *testing.T) {
	t.Parallel()
	c, m, clk := newTestCache(t, testConfig(), nil)
	ctx := context.Background()
	if _, _, _, ok := c.Get(ctx, "k"); ok {
		t.Fatalf("empty cache found an entry")
	}
	c.Set(ctx, "k", answer(`{"a":1}`), time.Minute)
	steps := []struct {
		advance time.Duration
		found   bool
		fresh   Freshness
	}{
		{0, true, Fresh},
		{59 * time.Second, true, Fresh},
		{2 * time.Second, true, Stale},
		{time.Minute, false, Fresh},
	}
	for i, s := range steps {
		clk.Add(s.advance)
		e, level, f, ok := c.Get(ctx, "k")
		if ok != s.found || (ok && (f != s.fresh || level != LevelL1 || string(e.Body) != `{"a":1}`)) {
			t.Errorf("step %d: Get = (%q, %s, %s, %v), want found=%v %s from L1", i, e.Body, level, f, ok, s.found, s.fresh)
		}
	}
	if got := testutil.ToFloat64(m.hits.WithLabelValues(LevelL1)); got != 2 {
		t.Errorf("L1 hits = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.staleHits.WithLabelValues(LevelL1)); got != 1 {
		t.Errorf("L1 stale hits = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.misses); got != 2 {
		t.Errorf("misses = %v, want 2", got)
	}
}

func TestSetSkipsLargeAndZeroTTL(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxEntryBytes = 1024
	c, _, _ := newTestCache(t, cfg, nil)
	ctx := context.Background()
	c.Set(ctx, "big", Entry{Status: 200, Body: make([]byte, 2048)}, time.Minute)
	c.Set(ctx, "nottl", answer("{}"), 0)
	for _, k := range []string{"big", "nottl"} {
		if _, _, _, ok := c.Get(ctx, k); ok {
			t.Errorf("%s was stored", k)
		}
	}
}

func TestL1BoundedByBytes(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.L1MaxBytes = 1 << 20
	cfg.MaxEntryBytes = 64 << 10
	c, m, _ := newTestCache(t, cfg, nil)
	body := bytes.Repeat([]byte("x"), 60<<10)
	ctx := context.Background()
	key := func(i int) string { return fmt.Sprintf("key-%d", i) }
	for i := range 100 {
		c.Set(ctx, key(i), Entry{Status: 200, Body: body}, time.Minute)
		// The latest answer is whole: its 62 parts spread over 256 segments
		// of four parts each. (Five landing in one segment would evict the
		// first, a miss; placement is a fixed hash of these keys, so this
		// holds on every run.)
		if e, _, _, ok := c.Get(ctx, key(i)); !ok || !bytes.Equal(e.Body, body) {
			t.Fatalf("answer %d missing or damaged right after it was stored", i)
		}
	}
	held := 0
	for i := range 100 {
		if e, _, _, ok := c.Get(ctx, key(i)); ok {
			held += len(e.Body)
		}
	}
	if held > 1<<20 || held < 4*len(body) {
		t.Errorf("L1 holds %d bytes of answers under a 1Mi bound, want 4 to 17 answers of 60Ki", held)
	}
	if got := testutil.ToFloat64(m.l1Evicted); got < 500 {
		t.Errorf("evictions = %v, want most of the 6,000 parts written", got)
	}
}

func TestL2BackfillAcrossReplicas(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	cfg := testConfig()
	a, _, _ := newTestCache(t, cfg, rdb)
	b, mb, _ := newTestCache(t, cfg, rdb)
	ctx := context.Background()

	a.Set(ctx, "k", answer(`{"from":"a"}`), 30*time.Second)
	if ttl := mr.TTL(cfg.L2.KeyPrefix + "k"); ttl < 89*time.Second || ttl > 90*time.Second {
		t.Errorf("L2 TTL = %s, want ttl+staleFor = 90s", ttl)
	}
	for i, want := range []Level{LevelL2, LevelL1} {
		e, level, f, ok := b.Get(ctx, "k")
		if !ok || level != want || f != Fresh || string(e.Body) != `{"from":"a"}` || e.Header.Get("Content-Type") != "application/json" {
			t.Errorf("get %d from the other replica = (%q, %s, %s, %v), want fresh from %s", i, e.Body, level, f, ok, want)
		}
	}
	if got := testutil.ToFloat64(mb.hits.WithLabelValues(LevelL2)); got != 1 {
		t.Errorf("L2 hits = %v, want 1", got)
	}
}

func TestStaleL1PrefersFreshL2(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	cfg := testConfig()
	a, _, clkA := newTestCache(t, cfg, rdb)
	b, _, clkB := newTestCache(t, cfg, rdb)
	ctx := context.Background()

	b.Set(ctx, "k", answer(`"old"`), time.Minute)
	clkA.Add(90 * time.Second)
	clkB.Add(90 * time.Second)
	a.Set(ctx, "k", answer(`"new"`), time.Minute) // another replica refreshed it
	e, level, f, ok := b.Get(ctx, "k")
	if !ok || f != Fresh || level != LevelL2 || string(e.Body) != `"new"` {
		t.Errorf("Get = (%q, %s, %s, %v), want the fresh answer from L2", e.Body, level, f, ok)
	}
}

func TestCorruptL2EntryIsAMiss(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	cfg := testConfig()
	c, m, _ := newTestCache(t, cfg, rdb)
	if err := mr.Set(cfg.L2.KeyPrefix+"k", "\x01garbage"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := c.Get(context.Background(), "k"); ok {
		t.Errorf("corrupt L2 entry was returned")
	}
	if got := testutil.ToFloat64(m.l2Errors); got != 1 {
		t.Errorf("l2 errors = %v, want 1", got)
	}
}

// TestSlowRedisCostsAtMostTheTimeout points L2 at a server that accepts and never answers.
func TestSlowRedisCostsAtMostTheTimeout(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Hung(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	cfg := testConfig()
	cfg.L2.Timeout = units.Duration(20 * time.Millisecond)
	cfg.L2.BreakAfter = 3
	c, m, _ := newTestCache(t, cfg, rdb)
	ctx := context.Background()

	c.Set(ctx, "k", answer(`1`), time.Minute)
	start := time.Now()
	for range 10 {
		if _, level, _, ok := c.Get(ctx, "k"); !ok || level != LevelL1 {
			t.Fatalf("Get with a hung Redis = (%s, %v), want an L1 hit", level, ok)
		}
		if _, _, _, ok := c.Get(ctx, "missing"); ok {
			t.Fatalf("found a missing key")
		}
	}
	// Set and the first two misses wait for the 20ms timeout; then L2 is skipped. Without a
	// working timeout each call would wait for go-redis's 3s read timeout.
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("20 lookups took %s with a hung Redis; each L2 call should cost at most 20ms", d)
	}
	if got := testutil.ToFloat64(m.l2Errors); got != 3 {
		t.Errorf("l2 errors = %v, want 3 (then skipped)", got)
	}
	if got := testutil.ToFloat64(m.l2Skipped); got < 5 {
		t.Errorf("l2 skipped = %v, want the rest of the misses", got)
	}
}

// runtimeMetric reads one of the runtime's counters.
func runtimeMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// A cache miss must not pay for a goroutine and a thread woken to maintain
// L1 (otter's default executor did that). Not parallel, so that other tests'
// goroutines do not count.
func TestL1WritesStartNoGoroutines(t *testing.T) {
	c, _, _ := newTestCache(t, testConfig(), nil)
	ctx := context.Background()
	created := func() uint64 { return runtimeMetric("/sched/goroutines-created:goroutines") }
	before := created()
	for i := range 200 {
		c.Set(ctx, fmt.Sprintf("key-%d", i), answer(`{"n":1}`), time.Minute)
		time.Sleep(100 * time.Microsecond) // writes apart, as misses come: a drain would finish in between
	}
	if n := created() - before; n > 20 {
		t.Fatalf("200 writes started %d goroutines", n)
	}
}

// A full L1 must not leave the garbage collector an object per answer to
// mark: with otter (a node and an envelope each, the keys made beforehand)
// this test counted 40,366 objects for 20,000 answers, and a full default L1
// cost 150-250 ms of CPU per collection. Not parallel: other tests' objects
// would count.
func TestL1AddsNoObjectPerEntry(t *testing.T) {
	cfg := testConfig()
	cfg.L1MaxBytes = 64 << 20
	c, m, _ := newTestCache(t, cfg, nil)
	ctx := context.Background()
	objects := func() uint64 {
		runtime.GC()
		return runtimeMetric("/gc/heap/objects:objects")
	}
	keys := make([]string, 20_000)
	for i := range keys {
		k, err := Key("t", "POST", "/v1/chat/completions", "m", []byte(fmt.Sprintf(`{"q":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	before := objects()
	for _, k := range keys {
		c.Set(ctx, k, answer(`{"choices":[{"message":{"content":"an answer of a usual length"}}]}`), time.Minute)
	}
	after := objects()
	if got := testutil.ToFloat64(m.l1Entries); got != float64(len(keys)) {
		t.Fatalf("L1 holds %v entries, want %d", got, len(keys))
	}
	if n := int64(after) - int64(before); n > 2_000 {
		t.Errorf("20,000 answers in L1 added %d heap objects, want at most 2,000", n)
	}
	runtime.KeepAlive(keys)
}

// TestSetReusesEnvelopes: both tiers copy the envelope, so Set encodes into a
// reused buffer; an allocation per answer would be garbage on every miss.
func TestSetReusesEnvelopes(t *testing.T) {
	c, _, _ := newTestCache(t, testConfig(), nil)
	ctx := context.Background()
	e := answer(`{"choices":[{"message":{"content":"hello"}}]}`)
	c.Set(ctx, "warm", e, time.Minute)
	n := 0
	keys := make([]string, 200)
	for i := range keys {
		keys[i] = strings.Repeat("k", 60) + strconv.Itoa(i)
	}
	if a := testing.AllocsPerRun(100, func() {
		c.Set(ctx, keys[n%len(keys)], e, time.Minute)
		n++
	}); a > 0 && !raceBuild {
		t.Fatalf("Set made %.1f allocations per answer, want 0", a)
	}
	for _, k := range keys[:100] {
		if got, _, _, ok := c.Get(ctx, k); !ok || string(got.Body) != string(e.Body) {
			t.Fatalf("%s: got %q, %v after reused buffers", k, got.Body, ok)
		}
	}
}
