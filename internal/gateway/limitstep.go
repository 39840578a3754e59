package gateway

import (
	"context"
	"math"

	"github.com/aideploy/aideploy/internal/gateway/limit"
	"github.com/aideploy/aideploy/internal/gateway/openai"
)

// Limiter admits requests and token budgets; it is the limit package's Limiter.
type Limiter interface {
	AllowRequest(ctx context.Context, tenant, route string) limit.Decision
	Reserve(ctx context.Context, tenant, route string, tokens int64) (limit.Reservation, limit.Decision)
	Settle(ctx context.Context, res limit.Reservation, actualTokens int64)
}

// defaultCompletionTokens is reserved when a request sets no max_tokens.
const defaultCompletionTokens = 256

// limitStep counts the request against the tenant's request limit, reserves
// its tokens, and settles them from the real usage once the answer has ended.
func (g *Gateway) limitStep(x *exchange, next func(*exchange)) {
	if g.limit == nil {
		next(x)
		return
	}
	ctx := x.r.Context()
	d := g.limit.AllowRequest(ctx, x.tenant, x.route)
	if !d.Allowed {
		g.reject(x, d)
		return
	}
	if x.isOA && x.route != openai.RouteEmbeddings {
		want := x.oa.MaxTokens
		if want <= 0 {
			want = defaultCompletionTokens
		}
		if n := x.oa.N; n > 1 { // each of n choices may use max_tokens
			want = min(want, math.MaxInt64/n) * n
		}
		want += int64(len(x.body)/4) + 1 // a rough prompt estimate: about 4 bytes a token
		res, td := g.limit.Reserve(ctx, x.tenant, x.route, want)
		if !td.Allowed {
			g.reject(x, td)
			return
		}
		if res.Tokens() > 0 {
			x.settleRes = func() {
				switch {
				case x.hasUsage:
					g.limit.Settle(context.WithoutCancel(ctx), res, x.usage.TotalTokens)
				case x.upStatus/100 != 2 && !x.w.wroteHeader || x.upStatus >= 400:
					g.limit.Settle(context.WithoutCancel(ctx), res, 0) // the model did no work
				}
				// Otherwise (a cut stream, a client gone) the reservation stands.
			}
		}
	}
	g.m.LimitAllowed.Inc()
	limit.WriteHeaders(x.w.Header(), d)
	next(x)
}

func (g *Gateway) reject(x *exchange, d limit.Decision) {
	g.m.Limits.WithLabelValues("rejected_" + d.Kind).Inc()
	limit.WriteRejected(&x.w, d)
}
