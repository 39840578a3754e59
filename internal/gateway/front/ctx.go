package front

import (
	"context"
	"sync"
	"time"
)

// reqCtx is a request's context: context.WithCancel(context.Background()) in
// behaviour, plus one hook slot that the proxy's data path uses to abort its
// upstream exchange when the request ends, without the four allocations of
// context.AfterFunc per request (see Hook).
type reqCtx struct {
	mu    sync.Mutex
	done  chan struct{} // made on first use
	err   error
	hook  func()
	after []*func() // AfterFunc's functions
}

var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *reqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

func (c *reqCtx) Value(any) any { return nil }

func (c *reqCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			return closedDone
		}
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *reqCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *reqCtx) String() string { return "front.requestContext" }

// cancel ends the context and runs the hook, if one is set.
func (c *reqCtx) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	if c.done != nil {
		close(c.done)
	}
	hook, after := c.hook, c.after
	c.hook, c.after = nil, nil
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	for _, f := range after {
		go (*f)()
	}
}

// AfterFunc is context.AfterFunc's contract as a method: f runs in its own
// goroutine once the context ends; stop unregisters it. With it the context
// package links children (WithCancel, WithTimeout) without a goroutine each.
func (c *reqCtx) AfterFunc(f func()) (stop func() bool) {
	e := &f
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	c.after = append(c.after, e)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.after {
			if x == e {
				c.after = append(c.after[:i], c.after[i+1:]...)
				return true
			}
		}
		return false
	}
}

// Hook arranges for f to run once when the context ends, in the goroutine
// that ends it, so f must not block; it runs at once when the context has
// ended already. It reports false when the slot is taken: use
// context.AfterFunc then.
func (c *reqCtx) Hook(f func()) bool {
	c.mu.Lock()
	if c.hook != nil {
		c.mu.Unlock()
		return false
	}
	if c.err != nil {
		c.mu.Unlock()
		f()
		return true
	}
	c.hook = f
	c.mu.Unlock()
	return true
}

// Unhook removes the hook; false means it ran or is running.
func (c *reqCtx) Unhook() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hook == nil {
		return false
	}
	c.hook = nil
	return true
}
