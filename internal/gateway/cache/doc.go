// Package cache owns the gateway's response cache: the canonical cache key (tenant, method,
// route, model and canonical JSON body hashed with SHA-256), the versioned binary envelope for
// stored answers, and the two tiers — L1 in process (freecache: near-LRU,
// bounded by bytes, no heap object per entry) and L2 in Redis.
//
// Get and Set never fail the caller: Redis errors are counted and L2 is skipped for a while
// after repeated errors. Get reports Fresh or Stale; a Stale entry (past its TTL but within
// staleFor) is meant to be served only when every upstream is down, so on a normal request
// treat it as a miss. Single-flight is the HTTP layer's job.
//
// Entries are shared between callers: treat what Get returns as read-only, and do not change
// an Entry's Header or Body after passing it to Set. Set fills Entry.TTL, so the envelope
// carries its own freshness. Use KeepHeaders to choose the headers worth storing.
//
// The Redis client given to New must be built with ContextTimeoutEnabled: true; go-redis
// ignores context deadlines otherwise, and a hung Redis would cost its ReadTimeout (3s).
package cache
