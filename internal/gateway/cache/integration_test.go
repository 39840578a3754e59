package cache

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aideploy/aideploy/internal/testutil/redistest"
	"github.com/aideploy/aideploy/internal/units"
)

// TestIntegrationRedisKilledDuringUse kills a real Redis while two replicas share it: every
// lookup goes on without error from L1, and L2 works again after a restart.
func TestIntegrationRedisKilledDuringUse(t *testing.T) {
	srv := redistest.New(t)
	cfg := testConfig()
	cfg.L2.Timeout = units.Duration(50 * time.Millisecond)
	cfg.L2.BreakAfter = 2
	cfg.L2.BreakFor = units.Duration(200 * time.Millisecond)
	newClient := func() *redis.Client {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
	a, _, _ := newTestCache(t, cfg, newClient())
	b, mb, _ := newTestCache(t, cfg, newClient())
	var logs bytes.Buffer // b's calls, and so its log lines, stay on this goroutine
	b.log = slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()

	for i := range 50 {
		a.Set(ctx, fmt.Sprint(i), answer(fmt.Sprint(i)), time.Minute)
	}
	for i := range 50 {
		if _, level, _, ok := b.Get(ctx, fmt.Sprint(i)); !ok || level != LevelL2 {
			t.Fatalf("key %d on the other replica: (%s, %v), want an L2 hit", i, level, ok)
		}
	}
	srv.Kill()
	start := time.Now()
	for i := range 50 {
		if e, level, _, ok := b.Get(ctx, fmt.Sprint(i)); !ok || level != LevelL1 || string(e.Body) != fmt.Sprint(i) {
			t.Fatalf("key %d with Redis down: (%q, %s, %v), want an L1 hit", i, e.Body, level, ok)
		}
		b.Get(ctx, "missing")
		b.Set(ctx, fmt.Sprint("new", i), answer("1"), time.Minute)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("150 calls with Redis down took %s", d)
	}
	if n := mustFloat(mb.l2Errors); n < 2 {
		t.Errorf("l2 errors = %v with Redis down, want at least 2", n)
	}
	// Past breakFor, L2 is tried again and breaks again: still the same outage.
	time.Sleep(250 * time.Millisecond)
	for range cfg.L2.BreakAfter {
		b.Get(ctx, "missing")
	}
	if n := mustFloat(mb.l2Errors); n < 4 {
		t.Fatalf("l2 errors = %v after the retry, want a second break (at least 4)", n)
	}
	// One line for the outage, not one per failed call or per break.
	if n := strings.Count(logs.String(), "level=WARN msg=\"the cache's L2 (Redis) is failing"); n != 1 {
		t.Errorf("%d warnings for one outage, want 1:\n%s", n, logs.String())
	}

	srv.Restart()
	time.Sleep(250 * time.Millisecond) // past breakFor
	a.Set(ctx, "after", answer(`"back"`), time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for {
		e, level, _, ok := b.Get(ctx, "after")
		if ok && level == LevelL2 && string(e.Body) == `"back"` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("L2 not used again after Redis came back: (%q, %s, %v)", e.Body, level, ok)
		}
		a.Set(ctx, "after", answer(`"back"`), time.Minute)
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), "level=INFO msg=\"the cache's L2 (Redis) answers again\""); n != 1 {
		t.Errorf("%d lines for L2's return, want 1:\n%s", n, logs.String())
	}
}
