package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/aideploy/aideploy/internal/gateway/cache"
	"github.com/aideploy/aideploy/internal/gateway/openai"
	"github.com/aideploy/aideploy/internal/gateway/sse"
)

// share is a stream in progress that identical stream requests arriving
// meanwhile follow live, from its first byte, instead of waiting for its end:
// single-flight must not turn a follower's time to first token into the
// whole generation. The bytes are the upstream's, usage chunk included.
type share struct {
	mu     sync.Mutex
	wake   chan struct{} // closed on the next change; made by a waiting follower
	head   bool          // status and header are known
	status int
	header http.Header
	sse    bool
	buf    []byte // append-only: a follower may hold a slice of it unlocked
	over   bool   // the answer outgrew maxCapture: buf is not all of it
	done   bool
	whole  bool // ended with the complete answer

	// The shared upstream call outlives the leader's client while followers
	// read it, and stops when the last reader is gone.
	followers  int
	leaderGone bool
	stop       func()
}

// setStop gives the share the cancel of the shared upstream call.
func (s *share) setStop(stop func()) {
	s.mu.Lock()
	s.stop = stop
	s.mu.Unlock()
}

func (s *share) join() {
	s.mu.Lock()
	s.followers++
	s.mu.Unlock()
}

func (s *share) leave() {
	s.mu.Lock()
	s.followers--
	s.stopIfUnreadLocked()
	s.mu.Unlock()
}

// leaderLeft records that the leader's client went away and reports whether
// followers still read the stream; if none do, the upstream call stops.
func (s *share) leaderLeft() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaderGone = true
	s.stopIfUnreadLocked()
	return s.followers > 0
}

func (s *share) stopIfUnreadLocked() {
	if s.leaderGone && s.followers == 0 && s.stop != nil {
		s.stop()
	}
}

// recorded returns the bytes so far, for the cache, and whether some are missing.
func (s *share) recorded() ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf, s.over
}

func (s *share) changed() {
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}

// setHead records the upstream's status and the headers a follower needs.
func (s *share) setHead(status int, h http.Header, isSSE bool) {
	s.mu.Lock()
	s.head, s.status, s.header, s.sse = true, status, cache.KeepHeaders(h), isSSE
	s.changed()
	s.mu.Unlock()
}

// add appends upstream bytes; past maxCapture the share ends unwhole.
func (s *share) add(b []byte) {
	s.mu.Lock()
	if !s.done {
		if len(s.buf)+len(b) > maxCapture {
			s.done, s.over = true, true
		} else {
			s.buf = append(s.buf, b...)
		}
		s.changed()
	}
	s.mu.Unlock()
}

func (s *share) finish(whole bool) {
	s.mu.Lock()
	if !s.done {
		s.done, s.whole = true, whole
	}
	s.changed()
	s.mu.Unlock()
}

// next returns the bytes after off and whether the stream has ended (whole or
// not), or, when there is nothing new, a channel closed at the next change.
func (s *share) next(off int) (b []byte, done, whole bool, wait <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off < len(s.buf) || s.done {
		return s.buf[off:], s.done, s.whole, nil
	}
	return nil, false, false, s.waitLocked()
}

func (s *share) waitLocked() <-chan struct{} {
	if s.wake == nil {
		s.wake = make(chan struct{})
	}
	return s.wake
}

// answer waits for the shared call's status and header. ok is false when
// there is nothing a follower can take: no answer, not a successful stream,
// or a stream cut before its first byte. gone means ctx ended first.
func (s *share) answer(ctx context.Context) (status int, header http.Header, ok, gone bool) {
	for {
		s.mu.Lock()
		if s.head || s.done {
			ok = s.head && s.status/100 == 2 && s.sse && !(s.done && !s.whole && len(s.buf) == 0)
			status, header = s.status, s.header
			s.mu.Unlock()
			return status, header, ok, false
		}
		wait := s.waitLocked()
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, nil, false, true
		}
	}
}

// follow serves x from a live share. false means nothing was written and x
// must be served another way: the shared call failed before it answered,
// or its answer is not a successful stream.
func (g *Gateway) follow(x *exchange, s *share) bool {
	s.join()
	defer s.leave()
	ctx := x.r.Context()
	status, header, ok, gone := s.answer(ctx)
	if gone {
		return true // the client went away; nothing to answer
	}
	if !ok {
		return false
	}
	g.m.CacheResult("HIT", "flight")
	setCacheHeaders(x, header, "HIT", "flight")
	x.w.WriteHeader(status)
	x.w.Flush()
	var out io.Writer = &x.w
	if !x.oa.IncludeUsage {
		// The share may hold the usage chunk the gateway asked for.
		out = &openai.StreamWriter{W: &x.w, DropUsage: true}
	}
	for off := 0; ; {
		b, done, whole, wait := s.next(off)
		if len(b) > 0 {
			off += len(b)
			if _, err := out.Write(b); err != nil {
				return true
			}
			x.w.Flush()
			continue
		}
		if whole {
			x.complete = true
			return true
		}
		if done {
			_ = sse.WriteError(&x.w, "upstream_error", "the model server ended the stream early")
			x.w.Flush()
			return true
		}
		select {
		case <-wait:
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errShuttingDown) {
				shutdownEvent(&x.w)
			}
			return true
		}
	}
}
