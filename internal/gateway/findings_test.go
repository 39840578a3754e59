package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/units"
)

// These tests play the peers of issue 20's findings: an upstream written by
// hand that misbehaves on purpose, or a client that does, against the whole
// gateway (Run) on its default settings.

// rawUpstream answers health checks properly and hands every other request,
// its body read, to misbehave, which writes its answer byte by byte as it
// likes; misbehave returns whether to read another request from the conn.
func rawUpstream(t *testing.T, misbehave func(c net.Conn, br *bufio.Reader, req *http.Request) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if req.URL.Path == "/health" {
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
						continue
					}
					if !misbehave(c, br, req) {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// writeChat writes a whole, correct chat completion whose content is s.
func writeChat(w io.Writer, s string) {
	body := fmt.Sprintf(`{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, s)
	fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// chatAbout is a deterministic (cacheable) chat request about s.
func chatAbout(s string) string {
	return fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":%q}],"temperature":0,"max_tokens":4}`, s)
}

// quietHealth makes health checks rare, so that only the test's requests
// use the upstream's connections.
func quietHealth(cfg Config) Config {
	cfg.Pools[0].HealthCheck.Interval = units.Duration(time.Hour)
	return cfg
}

// An upstream that writes a second answer after a complete one must never
// have it taken for the answer to the next request on the connection (another
// tenant's), nor have it cached.
func TestIntegrationStrayUpstreamBytesNeverAnswerAnotherRequest(t *testing.T) {
	var n atomic.Int64
	strayNow, closed := make(chan struct{}), make(chan struct{})
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) bool {
		i := n.Add(1)
		writeChat(c, fmt.Sprintf("answer-%d", i))
		if i != 1 {
			return true
		}
		<-strayNow // the gateway has the whole first answer: the connection is idle
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n\"EVIL!\"")
		if _, err := br.Peek(1); err != nil {
			close(closed) // the gateway dropped the connection
			return false
		}
		return true
	})
	g := runGateway(t, quietHealth(testConfig(up)), Options{})
	resp, body := post(t, g.url+"/v1/chat/completions", chatAbout("first"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "answer-1") {
		t.Fatalf("first request: %d %s", resp.StatusCode, body)
	}
	close(strayNow)
	// Go's Transport notices bytes on an idle connection and closes it at
	// once. A client that does not keeps the connection, and the victims,
	// sent well within a second (the hand-written client probed connections
	// idle for longer), show it.
	select {
	case <-closed:
	case <-time.After(300 * time.Millisecond):
	}
	for round := range 2 { // misses, then cache hits
		for i := range 3 {
			resp, body := post(t, g.url+"/v1/chat/completions", chatAbout(fmt.Sprintf("victim-%d", i)))
			if resp.StatusCode != http.StatusOK || strings.Contains(body, "EVIL") || !strings.Contains(body, "answer-") {
				t.Errorf("round %d, victim %d got %d %s, want its own answer", round, i, resp.StatusCode, body)
			}
		}
	}
}

// An answer that is not HTTP (garbage, or a bare HTTP/0.9 body) is a model
// server that answered wrongly, not one that could not be reached.
func TestIntegrationUpstreamGarbageIsAnInvalidAnswer(t *testing.T) {
	for name, answer := range map[string]string{
		"garbage":  "\x00\x01\x02 this is not HTTP\r\n\r\n",
		"HTTP/0.9": `{"choices":[{"message":{"content":"hi"}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			up := rawUpstream(t, func(c net.Conn, _ *bufio.Reader, _ *http.Request) bool {
				_, _ = io.WriteString(c, answer)
				return false
			})
			g := runGateway(t, quietHealth(testConfig(up)), Options{})
			resp, body := post(t, g.url+"/v1/chat/completions", chatAbout("x"))
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "invalid answer") || strings.Contains(body, "could not be reached") {
				t.Fatalf("got %d %s, want 502 saying the model server sent an invalid answer", resp.StatusCode, body)
			}
		})
	}
}

// rawRequest sends a request written by hand and reads the answer.
func rawRequest(t *testing.T, gwURL, req string) (net.Conn, *bufio.Reader, *http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(gwURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	return c, br, resp, string(b)
}

func chunked(s string) string { return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(s), s) }

// A client's malformed chunked body is the client's error: 400, not 502,
// whether the gateway reads the body whole (the OpenAI routes) or streams it
// to the target (everything else).
func TestIntegrationBadChunkSizeIs400(t *testing.T) {
	_, up := fake(t, nil)
	g := runGateway(t, testConfig(up), Options{})
	for _, head := range []string{"POST /v1/chat/completions", "GET /v1/models"} {
		_, _, resp, body := rawRequest(t, g.url, head+" HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"+
			"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: got %d %s, want 400", head, resp.StatusCode, body)
		}
	}
}

// A request with both Content-Length and Transfer-Encoding may be a
// smuggling attempt: its connection is closed after the answer (RFC 9112 6.1).
func TestIntegrationContentLengthWithTransferEncodingClosesTheConnection(t *testing.T) {
	_, up := fake(t, nil)
	g := runGateway(t, testConfig(up), Options{})
	c, br, resp, body := rawRequest(t, g.url, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"+
		"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked(chatBody))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d %s, want 200", resp.StatusCode, body)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the answer the connection gave (%q, %v), want it closed (EOF)", n, err)
	}
}

// Every Connection header's tokens name hop-by-hop headers, not only the first's.
func TestIntegrationEveryConnectionHeaderIsHonoured(t *testing.T) {
	seen := make(chan http.Header, 1)
	up := rawUpstream(t, func(c net.Conn, _ *bufio.Reader, req *http.Request) bool {
		seen <- req.Header
		writeChat(c, "ok")
		return true
	})
	g := runGateway(t, quietHealth(testConfig(up)), Options{})
	_, _, resp, body := rawRequest(t, g.url, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"+
		"Connection: X-One\r\nConnection: X-Two, X-Three\r\nX-One: 1\r\nX-Two: 2\r\nX-Three: 3\r\n"+
		fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(chatBody), chatBody))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	h := <-seen
	for _, k := range []string{"X-One", "X-Two", "X-Three", "Connection"} {
		if v := h.Values(k); len(v) > 0 {
			t.Errorf("the upstream got %s: %q, a hop-by-hop header", k, v)
		}
	}
}

// A stream still running when the shutdown timeout ends gets an error event
// before its connection goes, so the client knows the answer is cut.
func TestIntegrationShutdownTimeoutEndsStreamsWithAnErrorEvent(t *testing.T) {
	hold := make(chan struct{})
	up := rawUpstream(t, func(c net.Conn, _ *bufio.Reader, _ *http.Request) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"+
			`data: {"id":"s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok"}}]}`+"\n\n")
		<-hold // a model that generates for longer than the shutdown timeout
		return false
	})
	cfg := quietHealth(testConfig(up))
	cfg.ShutdownTimeout = units.Duration(300 * time.Millisecond)
	g := runGateway(t, cfg, Options{})
	t.Cleanup(func() { close(hold) }) // before the upstream's cleanup, which waits for its handlers
	resp, err := http.Post(g.url+"/v1/chat/completions", "application/json", strings.NewReader(
		`{"model":"m","messages":[{"role":"user","content":"long"}],"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first event: %q %v", line, err)
	}
	g.stop() // what SIGTERM does
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "event: error") {
		t.Fatalf("the stream ended with %q, want an error event", rest)
	}
	if err := <-g.done; err == nil || !strings.Contains(err.Error(), "draining") {
		t.Errorf("Run returned %v, want the draining error", err)
	}
	g.done <- nil // for the cleanup
}
