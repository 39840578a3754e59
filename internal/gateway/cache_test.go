package gateway

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/units"
)

func TestCacheHitMissBypassAndTenants(t *testing.T) {
	t.Parallel()
	fm, up := fake(t, nil)
	cfg := testConfig(up)
	cfg.Auth.Enabled = true
	cfg.Auth.Keys = []Key{
		{Name: "acme", SHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"},  // foo
		{Name: "other", SHA256: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"}, // bar
	}
	_, gw := startGateway(t, cfg, true)
	url := gw + "/v1/chat/completions"
	steps := []struct {
		name, key, body, cc string
		wantCache, wantLvl  string
		wantUpstream        int64
	}{
		{"first is a miss", "foo", chatBody, "", "MISS", "", 1},
		{"repeat is a hit", "foo", chatBody, "", "HIT", "L1", 1},
		{"same JSON, other spacing, is a hit", "foo", strings.ReplaceAll(chatBody, ",", ", "), "", "HIT", "L1", 1},
		{"no-cache bypasses", "foo", chatBody, "no-cache", "BYPASS", "", 2},
		{"another tenant misses", "bar", chatBody, "", "MISS", "", 3},
		{"stream is its own entry", "foo", streamBody, "", "MISS", "", 4},
		{"stream replays", "foo", streamBody, "", "HIT", "L1", 4},
	}
	var firstBody string
	for _, s := range steps {
		hdr := []string{"Authorization", "Bearer " + s.key}
		if s.cc != "" {
			hdr = append(hdr, "Cache-Control", s.cc)
		}
		resp, body := post(t, url, s.body, hdr...)
		if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != s.wantCache || resp.Header.Get("X-Cache-Level") != s.wantLvl {
			t.Fatalf("%s: got %d X-Cache=%q level=%q", s.name, resp.StatusCode, resp.Header.Get("X-Cache"), resp.Header.Get("X-Cache-Level"))
		}
		if n := fm.Stats().Requests; n != s.wantUpstream {
			t.Fatalf("%s: upstream saw %d requests, want %d", s.name, n, s.wantUpstream)
		}
		if s.name == "first is a miss" {
			firstBody = body
		}
		if s.name == "repeat is a hit" && body != firstBody {
			t.Fatalf("hit body differs:\n%s\n%s", body, firstBody)
		}
		if s.name == "stream replays" && (!strings.Contains(body, "data: [DONE]") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")) {
			t.Fatalf("replayed stream is not SSE: %v %q", resp.Header, body)
		}
	}
}

func TestCacheSingleFlight(t *testing.T) {
	t.Parallel()
	fm, up := fake(t, func(o *fakemodel.Options) { o.FirstTokenDelay = 300 * time.Millisecond })
	_, gw := startGateway(t, testConfig(up), true)
	var wg sync.WaitGroup
	codes := make(chan string, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := post(t, gw+"/v1/chat/completions", chatBody)
			codes <- resp.Status + " " + resp.Header.Get("X-Cache")
		}()
	}
	wg.Wait()
	close(codes)
	hits := 0
	for c := range codes {
		if !strings.HasPrefix(c, "200") {
			t.Fatalf("a request got %s", c)
		}
		if strings.HasSuffix(c, "HIT") {
			hits++
		}
	}
	if n := fm.Stats().Requests; n != 1 {
		t.Fatalf("50 identical concurrent requests made %d upstream calls, want 1", n)
	}
	if hits != 49 {
		t.Fatalf("%d requests were served the shared answer, want 49", hits)
	}
}

func TestCacheServesStaleWhenUpstreamDown(t *testing.T) {
	t.Parallel()
	_, up := fake(t, nil)
	cfg := testConfig(up)
	cfg.Cache.TTL = units.Duration(100 * time.Millisecond)
	cfg.Cache.StaleFor = units.Duration(time.Hour)
	cfg.Pools[0].HealthCheck.Path = "" // only the passive verdict matters here
	srv, gw := startGateway(t, cfg, true)
	if resp, _ := post(t, gw+"/v1/chat/completions", chatBody); resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("first: %v", resp.Header)
	}
	time.Sleep(150 * time.Millisecond)
	for _, tg := range srv.Gateway().Pools()["default"].Targets() {
		tg.SetHealthyForTest(false)
	}
	resp, body := post(t, gw+"/v1/chat/completions", chatBody)
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "STALE" || !strings.Contains(body, "chat.completion") {
		t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, _ = post(t, gw+"/v1/chat/completions", `{"model":"x"}`)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Degraded") != "true" {
		t.Fatalf("uncached request while down: %d %v", resp.StatusCode, resp.Header)
	}
}
