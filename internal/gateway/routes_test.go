package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aideploy/aideploy/internal/validate"
)

// rawLine sends a request line as written, so that no client cleans the
// path or checks the method first, and returns the answer.
func rawLine(t *testing.T, base, method, target string) (*http.Response, string) {
	t.Helper()
	_, _, resp, body := rawRequest(t, base, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", method, target))
	return resp, body
}

// recorder is a model server that answers 200 to everything and records
// what reached it: a path the gateway must not forward shows up here.
func recorder(t *testing.T) (string, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			mu.Lock()
			seen = append(seen, r.Method+" "+r.RequestURI)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"list","data":[],"secret":"upstream"}`))
	}))
	t.Cleanup(s.Close)
	return s.URL, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

func TestIntegrationRoutesAllowListOnDefaults(t *testing.T) {
	t.Parallel()
	up, seen := recorder(t)
	gw := runGateway(t, testConfig(up), Options{})
	for _, tt := range []struct {
		method, target string
		want           int
		allow          string
	}{
		{"GET", "/metrics", 404, ""},
		{"GET", "/admin/pools", 404, ""},
		{"GET", "/debug/pprof/", 404, ""},
		{"GET", "/v1/../admin/pools", 404, ""},
		{"GET", "/v1/%2e%2e/admin/pools", 404, ""},
		{"GET", "//v1/models", 404, ""},
		{"POST", "/tokenize", 404, ""},
		{"POST", "/v1/responses", 404, ""},
		{"POST", "/v1/load_lora_adapter", 404, ""},
		{"FOO", "/v1/models", 405, "GET, HEAD"},
		{"GET", "/v1/chat/completions", 405, "POST"},
		{"DELETE", "/v1/models/m", 405, "GET, HEAD"},
		{"GET", "/v1/models", 200, ""},
		{"GET", "/v1/models/meta-llama/Llama-3.1-8B", 200, ""},
	} {
		resp, body := rawLine(t, gw.url, tt.method, tt.target)
		if resp.StatusCode != tt.want || resp.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d Allow=%q, want %d %q: %s", tt.method, tt.target, resp.StatusCode, resp.Header.Get("Allow"), tt.want, tt.allow, body)
			continue
		}
		if tt.want != 200 {
			var e struct {
				Error struct{ Message, Type, Code string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Errorf("%s %s: not an OpenAI error: %s", tt.method, tt.target, body)
			}
		}
	}
	if got := seen(); len(got) != 2 {
		t.Fatalf("the model server saw %q; want only the two model list requests", got)
	}
}

func TestIntegrationRoutesOpenedOnPurpose(t *testing.T) {
	t.Parallel()
	up, seen := recorder(t)
	cfg := testConfig(up)
	cfg.Routes = []Route{{Path: "/tokenize", Methods: []string{"post"}}, {Path: "/v1/models/{id...}", Methods: []string{"DELETE"}}}
	gw := runGateway(t, cfg, Options{})
	for _, tt := range []struct {
		method, target string
		want           int
	}{
		{"POST", "/tokenize", 200},
		{"GET", "/tokenize", 405},
		{"DELETE", "/v1/models/m", 200},
		{"GET", "/v1/models/m", 200},
		{"GET", "/metrics", 404},
	} {
		if resp, body := rawLine(t, gw.url, tt.method, tt.target); resp.StatusCode != tt.want {
			t.Errorf("%s %s: %d, want %d: %s", tt.method, tt.target, resp.StatusCode, tt.want, body)
		}
	}
	if got := seen(); len(got) != 3 {
		t.Fatalf("the model server saw %q; want the three opened requests", got)
	}
}

func TestValidateRoutes(t *testing.T) {
	t.Parallel()
	pools := map[string]bool{"default": true, "embed": true}
	for _, tt := range []struct {
		name   string
		routes []Route
		want   string // a piece of the error, "" for none
	}{
		{"a built-in route to a pool", []Route{{Path: "/v1/embeddings", Pool: "embed"}}, ""},
		{"a path opened", []Route{{Path: "/tokenize", Methods: []string{"POST"}}}, ""},
		{"the old catch-all", []Route{{Path: "other", Pool: "embed"}}, "list each path to open"},
		{"a new path without methods", []Route{{Path: "/tokenize"}}, "must list the methods"},
		{"an unknown pool", []Route{{Path: "/v1/embeddings", Pool: "nope"}}, "not a configured pool"},
		{"not a path", []Route{{Path: "tokenize", Methods: []string{"POST"}}}, "starting with /"},
		{"a bad method", []Route{{Path: "/x", Methods: []string{"GET /y"}}}, "HTTP method"},
		{"a pattern twice", []Route{{Path: "/x/{a}", Methods: []string{"GET"}}, {Path: "/x/{b}", Methods: []string{"GET"}}}, "cannot be matched"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := validate.New()
			validateRoutes(tt.routes, pools, errs)
			got := fmt.Sprint(errs.List())
			if (tt.want == "") != (len(errs.List()) == 0) || !strings.Contains(got, tt.want) {
				t.Fatalf("errors %s, want %q", got, tt.want)
			}
		})
	}
}
