package gateway

import (
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway/cache"
)

// greedyChat asks for the most likely answer, which the cache may store.
const greedyChat = `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"temperature":0}`

// keyedModel is a model server that checks its own API key, as vLLM's
// --api-key and hosted endpoints do: the gateway must never answer around it.
func keyedModel(t *testing.T, mod func(*fakemodel.Options)) (*fakemodel.Handler, string) {
	t.Helper()
	o := fakemodel.DefaultOptions()
	if mod != nil {
		mod(&o)
	}
	fm := fakemodel.NewHandler(o)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") && r.Header.Get("Authorization") != "Bearer sk-legit" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}`))
			return
		}
		fm.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return fm, s.URL
}

func TestIntegrationCacheNeverAnswersAroundTheModelsKey(t *testing.T) {
	t.Parallel()
	fm, up := keyedModel(t, nil)
	gw := runGateway(t, testConfig(up), Options{})
	url := gw.url + "/v1/chat/completions"
	for _, s := range []struct {
		name, auth string
		wantCode   int
		wantCache  string
	}{
		{"legit", "Bearer sk-legit", 200, "MISS"},
		{"no key", "", 401, "MISS"},
		{"wrong key", "Bearer sk-wrong", 401, "MISS"},
		{"legit again", "Bearer sk-legit", 200, "HIT"},
	} {
		var hdr []string
		if s.auth != "" {
			hdr = []string{"Authorization", s.auth}
		}
		resp, body := post(t, url, greedyChat, hdr...)
		if resp.StatusCode != s.wantCode || resp.Header.Get("X-Cache") != s.wantCache {
			t.Fatalf("%s: %d X-Cache=%q, want %d %s: %s", s.name, resp.StatusCode, resp.Header.Get("X-Cache"), s.wantCode, s.wantCache, body)
		}
		if s.wantCache == "HIT" && resp.Header.Get("X-Model-Version") != "v1" {
			t.Fatalf("%s: a hit lost X-Model-Version: %v", s.name, resp.Header)
		}
	}
	if n := fm.Stats().Requests; n != 1 {
		t.Fatalf("the model answered %d requests with its key checked, want 1", n)
	}
}

func TestIntegrationCacheJoinNeedsTheSameKey(t *testing.T) {
	t.Parallel()
	fm, up := keyedModel(t, func(o *fakemodel.Options) { o.FirstTokenDelay = 400 * time.Millisecond })
	gw := runGateway(t, testConfig(up), Options{})
	url := gw.url + "/v1/chat/completions"
	stream := strings.Replace(greedyChat, `"temperature":0`, `"temperature":0,"stream":true`, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, body := post(t, url, stream, "Authorization", "Bearer sk-legit")
		if resp.StatusCode != 200 || !strings.Contains(body, "[DONE]") {
			t.Errorf("legit stream: %d %q", resp.StatusCode, body)
		}
	}()
	waitFor(t, "the upstream call in flight", func() bool { return fm.Stats().Inflight == 1 })
	for _, auth := range []string{"", "Bearer sk-wrong"} {
		var hdr []string
		if auth != "" {
			hdr = []string{"Authorization", auth}
		}
		resp, body := post(t, url, stream, hdr...)
		if resp.StatusCode != 401 || resp.Header.Get("X-Cache") == "HIT" {
			t.Errorf("auth %q joined the legit stream: %d X-Cache=%q %q", auth, resp.StatusCode, resp.Header.Get("X-Cache"), body)
		}
	}
	wg.Wait()
}

func TestIntegrationCacheSampledAnswersAreNotStored(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, body, policy string
		wantSecond         string
	}{
		{"no temperature means 1", strings.Replace(greedyChat, `,"temperature":0`, "", 1), "", "BYPASS"},
		{"temperature 0.7", strings.Replace(greedyChat, `"temperature":0`, `"temperature":0.7`, 1), "", "BYPASS"},
		{"n of 3", strings.Replace(greedyChat, `"temperature":0`, `"temperature":0,"n":3`, 1), "", "BYPASS"},
		{"greedy", greedyChat, "", "HIT"},
		{"seeded", strings.Replace(greedyChat, `"temperature":0`, `"temperature":1,"seed":42`, 1), "", "HIT"},
		{"sampled, stored on request", strings.Replace(greedyChat, `,"temperature":0`, "", 1), cache.SampledStore, "HIT"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fm, up := fake(t, nil)
			cfg := testConfig(up)
			cfg.Cache.Sampled = tt.policy
			gw := runGateway(t, cfg, Options{})
			post(t, gw.url+"/v1/chat/completions", tt.body)
			resp, _ := post(t, gw.url+"/v1/chat/completions", tt.body)
			if got := resp.Header.Get("X-Cache"); got != tt.wantSecond {
				t.Fatalf("second request X-Cache=%q, want %s", got, tt.wantSecond)
			}
			want := int64(1)
			if tt.wantSecond == "BYPASS" {
				want = 2
			}
			if n := fm.Stats().Requests; n != want {
				t.Fatalf("the model saw %d requests, want %d", n, want)
			}
		})
	}
}

// TestIntegrationCacheAnswersEveryEncoding has a model server that
// compresses whenever it may: one client's gzip must not reach another that
// did not ask for it.
func TestIntegrationCacheAnswersEveryEncoding(t *testing.T) {
	t.Parallel()
	fm := fakemodel.NewHandler(fakemodel.DefaultOptions())
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") && strings.HasPrefix(r.URL.Path, "/v1/") {
			rec := httptest.NewRecorder()
			fm.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.Code)
			zw := gzip.NewWriter(w)
			_, _ = zw.Write(rec.Body.Bytes())
			_ = zw.Close()
			return
		}
		fm.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	gw := runGateway(t, testConfig(s.URL), Options{})
	url := gw.url + "/v1/chat/completions"
	post(t, url, greedyChat, "Accept-Encoding", "gzip")
	resp, body := post(t, url, greedyChat, "Accept-Encoding", "identity")
	var v map[string]any
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("a client that accepts no gzip got %d %v %q", resp.StatusCode, resp.Header, body)
	}
}

func TestCacheHitKeepsTheModelVersion(t *testing.T) {
	t.Parallel()
	_, up := fake(t, func(o *fakemodel.Options) { o.Version = "v7" })
	_, gw := startGateway(t, testConfig(up), true)
	for _, want := range []string{"MISS", "HIT"} {
		resp, _ := post(t, gw+"/v1/chat/completions", greedyChat)
		if resp.Header.Get("X-Cache") != want || resp.Header.Get("X-Model-Version") != "v7" {
			t.Fatalf("X-Cache=%q X-Model-Version=%q, want %s and v7", resp.Header.Get("X-Cache"), resp.Header.Get("X-Model-Version"), want)
		}
	}
}
