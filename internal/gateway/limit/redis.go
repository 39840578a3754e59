package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Both scripts read Redis's clock (TIME), so replicas with skewed clocks still share one
// limit, and work in microseconds. They return {allowed, remaining, retry_us, reset_us}.

// gcraScript takes cost units from a GCRA budget (ARGV[4] = "take") or moves its theoretical
// arrival time by cost units, which may be negative ("settle"). A rejected take stores nothing.
const gcraScript = `
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local span = burst * emission
local new_tat = tat + cost * emission
if ARGV[4] == 'settle' then
  if new_tat <= now then
    redis.call('DEL', KEYS[1])
    return {1, burst, 0, 0}
  end
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
  return {1, math.max(0, math.floor((span - (new_tat - now)) / emission)), 0, new_tat - now}
end
local allow_at = new_tat - span
local allowed, retry
if cost > burst then
  allowed = tat <= now
  retry = tat - now
else
  allowed = now >= allow_at
  retry = allow_at - now
end
if not allowed then
  return {0, math.max(0, math.floor((span - (tat - now)) / emission)), math.ceil(retry), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.max(0, math.floor((span - (new_tat - now)) / emission)), 0, math.ceil(new_tat - now)}
`

// slidingLogScript admits a request if fewer than limit were admitted in the last window,
// logging admitted requests in a sorted set scored by time; a rejected one is not logged.
const slidingLogScript = `
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, string.format('%.0f', now) .. '-' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1)
  return {1, limit - count - 1, 0, window}
end
local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
return {0, 0, math.ceil(tonumber(oldest[2]) + window - now), math.ceil(tonumber(newest[2]) + window - now)}
`

// redisBackend runs the scripts; go-redis sends EVALSHA and falls back to EVAL once per
// server that has not seen a script yet.
type redisBackend struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
	gcra    *redis.Script
	log     *redis.Script
}

func newRedisBackend(rdb redis.UniversalClient, cfg Config) *redisBackend {
	return &redisBackend{
		rdb: rdb, prefix: cfg.Redis.KeyPrefix, timeout: cfg.Redis.Timeout.D(),
		gcra: redis.NewScript(gcraScript), log: redis.NewScript(slidingLogScript),
	}
}

func (b *redisBackend) takeRequest(ctx context.Context, key string, r Rule) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if r.Algorithm == TokenBucket {
		emission := float64(r.Window.D().Microseconds()) / float64(r.Requests)
		return run(ctx, b.gcra, b.rdb, b.prefix+key, emission, r.burst(), 1, "take")
	}
	return run(ctx, b.log, b.rdb, b.prefix+key, r.Window.D().Microseconds(), r.Requests, nonce())
}

func (b *redisBackend) takeTokens(ctx context.Context, key string, perMinute, n int64) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return run(ctx, b.gcra, b.rdb, b.prefix+key, 60e6/float64(perMinute), perMinute, n, "take")
}

func (b *redisBackend) settleTokens(ctx context.Context, key string, perMinute, delta int64) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
	defer cancel()
	_, err := run(ctx, b.gcra, b.rdb, b.prefix+key, 60e6/float64(perMinute), perMinute, delta, "settle")
	return err
}

func run(ctx context.Context, s *redis.Script, rdb redis.UniversalClient, key string, args ...any) (result, error) {
	v, err := s.Run(ctx, rdb, []string{key}, args...).Int64Slice()
	if err != nil {
		return result{}, fmt.Errorf("running the rate-limit script on %s: %w", key, err)
	}
	if len(v) != 4 {
		return result{}, fmt.Errorf("rate-limit script on %s returned %d values, want 4", key, len(v))
	}
	return result{
		allowed: v[0] == 1, remaining: v[1],
		retry: time.Duration(v[2]) * time.Microsecond, reset: time.Duration(v[3]) * time.Microsecond,
	}, nil
}

// nonce makes sliding-log members unique when two replicas log in the same microsecond.
func nonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
