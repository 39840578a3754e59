package front

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func serve(t *testing.T, h http.Handler) (*Server, string) {
	t.Helper()
	s := &Server{Handler: h}
	return s, serveServer(t, s)
}

// serveServer runs s on a loopback port until the test ends and returns its address.
func serveServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; err != http.ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// raw sends the bytes as they are and returns the connection and a reader of its answers.
func raw(t *testing.T, addr, req string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// echo answers with what it saw of the request, and which server it ran on.
func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	_, fast := w.(*response)
	w.Header().Set("X-Fast", fmt.Sprint(fast))
	fmt.Fprintf(w, "%s %s host=%s len=%d body=%s", r.Method, r.URL.RequestURI(), r.Host, r.ContentLength, b)
}

func TestKeepAliveAndPipelining(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(echo))
	// Three requests in one write: answered in order on one connection, the
	// second one's body left unread by nobody.
	_, br := raw(t, addr, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"+
		"GET /b?q=1 HTTP/1.1\r\nHost: h\r\n\r\n"+
		"POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	for _, want := range []string{"POST /a host=h len=3 body=abc", "GET /b?q=1 host=h len=0 body=", "POST /c host=h len=0 body="} {
		resp, body := readResp(t, br, "GET")
		if body != want || resp.Header.Get("X-Fast") != "true" {
			t.Errorf("answer %q (fast %s), want %q on the fast path", body, resp.Header.Get("X-Fast"), want)
		}
		if resp.ContentLength != int64(len(want)) || resp.Header.Get("Date") == "" || resp.Header.Get("Content-Type") == "" {
			t.Errorf("small answer framed as %d bytes, header %v", resp.ContentLength, resp.Header)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close the server kept the connection (%v)", err)
	}
}

// The header map of one answer is reused, emptied, for the next answer on
// the connection: nothing of the first may reach the second.
func TestKeepAliveAnswerHeadersDoNotCarryOver(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			w.Header().Set("X-First", "1")
			w.Header().Set("Content-Type", "text/x-first")
		}
		w.Header().Add("X-Path", r.URL.Path)
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	_, br := raw(t, addr, "GET /first HTTP/1.1\r\nHost: h\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\nGET /third HTTP/1.1\r\nHost: h\r\n\r\n")
	for _, path := range []string{"/first", "/second", "/third"} {
		resp, body := readResp(t, br, "GET")
		if body != path || resp.Header.Values("X-Path")[0] != path || len(resp.Header.Values("X-Path")) != 1 {
			t.Errorf("%s: body %q, X-Path %q", path, body, resp.Header.Values("X-Path"))
		}
		if path != "/first" && (resp.Header.Get("X-First") != "" || resp.Header.Get("Content-Type") == "text/x-first") {
			t.Errorf("%s carries the first answer's header: %v", path, resp.Header)
		}
	}
}

// A request for the target of the one before it on the connection gets the
// same, already parsed URL; any other target gets its own.
func TestKeepAliveReusesTheURLOfTheSameTarget(t *testing.T) {
	var urls []*url.URL
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		urls = append(urls, r.URL)
		_, _ = io.WriteString(w, r.URL.String())
	}))
	targets := []string{"/a", "/a", "/b?x=1", "/b?x=2", "/a"}
	var req strings.Builder
	for _, tg := range targets {
		req.WriteString("GET " + tg + " HTTP/1.1\r\nHost: h\r\n\r\n")
	}
	_, br := raw(t, addr, req.String())
	for _, tg := range targets {
		if _, body := readResp(t, br, "GET"); body != tg {
			t.Errorf("body %q, want %q", body, tg)
		}
	}
	for i, same := range []bool{false, true, false, false, false} {
		if i > 0 && (urls[i] == urls[i-1]) != same {
			t.Errorf("request %d (%s): same URL as the one before: %v, want %v", i, targets[i], urls[i] == urls[i-1], same)
		}
	}
}

