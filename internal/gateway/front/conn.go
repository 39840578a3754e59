package front

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/httpwire"
)

const (
	readBufSize  = 4 << 10 // also the largest head the fast path takes
	writeBufSize = 4 << 10
	// maxDiscard is how much of a body the handler left unread is skipped to
	// keep the connection; more closes it, as net/http does.
	maxDiscard = 256 << 10
)

var errTooManyFiles = syscall.EMFILE

// pastDeadline makes pending and later reads fail at once.
var pastDeadline = time.Unix(1, 0)

const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

type conn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string
	state  atomic.Int32
	// readDeadline is the read deadline set on nc; it is moved only when it
	// comes closer than half the idle timeout, not for every request.
	readDeadline time.Time
	broken       atomic.Bool // a read or write failed: no further request
	linger       bool        // the last answer is whole: close gently
	w            watcher
	date         dateCache
	// header is the last answer's header map, emptied, for the next answer:
	// a handler must not use its ResponseWriter's header after it returns.
	header http.Header
	last   head // the last request's target and URL, for parseHead
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String()}
	c.w.c = c
	return c
}

// serve reads and answers requests until the connection ends or goes to net/http.
func (c *conn) serve() {
	c.br = bufio.NewReaderSize(c.nc, readBufSize)
	c.bw = bufio.NewWriterSize(c.nc, writeBufSize)
	handedOff := false
	defer func() {
		c.w.stop()
		if !handedOff {
			c.state.Store(stateClosed)
			c.close()
		}
		c.s.forget(c)
	}()
	wait := c.s.ReadHeaderTimeout // a new connection gets no idle grace, as with net/http
	for {
		if c.s.shutting.Load() {
			return
		}
		c.keepReadDeadline(time.Now(), wait)
		wait = c.s.IdleTimeout
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // Shutdown closed it while idle
		}
		n, fast, err := c.readHead()
		if err != nil {
			return
		}
		if !fast {
			handedOff = true
			c.handOff()
			return
		}
		h, ok := parseHead(peekN(c.br, n), &c.last)
		if !ok {
			handedOff = true
			c.handOff()
			return
		}
		_, _ = c.br.Discard(n)
		c.last = head{target: h.target, url: h.url}
		if !c.serveRequest(h) {
			return
		}
		c.state.Store(stateIdle)
	}
}

// readHead waits for a whole head in the read buffer and returns its length;
// fast is false when the head is not one the fast path takes.
func (c *conn) readHead() (n int, fast bool, err error) {
	timed := false
	for {
		buf := peekN(c.br, c.br.Buffered())
		n, bare := httpwire.HeadEnd(buf)
		if bare {
			return 0, false, nil
		}
		if n > 0 {
			return n, true, nil
		}
		if len(buf) == c.br.Size() {
			return 0, false, nil // a head this large is net/http's
		}
		if !timed {
			// The head came in more than one read: bound the wait for the rest.
			timed = true
			c.readDeadline = time.Now().Add(c.s.ReadHeaderTimeout)
			_ = c.nc.SetReadDeadline(c.readDeadline)
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			return 0, false, err
		}
	}
}

func peekN(br *bufio.Reader, n int) []byte {
	b, _ := br.Peek(n)
	return b
}

// keepReadDeadline makes sure the read deadline lies between d/2 and d from now.
func (c *conn) keepReadDeadline(now time.Time, d time.Duration) {
	if left := c.readDeadline.Sub(now); left >= d/2 && left <= d {
		return
	}
	c.readDeadline = now.Add(d)
	_ = c.nc.SetReadDeadline(c.readDeadline)
}

// handOff gives the connection, and the bytes already read from it, to net/http.
func (c *conn) handOff() {
	c.state.Store(stateClosed)
	c.s.handoff.give(&prefixConn{Conn: c.nc, r: c.br})
}

// serveRequest runs the handler for one request and reports whether the
// connection can take another.
func (c *conn) serveRequest(h head) (keep bool) {
	ctx := &reqCtx{}
	var zero http.Request
	req := zero.WithContext(ctx)
	req.Method = h.method
	req.RequestURI = h.target
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, 1
	req.Header = h.header
	req.Host = h.host
	req.RemoteAddr = c.remote
	req.ContentLength = h.contentLength
	req.Close = h.close
	req.URL = h.url
	var rb *body
	if h.contentLength > 0 {
		rb = &body{c: c, remaining: h.contentLength}
		req.Body = rb
	} else {
		req.Body = http.NoBody
	}
	w := &response{c: c, cl: -1, closeAfter: h.close || c.s.shutting.Load(), header: c.header}
	c.header = nil
	c.w.arm(ctx, rb == nil)
	ok := c.runHandler(w, req)
	c.w.disarm()
	if rb != nil {
		rb.c = nil // the handler's reads after return fail
	}
	if !ok {
		ctx.cancel()
		return false
	}
	w.finish()
	ctx.cancel()
	if w.header != nil {
		clear(w.header) // keeps the map's room: the next answer sets the same fields
		c.header = w.header
	}
	c.linger = true // from here on a close follows a whole answer
	if rb != nil && rb.remaining > 0 {
		if rb.remaining > maxDiscard || c.broken.Load() {
			return false
		}
		c.keepReadDeadline(time.Now(), c.s.IdleTimeout)
		if _, err := c.br.Discard(int(rb.remaining)); err != nil {
			return false
		}
	}
	if !w.closeAfter && !c.broken.Load() && !c.s.shutting.Load() {
		c.linger = false
		return true
	}
	return false
}

// lingerTime is how long a connection closed after a whole answer keeps
// reading what the client still sends, so that the kernel does not answer
// unread bytes with a reset that could destroy the answer in flight (net/http
// waits likewise).
const lingerTime = 500 * time.Millisecond

// close closes the connection; after a whole answer it first half-closes and
// drains for up to lingerTime.
func (c *conn) close() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && c.linger && !c.broken.Load() {
		if cw.CloseWrite() == nil {
			_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
			_, _ = io.CopyN(io.Discard, c.nc, 4*maxDiscard)
		}
	}
	c.nc.Close()
}

// runHandler calls the handler; false means it panicked and the connection
// must be cut, leaving the client a visibly incomplete answer.
func (c *conn) runHandler(w *response, req *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			if p != http.ErrAbortHandler {
				buf := make([]byte, 16<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.Logger.Error("handler panicked", "remote", c.remote, "panic", p, "stack", string(buf))
			}
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	return true
}

// body is a request body of known length, read from the connection's buffer.
type body struct {
	c         *conn
	remaining int64
}

var errBodyAfterReturn = errors.New("front: request body read after the handler returned")

func (b *body) Read(p []byte) (int, error) {
	if b.remaining == 0 {
		return 0, io.EOF
	}
	c := b.c
	if c == nil {
		return 0, errBodyAfterReturn
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	if c.br.Buffered() == 0 {
		c.keepReadDeadline(time.Now(), c.s.IdleTimeout)
	}
	n, err := c.br.Read(p)
	b.remaining -= int64(n)
	if b.remaining == 0 {
		c.w.bodyRead()
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.broken.Store(true)
	}
	return n, err
}

func (b *body) Close() error { return nil }

// prefixConn is a handed-off connection whose first bytes are still in the
// fast path's read buffer.
type prefixConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if p.r != nil {
		if p.r.Buffered() > 0 {
			return p.r.Read(b)
		}
		p.r = nil
	}
	return p.Conn.Read(b)
}
