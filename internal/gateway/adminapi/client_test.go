package adminapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// TestClientSplitAndShadow checks the methods, paths and bodies of the split
// and shadow calls against a recording server, and that an empty Split is
// sent as no shares (the gateway's "clear").
func TestClientSplitAndShadow(t *testing.T) {
	t.Parallel()
	type call struct{ Method, Path, Body, Auth string }
	var calls []call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls = append(calls, call{r.Method, r.URL.Path, string(b), r.Header.Get("Authorization")})
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/admin/pools/p 1/split":
			_ = json.NewEncoder(w).Encode(Split{Percent: map[string]int{"blue": 95, "green": 5}, Sticky: "tenant"})
		case r.Method == http.MethodGet:
			_ = json.NewEncoder(w).Encode(Shadow{Group: "green", Percent: 20})
		case r.URL.Path == "/admin/pools/bad/split":
			w.WriteHeader(http.StatusConflict)
			_ = json.NewEncoder(w).Encode(Error{Error: "group green has no target"})
		default:
			_ = json.NewEncoder(w).Encode(Pool{Name: "p 1"})
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL + "/", Token: "tok"}
	ctx := context.Background()
	if _, err := c.SetSplit(ctx, "p 1", Split{Percent: map[string]int{"blue": 95, "green": 5}, Sticky: "header:X-Session-Id", Fallback: "blue"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSplit(ctx, "p 1", Split{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetShadow(ctx, "p 1", Shadow{Group: "green", Percent: 20}); err != nil {
		t.Fatal(err)
	}
	s, err := c.Split(ctx, "p 1")
	if err != nil || s.Percent["green"] != 5 || s.Sticky != "tenant" {
		t.Errorf("Split = %+v, %v", s, err)
	}
	sh, err := c.Shadow(ctx, "p 1")
	if err != nil || sh.Group != "green" || sh.Percent != 20 {
		t.Errorf("Shadow = %+v, %v", sh, err)
	}
	_, err = c.SetSplit(ctx, "bad", Split{Percent: map[string]int{"green": 100}})
	if se, ok := err.(*StatusError); !ok || se.Code != http.StatusConflict || se.Msg != "group green has no target" {
		t.Errorf("refused split error = %v", err)
	}
	want := []call{
		{"PUT", "/admin/pools/p 1/split", `{"percent":{"blue":95,"green":5},"sticky":"header:X-Session-Id","fallback":"blue"}`, "Bearer tok"},
		{"PUT", "/admin/pools/p 1/split", `{"percent":null}`, "Bearer tok"},
		{"PUT", "/admin/pools/p 1/shadow", `{"group":"green","percent":20}`, "Bearer tok"},
		{"GET", "/admin/pools/p 1/split", "", "Bearer tok"},
		{"GET", "/admin/pools/p 1/shadow", "", "Bearer tok"},
		{"PUT", "/admin/pools/bad/split", `{"percent":{"green":100}}`, "Bearer tok"},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls %+v", calls)
	}
	for i := range want {
		got := calls[i]
		if got.Method != want[i].Method || got.Path != want[i].Path || got.Auth != want[i].Auth || !sameJSON(got.Body, want[i].Body) {
			t.Errorf("call %d = %+v, want %+v", i, got, want[i])
		}
	}
}

func sameJSON(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}