// The corners of HTTP/1.1 go to net/http on the same connection and keep working.
func TestHandsOffToNetHTTP(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(echo))
	for name, tc := range map[string]struct{ req, method, want string }{
		"chunked body": {"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST", "POST /up host=h len=-1 body=abc"},
		"HTTP/1.0":     {"GET /old HTTP/1.0\r\n\r\n", "GET", "GET /old host= len=0 body="},
		"HEAD":         {"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n", "HEAD", ""},
		"big head":     {"GET /big HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("x", 6000) + "\r\n\r\n", "GET", "GET /big host=h len=0 body="},
	} {
		t.Run(name, func(t *testing.T) {
			_, br := raw(t, addr, tc.req)
			resp, body := readResp(t, br, tc.method)
			if resp.StatusCode != 200 || body != tc.want || resp.Header.Get("X-Fast") != "false" {
				t.Errorf("status %d body %q fast %q; want 200 %q from net/http", resp.StatusCode, body, resp.Header.Get("X-Fast"), tc.want)
			}
		})
	}
	t.Run("expect continue", func(t *testing.T) {
		c, br := raw(t, addr, "POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
		line, _ := br.ReadString('\n')
		if !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("first line %q, want 100 Continue", line)
		}
		_, _ = br.ReadString('\n')
		_, _ = io.WriteString(c, "hi")
		if _, body := readResp(t, br, "POST"); body != "POST /e host=h len=2 body=hi" {
			t.Errorf("body %q", body)
		}
	})
	t.Run("smuggling attempt", func(t *testing.T) {
		_, br := raw(t, addr, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde")
		if resp, _ := readResp(t, br, "POST"); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("two Content-Lengths: status %d, want net/http's 400", resp.StatusCode)
		}
	})
}

func TestStreamingAndFraming(t *testing.T) {
	release := make(chan struct{})
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: 1\n\n")
			w.(http.Flusher).Flush()
			<-release
			fmt.Fprint(w, "data: 2\n\n")
		case "/large":
			_, _ = w.Write([]byte(strings.Repeat("z", 10000)))
		case "/declared":
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(201)
			_, _ = io.WriteString(w, "hello")
		case "/short":
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "cut")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			if _, err := io.WriteString(w, "x"); err != http.ErrBodyNotAllowed {
				t.Errorf("a body on 204: %v", err)
			}
		case "/abort":
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	}))
	_, br := raw(t, addr, "GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 9)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: 1\n\n" {
		t.Fatalf("the first event did not arrive before the handler finished: %q %v", first, err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "data: 2\n\n" || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("rest %q, framing %v", rest, resp.TransferEncoding)
	}

	_, br = raw(t, addr, "GET /large HTTP/1.1\r\nHost: h\r\n\r\nGET /declared HTTP/1.1\r\nHost: h\r\n\r\nGET /nocontent HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, body := readResp(t, br, "GET"); len(body) != 10000 || resp.ContentLength != -1 {
		t.Errorf("large: %d bytes, length %d; want 10000 chunked", len(body), resp.ContentLength)
	}
	if resp, body := readResp(t, br, "GET"); resp.StatusCode != 201 || body != "hello" || resp.ContentLength != 5 {
		t.Errorf("declared: %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	if resp, body := readResp(t, br, "GET"); resp.StatusCode != 204 || body != "" {
		t.Errorf("no content: %d %q", resp.StatusCode, body)
	}

	for _, path := range []string{"/short", "/abort"} {
		_, br = raw(t, addr, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			continue // cut before the head: also a visible failure
		}
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Errorf("%s: the client saw a clean end of an incomplete answer", path)
		}
	}
}

// untilCanceled reads the body, then waits for the request's context to end
// and sends how long after the start it did (-1: not within 5 s).
func untilCanceled(canceled chan<- time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, _ = io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
			canceled <- time.Since(start)
		case <-time.After(5 * time.Second):
			canceled <- -1
		}
	}
}

func TestDisconnectCancelsContext(t *testing.T) {
	canceled := make(chan time.Duration, 1)
	_, addr := serve(t, untilCanceled(canceled))
	c, _ := raw(t, addr, "POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
	time.Sleep(20 * time.Millisecond)
	c.Close()
	d := <-canceled
	if d < 0 {
		t.Fatal("the handler's context was not canceled when the client went away")
	}
	t.Logf("canceled %v after the request started", d)
}

// A slow request that follows quick ones on a keep-alive connection finds the
// watch timer already set by an earlier request; the watch must still start
// once the slow request itself has run for watchAfter, and not before.
func TestDisconnectCancelsContextAfterQuickRequests(t *testing.T) {
	canceled := make(chan time.Duration, 1)
	slow := untilCanceled(canceled)
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			_, _ = io.WriteString(w, "quick")
			return
		}
		slow(w, r)
	}))
	c, br := raw(t, addr, "")
	// Quick requests for more than a watch period: the timer set by the first
	// fires while later ones run and is set again for theirs.
	for end := time.Now().Add(watchAfter * 3 / 2); time.Now().Before(end); {
		if _, err := io.WriteString(c, "GET /quick HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if _, body := readResp(t, br, "GET"); body != "quick" {
			t.Fatalf("body %q", body)
		}
		time.Sleep(watchAfter / 8)
	}
	if _, err := io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	c.Close()
	d := <-canceled
	if d < 0 {
		t.Fatal("the handler's context was not canceled when the client went away")
	}
	if d < watchAfter {
		t.Errorf("canceled %v after the slow request started, before its own watchAfter (%v)", d, watchAfter)
	}
	t.Logf("canceled %v after the slow request started", d)
}

