package cache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

var benchBody = []byte(`{"model":"llama-3-8b","messages":[{"role":"system","content":"You are a helpful assistant."},` +
	`{"role":"user","content":"Summarise the following paragraph in two sentences: the gateway answers repeats from cache, ` +
	`keeps any one user from starving the rest, and stops piling requests onto a model that has slowed down."}],` +
	`"temperature":0.2,"max_tokens":256,"stream":false,"top_p":1}`)

func BenchmarkKey(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := Key("tenant-a", "POST", "/v1/chat/completions", "llama-3-8b", benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkL1(b *testing.B) {
	c := New(Default(), nil, nil, nil)
	b.Cleanup(c.Close)
	ctx := context.Background()
	e := answer(string(benchBody))
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("%064d", i)
		c.Set(ctx, keys[i], e, time.Hour)
	}
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, _, _, ok := c.Get(ctx, keys[i&1023]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("GetParallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				c.Get(ctx, keys[i&1023])
				i++
			}
		})
	})
	b.Run("Set", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Set(ctx, keys[i&1023], e, time.Hour)
			i++
		}
	})
}
