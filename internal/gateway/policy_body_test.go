package gateway

import (
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/gateway/limit"
)

// TestAnnouncedBodiesCostNoMemory opens connections that each announce a
// body just under maxBodyBytes and send none of it: the heap must follow
// what arrived, not what was announced.
func TestAnnouncedBodiesCostNoMemory(t *testing.T) {
	_, up := fake(t, nil)
	srv, gw := startGateway(t, testConfig(up), true)
	const conns, announced = 200, 8_000_000
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	for range conns {
		c, err := net.Dial("tcp", strings.TrimPrefix(gw, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if _, err := fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", announced); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every handler reading its body", func() bool { return srv.Gateway().Inflight() == conns }) // every handler is reading its body
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d connections announcing %d bytes each: heap %+d KiB", conns, announced, grown>>10)
	if grown > 16<<20 {
		t.Fatalf("the heap grew by %d MiB for %d announced bodies that never came; want under 16 MiB", grown>>20, conns)
	}
}

// TestIntegrationDuplicateKeysAreRefused sends the body that passed a token
// budget as a 1-token plain request while the model streamed 5000 tokens.
func TestIntegrationDuplicateKeysAreRefused(t *testing.T) {
	t.Parallel()
	fm, up := fake(t, nil)
	cfg := testConfig(up)
	cfg.Limits.Enabled = true
	cfg.Limits.Default = limit.Rule{TokensPerMinute: 1000}
	gw := runGateway(t, cfg, Options{})
	for _, body := range []string{
		`{"model":"fake-model","stream":false,"stream":true,"max_tokens":1,"max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"fake-model","max_tokens":1,"max_tok\u0065ns":5000,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"a","model":"fake-model","temperature":0,"messages":[]}`,
		`{"model":"fake-model","stream":true,"stream_options":{"include_usage":false,"include_usage":true},"messages":[]}`,
	} {
		resp, got := post(t, gw.url+"/v1/chat/completions", body)
		var e struct {
			Error struct{ Code, Type, Message string }
		}
		if resp.StatusCode != 400 || json.Unmarshal([]byte(got), &e) != nil || e.Error.Code != "duplicate_key" || e.Error.Type != "invalid_request_error" {
			t.Errorf("%s: %d %s, want 400 duplicate_key", body, resp.StatusCode, got)
		}
	}
	if n := fm.Stats().Requests; n != 0 {
		t.Fatalf("the model received %d bodies with duplicate keys", n)
	}
}
