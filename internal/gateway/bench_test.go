package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway/cache"
)

// BenchmarkProxy measures the gateway's own cost per request against the fake
// model, with unique bodies (misses) and one body (hits).
func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(fakemodel.NewHandler(fakemodel.DefaultOptions()))
	defer up.Close()
	for _, mode := range []string{"miss", "miss-nocache", "hit", "other-route"} {
		b.Run(mode, func(b *testing.B) {
			cfg := testConfig(up.URL)
			cfg.SetDefaults()
			c := cache.New(cfg.Cache, nil, nil, nil)
			defer c.Close()
			d := Deps{Cache: c}
			if mode == "miss-nocache" {
				d.Cache = nil
			}
			srv, err := NewServer(b.Context(), cfg, d)
			if err != nil {
				b.Fatal(err)
			}
			gw := serveFront(b, srv)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			var seq atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					body := chatBody
					if mode != "hit" {
						body = `{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"` + strconv.FormatInt(seq.Add(1), 10) + `"}]}`
					}
					path := "/v1/chat/completions"
					if mode == "other-route" {
						path = "/v1/models"
					}
					var resp *http.Response
					var err error
					if mode == "other-route" {
						resp, err = client.Get(gw + path)
					} else {
						resp, err = client.Post(gw+path, "application/json", strings.NewReader(body))
					}
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
