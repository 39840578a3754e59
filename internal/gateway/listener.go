package gateway

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connLimit bounds the client connections the gateway holds open, so that
// idle keep-alive connections cannot take every file descriptor and starve
// new clients. At the limit it closes the connection idle the longest for a
// new one (a client reconnects as it would after an idle timeout); when no
// connection is idle the new one is closed at once, which a client sees as a
// fast refusal instead of a connect that hangs in the kernel's backlog.
type connLimit struct {
	max  atomic.Int64 // set again on reload
	open atomic.Int64

	mu   sync.Mutex
	idle map[net.Conn]time.Time // by http.Server's ConnState, as it names the conn
}

func newConnLimit(max int) *connLimit {
	l := &connLimit{idle: map[net.Conn]time.Time{}}
	l.max.Store(int64(max))
	return l
}

// connState is http.Server.ConnState: it keeps the set of idle connections.
func (l *connLimit) connState(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == http.StateIdle {
		l.idle[c] = time.Now()
		return
	}
	delete(l.idle, c)
}

// shedIdle closes the connection idle the longest; false if none is idle.
func (l *connLimit) shedIdle() bool {
	l.mu.Lock()
	var oldest net.Conn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	_ = oldest.Close()
	return true
}

// listen wraps ln so that it never hands out more than the limit.
func (l *connLimit) listen(ln net.Listener) net.Listener { return &limitListener{Listener: ln, l: l} }

type limitListener struct {
	net.Listener
	l *connLimit
}

// Accept returns the next connection within the limit, closing idle ones to
// make room and refusing new ones when every connection is busy.
func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l := ln.l
		if l.open.Load() >= l.max.Load() && !l.shedIdle() {
			_ = c.Close()
			continue
		}
		l.open.Add(1)
		return &countedConn{Conn: c, l: l}, nil
	}
}

// countedConn gives its place back once closed, whoever closes it.
type countedConn struct {
	net.Conn
	l    *connLimit
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
