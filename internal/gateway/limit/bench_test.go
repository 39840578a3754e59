package limit

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func BenchmarkAllowRequestLocal(b *testing.B) {
	for _, alg := range []string{TokenBucket, SlidingWindow} {
		b.Run(alg, func(b *testing.B) {
			cfg := rule(alg, 1e9, time.Minute)
			cfg.Enabled = true
			l := New(cfg, nil, nil, nil)
			b.Cleanup(l.Close)
			tenants := make([]string, 64)
			for i := range tenants {
				tenants[i] = "tenant-" + strconv.Itoa(i)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					l.AllowRequest(ctx, tenants[i&63], "/v1/chat/completions")
					i++
				}
			})
		})
	}
}
