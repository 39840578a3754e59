package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/units"
)

// h1Server counts the connections it accepts and echoes the method and body.
func h1Server(t *testing.T, h http.HandlerFunc, idle time.Duration) (string, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(h)
	s.Config.IdleTimeout = idle
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s.URL, &conns
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id"))
	if r.URL.Query().Get("chunked") != "" {
		w.Write([]byte(r.Method + " "))
		w.(http.Flusher).Flush()
	}
	w.Write([]byte(r.Method + " " + r.URL.RequestURI() + " " + string(b)))
}

func newH1Target(t *testing.T, url string, to Timeouts) *Target {
	t.Helper()
	tg, err := newTarget(TargetConfig{URL: url}, to, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.closeIdle)
	return tg
}

func send(t *testing.T, tg *Target, ctx context.Context, method, path string, body []byte) (string, error) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+tg.Base().Host+path, nil)
	req.Header.Set("X-Request-Id", "r1")
	resp, err := tg.Send(ctx, req, body, time.Now().Add(5*time.Second))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if got := resp.Header.Get("X-Request-Id"); got != "r1" {
		t.Errorf("the upstream saw X-Request-Id %q, want r1", got)
	}
	return string(b), err
}

func TestH1ReusesConnections(t *testing.T) {
	t.Parallel()
	url, conns := h1Server(t, echo, 0)
	tg := newH1Target(t, url, DefaultTimeouts())
	for i, c := range []struct{ method, path, body, want string }{
		{"POST", "/v1/chat/completions", `{"a":1}`, `POST /v1/chat/completions {"a":1}`},
		{"GET", "/v1/models?x=1", "", "GET /v1/models?x=1 "},
		{"POST", "/s?chunked=1", "b", "POST POST /s?chunked=1 b"},
		{"POST", "/empty", "", "POST /empty "},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		got, err := send(t, tg, context.Background(), c.method, c.path, body)
		if err != nil || got != c.want {
			t.Fatalf("request %d: %q, %v; want %q", i, got, err, c.want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 4 sequential requests, want 1", n)
	}
}

func TestH1RecoversFromConnectionsTheUpstreamClosed(t *testing.T) {
	t.Parallel()
	url, conns := h1Server(t, echo, 50*time.Millisecond)
	tg := newH1Target(t, url, DefaultTimeouts())
	for i, method := range []string{"POST", "POST", "GET"} {
		if got, err := send(t, tg, context.Background(), method, "/x", []byte("b")); err != nil || got != method+" /x b" {
			t.Fatalf("request %d: %q, %v", i, got, err)
		}
		time.Sleep(checkIdleAfter + 100*time.Millisecond) // the server closes the idle connection meanwhile
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (each closed by the upstream while idle)", n)
	}
}

func TestH1CancelAndTimeouts(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	url, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Write([]byte("part"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, 0)
	t.Cleanup(func() { close(release) }) // before the server's Close, which waits for the handlers
	to := DefaultTimeouts()
	to.ResponseHeader = units.Duration(100 * time.Millisecond)
	tg := newH1Target(t, url, to)

	start := time.Now()
	_, err := send(t, tg, context.Background(), "POST", "/hang", []byte("x"))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) > 2*time.Second {
		t.Fatalf("a silent upstream gave %v after %s, want a timeout after the response header bound", err, time.Since(start))
	}

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequest("POST", "http://"+tg.Base().Host+"/body", nil)
	resp, err := tg.Send(ctx, req, []byte("x"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "part" {
		t.Fatalf("first part %q, %v", buf, err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	start = time.Now()
	if _, err := io.ReadAll(resp.Body); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("reading after cancel: %v after %s, want an error at once", err, time.Since(start))
	}
}
