// Package limit owns the gateway's rate limits: requests per window (token bucket or sliding
// window) and token budgets per minute (reserve before the call, settle the real usage after),
// per tenant and per route, enforced locally or shared by every replica through atomic Redis
// Lua scripts (GCRA for token buckets and budgets, a sorted-set log for sliding windows).
//
// A rejected request never counts against its window. When Redis fails, the Limiter falls
// back to local limits at localShare of the global limit, sets ai_gateway_ratelimit_fallback
// and logs the change; it never fails open silently. The Redis client must be built with
// ContextTimeoutEnabled: true so that redis.timeout bounds each call.
//
// A rule listed for a route replaces the tenant's rule on that route (keyed by tenant and
// route); otherwise the tenant's own rule, or the default rule, applies per tenant.
// AllowRequest and Reserve are separate checks: a request that AllowRequest admits and
// Reserve then rejects has been counted as a request. A refund whose Redis call fails is
// dropped (the budget errs on the strict side).
package limit
