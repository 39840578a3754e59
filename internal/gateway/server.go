package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune Run beyond the configuration.
type Options struct {
	// Reload loads the configuration again on SIGHUP; nil ignores SIGHUP.
	Reload func() (Config, error)
	// Started is called once both listeners accept connections, with their addresses.
	Started func(addr, adminAddr string)
}

// errShuttingDown is the cause of a request's context when the shutdown
// timeout ends it: a stream then tells its client why it ends.
var errShuttingDown = errors.New("the gateway is shutting down")

// Server swaps whole gateways atomically: a reload builds a new one and the
// old one finishes its requests and streams.
type Server struct {
	cur  atomic.Pointer[Gateway]
	deps Deps
	log  *slog.Logger
	// build makes the dependencies of a configuration on reload (cache,
	// limiter, breakers), reusing prev's where their settings did not
	// change; retire frees those of prev it replaced, and drop those of d
	// that are new, for a reload refused after building. nil keeps the
	// ones NewServer was given.
	build func(cfg Config, prev Deps) (d Deps, retire, drop func())

	bodyTimeout atomic.Int64 // time.Duration; 0: none
	// halted is the base of every client connection's context (see
	// BaseContext): halting it ends every request with errShuttingDown, at
	// no cost per request.
	halted context.Context
	halt   context.CancelCauseFunc
	active atomic.Int64 // requests in ServeHTTP

	mu     sync.Mutex // serialises reloads
	ctx    context.Context
	cancel context.CancelFunc // stops the current gateway's health checks
	wg     sync.WaitGroup
}

// NewServer builds the first gateway; Start its health checks with Serve or Reload.
func NewServer(ctx context.Context, cfg Config, d Deps) (*Server, error) {
	g, err := New(cfg, d)
	if err != nil {
		return nil, err
	}
	s := &Server{deps: d, log: d.Logger, ctx: ctx}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.halted, s.halt = context.WithCancelCause(context.Background())
	s.bodyTimeout.Store(int64(g.cfg.Server.BodyTimeout.D()))
	s.start(g)
	return s, nil
}

func (s *Server) start(g *Gateway) {
	gctx, cancel := context.WithCancel(s.ctx)
	s.cur.Store(g)
	s.cancel = cancel
	s.wg.Add(1)
	go func() { defer s.wg.Done(); g.Run(gctx) }()
}

// BaseContext is http.Server.BaseContext: the context every client
// connection's, and so every request's, derives from.
func (s *Server) BaseContext(net.Listener) context.Context { return s.halted }

// ServeHTTP hands the request to the current gateway, with a deadline on
// reading its body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Add(-1)
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// net/http drops the Content-Length of a request that also has
		// Transfer-Encoding before a handler sees it, so the smuggling attempt
		// RFC 9112 6.1 asks to close the connection after cannot be told from
		// a plain chunked body: every chunked request ends its connection.
		// Clients of a model API send Content-Length; the cost is small.
		w.Header().Set("Connection", "close")
	}
	if d := time.Duration(s.bodyTimeout.Load()); d > 0 && r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		limitBodyTime(w, r, d)
	}
	s.cur.Load().ServeHTTP(w, r)
}

// limitBodyTime bounds the time the whole of r's body may take to arrive:
// ReadHeaderTimeout bounds only the head, and a client sending a byte now and
// then would otherwise hold the connection and its buffer for as long as it
// likes. The deadline is lifted once the body has arrived, since a stream's
// answer may take minutes while the server watches the connection for the
// client going away.
func limitBodyTime(w http.ResponseWriter, r *http.Request, d time.Duration) {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(d)) != nil {
		return // a writer that cannot: nothing to lift either
	}
	r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
}

// deadlineBody lifts the read deadline when the body has arrived whole; a
// body that failed keeps it, so that what net/http reads of it afterwards
// (to reuse the connection) fails as fast.
type deadlineBody struct {
	io.ReadCloser
	lift   func()
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		b.lift()
	}
	return n, err
}

// Gateway is the gateway serving now.
func (s *Server) Gateway() *Gateway { return s.cur.Load() }

// Reload builds a gateway from cfg and swaps it in; the old one keeps serving
// the requests it holds and is retired once they end. Listeners and Redis
// are kept; the cache, the limiter and the breakers are built again when
// their settings changed (the L1's answers and in-process counters start
// afresh then). The targets of pools the admin API changed (a rollout's
// switch) are kept too: the file's targets for those apply after a restart.
func (s *Server) Reload(cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, retire, drop := s.deps, func() {}, func() {}
	if s.build != nil {
		d, retire, drop = s.build(cfg, s.deps)
	}
	g, err := New(cfg, d)
	if err != nil {
		drop()
		return fmt.Errorf("reloading the gateway: %w", err)
	}
	old, oldCancel := s.cur.Load(), s.cancel
	for name, prev := range old.Pools() {
		p, ok := g.Pools()[name]
		if ok {
			// dns+ targets: serve on what prev resolved until the first resolution.
			if err := p.KeepResolved(prev); err != nil {
				s.log.Warn("reloading: the resolved targets are resolved again", "pool", name, "err", err)
			}
		}
		if !ok || !prev.AdminChanged() {
			continue
		}
		if err := p.Adopt(prev); err != nil {
			drop()
			return fmt.Errorf("reloading the gateway: %w", err)
		}
		s.log.Warn("pool keeps the targets set through the admin API; the file's targets for it apply after a restart",
			"pool", name, "targets", len(p.Targets()))
	}
	s.deps = d
	s.bodyTimeout.Store(int64(g.cfg.Server.BodyTimeout.D()))
	s.start(g)
	go func() {
		for old.Inflight() > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		oldCancel()
		for _, p := range old.Pools() {
			p.CloseIdle()
		}
		retire()
	}()
	return nil
}

// stopStreams ends every request still running with errShuttingDown (for
// connections whose server has BaseContext), so that streams send their
// client an error event before the connections are closed, and waits up to
// wait for the handlers to return.
func (s *Server) stopStreams(wait time.Duration) {
	s.halt(errShuttingDown)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	end := time.After(wait)
	for s.active.Load() > 0 {
		select {
		case <-t.C:
		case <-end:
			return
		}
	}
}
