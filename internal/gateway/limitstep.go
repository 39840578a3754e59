package gateway

import (
	"context"
	"net/http"
)

// Limiter decides whether a tenant may send one more request; it is the limit package.
type Limiter interface {
	// Admit reserves one request and tokens; settle reports the real usage later.
	Admit(ctx context.Context, tenant, route string, tokens int64, over *TenantLimits) (ok bool, headers func(http.Header), settle func(used int64))
}

func (g *Gateway) limitStep(x *exchange, next func(*exchange)) {
	if g.limit == nil {
		next(x)
		return
	}
	next(x)
}
