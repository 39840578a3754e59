package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// h1Client sends requests whose body is already in memory over a pool of
// keep-alive HTTP/1.1 connections, on the caller's goroutine. http.Transport
// hands every request to two goroutines of its connection and back through
// channels and a context per request; for the small bodies of model calls
// that costs as much CPU as the proxying itself. Requests that stream their
// body still go through http.Transport.
type h1Client struct {
	dial        func(ctx context.Context) (net.Conn, error)
	respHeader  time.Duration // bound on the wait for the status line; 0: none
	idleTimeout time.Duration

	mu   sync.Mutex
	idle []*h1Conn // most recently used last
}

// maxIdleConns bounds the idle connections kept per target.
const maxIdleConns = 4096

// checkIdleAfter is how long a connection may sit idle before it is probed for
// a close by the upstream before reuse; busier connections skip the probe.
const checkIdleAfter = time.Second

type h1Conn struct {
	c         net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	reused    bool
	canceled  atomic.Bool // the caller's context ended: the deadline was moved to the past
	abort     func()      // sets canceled and the past deadline; made once per connection
}

func newH1Conn(c net.Conn) *h1Conn {
	pc := &h1Conn{c: c, br: bufio.NewReaderSize(c, 8<<10), bw: bufio.NewWriterSize(c, 8<<10)}
	pc.abort = func() {
		pc.canceled.Store(true)
		_ = pc.c.SetDeadline(pastDeadline)
	}
	return pc
}

// hooker is a context with one slot for a function to run when it ends,
// free of context.AfterFunc's allocations: the front server's request
// contexts are.
type hooker interface {
	Hook(f func()) bool
	Unhook() bool
}

// stopper unregisters what onDone registered; stop reports false when the
// function ran or is running.
type stopper struct {
	h  hooker
	fn func() bool
}

func (s stopper) stop() bool {
	if s.h != nil {
		return s.h.Unhook()
	}
	return s.fn()
}

// onDone runs f when ctx ends, through the context's hook slot when it has one.
func onDone(ctx context.Context, f func()) stopper {
	if h, ok := ctx.(hooker); ok && h.Hook(f) {
		return stopper{h: h}
	}
	return stopper{fn: context.AfterFunc(ctx, f)}
}

// pastDeadline makes every pending and later read or write on a conn fail at once.
var pastDeadline = time.Unix(1, 0)

// ConnectError is a target that could not be connected to: the request was
// not sent, so another target may take it, whatever its method.
type ConnectError struct{ Err error }

func (e *ConnectError) Error() string { return "connecting to the target: " + e.Err.Error() }

func (e *ConnectError) Unwrap() error { return e.Err }

// errReusedConnClosed marks a reused connection that the upstream had closed
// before it read the request; the request is sent again on a fresh connection.
var errReusedConnClosed = errors.New("upstream closed an idle connection")

// roundTrip sends req with body (nil: none) and returns the response with the
// status line and headers read; the body streams from the connection. ctx
// ending, or deadline passing (zero: none), aborts the exchange.
func (cl *h1Client) roundTrip(ctx context.Context, req *http.Request, body []byte, deadline time.Time) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		pc, err := cl.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := cl.exchange(ctx, pc, req, body, deadline)
		if errors.Is(err, errReusedConnClosed) && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return resp, err
	}
}