func TestContextEndsWithHandlerAndWatcherKeepsPipelinedBytes(t *testing.T) {
	var ctxs []context.Context
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctxs = append(ctxs, r.Context())
		if r.URL.Path == "/slow" {
			time.Sleep(2 * watchAfter) // the watcher reads the pipelined request meanwhile
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	_, br := raw(t, addr, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
	for _, want := range []string{"/slow", "/next"} {
		if _, body := readResp(t, br, "GET"); body != want {
			t.Errorf("body %q, want %q", body, want)
		}
	}
	for i, ctx := range ctxs {
		select { // canceled just after the answer is flushed, as net/http does
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		if ctx.Err() == nil {
			t.Errorf("request %d: context still live after the handler returned", i)
		}
	}
}

func TestShutdownWaitsForInFlightAndClosesIdle(t *testing.T) {
	var started atomic.Bool
	release := make(chan struct{})
	s, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started.Store(true)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}))
	_, idle := raw(t, addr, "GET /quick HTTP/1.1\r\nHost: h\r\n\r\n")
	readResp(t, idle, "GET")
	_, busy := raw(t, addr, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	for !started.Load() {
		time.Sleep(time.Millisecond)
	}
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if _, err := idle.ReadByte(); err != io.EOF {
		t.Errorf("the idle connection was not closed by Shutdown: %v", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	resp, body := readResp(t, busy, "GET")
	if body != "done" || !resp.Close {
		t.Errorf("in-flight answer %q close=%v; want it whole, with Connection: close", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the listener still accepts after Shutdown")
	}
}

func TestIdleTimeoutClosesConnection(t *testing.T) {
	addr := serveServer(t, &Server{Handler: http.HandlerFunc(echo), IdleTimeout: 100 * time.Millisecond})
	_, br := raw(t, addr, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	readResp(t, br, "GET")
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("closed after %v, want about the idle timeout", d)
	}
}

func TestLargeBodyAndUnreadBody(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ignore" {
			_, _ = io.WriteString(w, "ignored")
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	}))
	big := strings.Repeat("p", 1<<20)
	_, br := raw(t, addr, "POST /count HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n"+big+
		"POST /ignore HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789"+
		"GET /count HTTP/1.1\r\nHost: h\r\n\r\n")
	for _, want := range []string{"1048576", "ignored", "0"} {
		if _, body := readResp(t, br, "GET"); body != want {
			t.Errorf("body %q, want %q", body, want)
		}
	}
	// A large body the handler never reads is not skipped: the connection closes after the answer.
	_, br = raw(t, addr, "POST /ignore HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n"+big)
	readResp(t, br, "POST")
	if _, err := br.ReadByte(); err == nil {
		t.Error("the connection stayed open after an unread 1 MiB body")
	}
}

func TestNewConnectionWithoutRequestCloses(t *testing.T) {
	addr := serveServer(t, &Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent connection: %v, want EOF", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a connection that sent nothing stayed %v", d)
	}
}

// Many clients, keep-alive and pipelined requests, bodies of every size and
// handlers slow enough for the disconnect watcher to start: every answer
// reaches the request it belongs to.
func TestSoakAnswersMatchRequests(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading body: %v", err)
		}
		if d := r.URL.Query().Get("sleep"); d != "" {
			ms, _ := time.ParseDuration(d)
			time.Sleep(ms)
		}
		if r.URL.Query().Get("flush") != "" {
			w.(http.Flusher).Flush()
		}
		fmt.Fprintf(w, "%s:%d", r.URL.Query().Get("id"), len(b))
	}))
	const clients, perClient = 16, 40
	errs := make(chan error, clients)
	for c := range clients {
		go func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			var want []string
			var out strings.Builder
			for i := range perClient {
				id := fmt.Sprintf("%d-%d", c, i)
				size := (i * 997 * (c + 1)) % 9000
				q := "id=" + id
				if i%7 == 0 {
					q += "&sleep=" + (2 * watchAfter).String()
				}
				if i%3 == 0 {
					q += "&flush=1"
				}
				fmt.Fprintf(&out, "POST /?%s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", q, size, strings.Repeat("b", size))
				want = append(want, fmt.Sprintf("%s:%d", id, size))
				// Send in batches of five: pipelined within a batch, keep-alive between.
				if i%5 != 4 {
					continue
				}
				if _, err := io.WriteString(conn, out.String()); err != nil {
					errs <- err
					return
				}
				out.Reset()
				for _, w := range want {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						errs <- fmt.Errorf("client %d waiting for %s: %w", c, w, err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					if string(b) != w {
						errs <- fmt.Errorf("client %d: answer %q, want %q", c, b, w)
						return
					}
				}
				want = want[:0]
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
