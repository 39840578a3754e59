package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
)

func TestAdminSplitAndShadow(t *testing.T) {
	t.Parallel()
	up := func() string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		t.Cleanup(s.Close)
		return s.URL
	}
	pc := upstream.PoolConfig{Name: adminapi.DefaultPool, Targets: []upstream.TargetConfig{{URL: up()}}}
	pc.SetDefaults()
	p, err := upstream.NewPool(pc, upstream.DefaultTimeouts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pools := map[string]*upstream.Pool{adminapi.DefaultPool: p}
	srv := httptest.NewServer(Handler(Options{Pools: func() map[string]*upstream.Pool { return pools }, Token: func() string { return "s3cret" }}))
	t.Cleanup(srv.Close)
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	blue, green := up(), up()
	c := &adminapi.Client{BaseURL: srv.URL, Token: "s3cret"}
	if _, err := c.ReplaceTargets(t.Context(), "default", adminapi.ReplaceTargets{Targets: []adminapi.Target{
		{URL: blue, Group: "blue"}, {URL: green, Group: "green"}}}); err != nil {
		t.Fatal(err)
	}
	split := "/admin/pools/default/split"
	shadow := "/admin/pools/default/shadow"
	if code, body := call(http.MethodGet, split, ""); code != 200 || body != "null" {
		t.Fatalf("GET split with none: %d %s", code, body)
	}
	for _, c := range []struct{ body, want string }{
		{`{"percent":{"blue":60,"green":60}}`, "add up to 120"},
		{`{"percent":{"blue":50,"red":50}}`, `group \"red\" has no target`},
		{`{"percent":{"blue":100},"sticky":"cookie"}`, "sticky"},
		{`{"percent":{"blue":100},"fallback":"red"}`, "fallback"},
		{`{"percent":{"blue":100},"extra":1}`, "unknown field"},
		{`{"percent":`, "reading the request body"},
	} {
		code, body := call(http.MethodPut, split, c.body)
		if code != 400 || !strings.Contains(body, c.want) {
			t.Errorf("PUT split %s: %d %s, want 400 with %q", c.body, code, body, c.want)
		}
	}
	code, body := call(http.MethodPut, split, `{"percent":{"blue":90,"green":10},"sticky":"header:X-Session-Id","fallback":"blue"}`)
	var pool adminapi.Pool
	if code != 200 || json.Unmarshal([]byte(body), &pool) != nil || pool.Split == nil || pool.Split.Percent["green"] != 10 {
		t.Fatalf("PUT split: %d %s", code, body)
	}
	groups := map[string]string{}
	for _, tg := range pool.Targets {
		groups[tg.URL] = tg.Group
	}
	if groups[blue] != "blue" || groups[green] != "green" {
		t.Fatalf("pool targets' groups: %v", groups)
	}
	var got adminapi.Split
	if code, body := call(http.MethodGet, split, ""); code != 200 || json.Unmarshal([]byte(body), &got) != nil || got.Sticky != "header:X-Session-Id" || got.Fallback != "blue" {
		t.Fatalf("GET split: %d %s", code, body)
	}
	if code, body := call(http.MethodPut, shadow, `{"group":"blue","percent":10}`); code != 400 || !strings.Contains(body, "serves clients") {
		t.Fatalf("PUT shadow on a serving group: %d %s", code, body)
	}
	if code, body := call(http.MethodPut, split, `{"percent":{"blue":100}}`); code != 200 {
		t.Fatalf("PUT split blue only: %d %s", code, body)
	}
	if code, body := call(http.MethodPut, shadow, `{"group":"green","percent":25}`); code != 200 || !strings.Contains(body, `"shadow":{"group":"green","percent":25}`) {
		t.Fatalf("PUT shadow: %d %s", code, body)
	}
	if code, body := call(http.MethodGet, shadow, ""); code != 200 || body != `{"group":"green","percent":25}` {
		t.Fatalf("GET shadow: %d %s", code, body)
	}
	if code, body := call(http.MethodPut, shadow, `{}`); code != 200 || strings.Contains(body, `"shadow"`) {
		t.Fatalf("PUT shadow {} (remove): %d %s", code, body)
	}
	if st, err := c.Stats(t.Context(), "default", time.Minute); err != nil || st.ByGroup != nil {
		t.Fatalf("stats without traffic: %+v %v", st, err)
	}
}