func (cl *h1Client) exchange(ctx context.Context, pc *h1Conn, req *http.Request, body []byte, deadline time.Time) (*http.Response, error) {
	hdrDeadline := deadline
	if cl.respHeader > 0 {
		if d := time.Now().Add(cl.respHeader); deadline.IsZero() || d.Before(deadline) {
			hdrDeadline = d
		}
	}
	_ = pc.c.SetWriteDeadline(deadline)
	_ = pc.c.SetReadDeadline(hdrDeadline)
	// Registered after the deadlines are set, so that its past deadline wins.
	stop := onDone(ctx, pc.abort)
	fail := func(err error) (*http.Response, error) {
		stop.stop()
		_ = pc.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := writeRequest(pc.bw, req, body); err != nil {
		if pc.reused {
			err = errors.Join(errReusedConnClosed, err)
		}
		return fail(err)
	}
	var resp *http.Response
	for {
		var err error
		resp, err = readResponse(pc.br, req)
		if err != nil {
			if pc.reused && pc.br.Buffered() == 0 && isClosedConn(err) && replayable(req) {
				err = errors.Join(errReusedConnClosed, err)
			}
			return fail(err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		resp.Body.Close() // 1xx: interim, read the next
	}
	_ = pc.c.SetReadDeadline(deadline)
	if pc.canceled.Load() {
		_ = pc.c.SetDeadline(pastDeadline)
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		cl.release(pc, stop, keep)
		return resp, nil
	}
	resp.Body = &h1Body{rc: resp.Body, pc: pc, cl: cl, stop: stop, keep: keep}
	return resp, nil
}

// replayable says whether a request may be sent twice: it changes nothing.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func isClosedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "connection reset")
}

// writeRequest writes the request line, headers and body in one flush. The
// headers come from a parsed client request or from the gateway itself.
func writeRequest(bw *bufio.Writer, req *http.Request, body []byte) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vs := range req.Header {
		if k == "Host" || k == "Content-Length" {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		bw.WriteString("User-Agent: Go-http-client/1.1\r\n")
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	if body != nil || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		bw.WriteString("Content-Length: ")
		var n [20]byte
		bw.Write(strconv.AppendInt(n[:0], int64(len(body)), 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	bw.Write(body)
	return bw.Flush()
}

// get returns an idle connection or dials a new one.
func (cl *h1Client) get(ctx context.Context) (*h1Conn, error) {
	for {
		cl.mu.Lock()
		n := len(cl.idle)
		if n == 0 {
			cl.mu.Unlock()
			break
		}
		pc := cl.idle[n-1]
		cl.idle[n-1] = nil
		cl.idle = cl.idle[:n-1]
		cl.mu.Unlock()
		if time.Since(pc.idleSince) > checkIdleAfter && !alive(pc.c) {
			_ = pc.c.Close()
			continue
		}
		pc.reused = true
		return pc, nil
	}
	c, err := cl.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err // the caller gave up, not the target
		}
		return nil, &ConnectError{Err: err}
	}
	return newH1Conn(c), nil
}

// release ends an exchange: the connection goes back to the pool when its
// answer was read whole and nothing asked to close it.
func (cl *h1Client) release(pc *h1Conn, stop stopper, keep bool) {
	if !stop.stop() || !keep || pc.canceled.Load() || pc.br.Buffered() != 0 {
		_ = pc.c.Close()
		return
	}
	_ = pc.c.SetDeadline(time.Time{})
	now := time.Now()
	pc.idleSince = now
	var expired *h1Conn
	cl.mu.Lock()
	if len(cl.idle) >= maxIdleConns {
		cl.mu.Unlock()
		_ = pc.c.Close()
		return
	}
	if len(cl.idle) > 0 && cl.idleTimeout > 0 && now.Sub(cl.idle[0].idleSince) > cl.idleTimeout {
		expired = cl.idle[0]
		cl.idle = append(cl.idle[:0], cl.idle[1:]...)
	}
	cl.idle = append(cl.idle, pc)
	cl.mu.Unlock()
	if expired != nil {
		_ = expired.c.Close()
	}
}

// closeIdle closes every idle connection.
func (cl *h1Client) closeIdle() {
	cl.mu.Lock()
	idle := cl.idle
	cl.idle = nil
	cl.mu.Unlock()
	for _, pc := range idle {
		_ = pc.c.Close()
	}
}

// h1Body is a response body that hands its connection back once read whole.
type h1Body struct {
	rc   io.ReadCloser
	pc   *h1Conn
	cl   *h1Client
	stop stopper
	keep bool
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.done = true
		b.cl.release(b.pc, b.stop, b.keep)
	} else if err != nil {
		b.done = true
		b.stop.stop()
		_ = b.pc.c.Close()
	}
	return n, err
}

// Close drops the connection unless the body was read to its end.
func (b *h1Body) Close() error {
	if !b.done {
		b.done = true
		b.stop.stop()
		_ = b.pc.c.Close()
	}
	return nil
}
