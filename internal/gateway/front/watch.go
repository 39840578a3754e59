package front

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// watchAfter is how long a request runs before a watcher starts reading the
// connection to notice a client that goes away. Shorter requests end before
// a disconnect could save anything, and skip the cost.
const watchAfter = 100 * time.Millisecond

// watcher cancels a running request's context when its client disconnects.
// It reads from the connection only once the request body has been read
// whole, so it never takes body bytes from the handler; bytes it reads (a
// pipelined request) stay in the connection's buffer.
type watcher struct {
	c *conn

	mu       sync.Mutex
	timer    *time.Timer
	pending  bool      // the timer is set
	started  time.Time // when the current request's clock started
	ctx      *reqCtx
	armed    bool
	bodyDone bool
	due      bool // watchAfter has passed for the current request
	running  bool
	aborted  atomic.Bool
	done     chan struct{}
}

// arm starts the clock for a request. The timer is set only when none is
// pending: on a busy keep-alive connection it then fires about once per
// watchAfter, not twice per request (a set and a stop, each of which can wake
// another thread of the scheduler to look at the new timer).
func (w *watcher) arm(ctx *reqCtx, bodyDone bool) {
	now := time.Now()
	w.mu.Lock()
	w.ctx, w.armed, w.bodyDone, w.due, w.started = ctx, true, bodyDone, false, now
	switch {
	case w.timer == nil:
		w.timer = time.AfterFunc(watchAfter, w.fire)
		w.pending = true
	case !w.pending:
		w.timer.Reset(watchAfter)
		w.pending = true
	}
	w.mu.Unlock()
}

// fire starts the watch when the request that is running now has run for
// watchAfter; a timer set for an earlier request is set again for the rest of
// this one's time.
func (w *watcher) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = false
	if !w.armed {
		return
	}
	if left := watchAfter - time.Since(w.started); left > 0 {
		w.timer.Reset(left)
		w.pending = true
		return
	}
	w.due = true
	w.startLocked()
}

// bodyRead is called when the handler has read the body to its end.
func (w *watcher) bodyRead() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed {
		return
	}
	w.bodyDone = true
	w.startLocked()
}

func (w *watcher) startLocked() {
	if !w.due || !w.bodyDone || w.running || w.c.broken.Load() {
		return
	}
	w.running = true
	w.aborted.Store(false)
	w.done = make(chan struct{})
	go w.watch(w.ctx, w.done)
}

func (w *watcher) watch(ctx *reqCtx, done chan struct{}) {
	defer close(done)
	c := w.c
	for {
		_, err := c.br.Peek(1)
		if err == nil || w.aborted.Load() {
			return // a pipelined request, or the handler returned
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The idle deadline passed during a long answer: extend it.
			c.readDeadline = time.Now().Add(c.s.IdleTimeout)
			_ = c.nc.SetReadDeadline(c.readDeadline)
			if w.aborted.Load() {
				return // disarm's past deadline may have been overwritten
			}
			continue
		}
		c.broken.Store(true)
		ctx.cancel()
		return
	}
}

// disarm ends the watch when the handler returns; it waits for a running
// watcher to stop reading.
func (w *watcher) disarm() {
	w.mu.Lock()
	w.armed = false // a pending timer finds the connection idle and stays unset
	running, done := w.running, w.done
	w.running = false
	w.mu.Unlock()
	if !running {
		return
	}
	w.aborted.Store(true)
	_ = w.c.nc.SetReadDeadline(pastDeadline)
	<-done
	w.c.readDeadline = time.Time{} // the next keepReadDeadline sets it again
}

// stop releases the timer when the connection ends.
func (w *watcher) stop() {
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
		w.pending = false
	}
	w.mu.Unlock()
}
