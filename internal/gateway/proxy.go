package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/openai"
	"github.com/aideploy/aideploy/internal/gateway/sse"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
)

// isHop says whether a canonical header name is a connection-level header
// that a proxy must not forward (RFC 9110 7.6.1). A switch, not a map: it runs
// for every header of every request and answer.
func isHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// maxCapture bounds the bytes of an OpenAI answer kept for usage and the cache.
const maxCapture = 4 << 20

func (g *Gateway) poolFor(route string) *upstream.Pool {
	if p, ok := g.routes[route]; ok {
		return p
	}
	return g.def
}

// proxy is the last step of every chain: it sends the request to a target and
// streams the answer back.
func (g *Gateway) proxy(x *exchange) {
	r := x.r
	pool := g.poolFor(x.route)
	if x.isOA && pool.MirrorShare() {
		g.startMirror(pool, x) // before outHeader rewrites the client's header
	}
	lease, err := pool.AcquireFor(r.Context(), pool.Select(g.caller(pool, x)))
	if err != nil {
		switch {
		case errors.Is(err, upstream.ErrSaturated):
			g.unavailable(x, "saturated")
		case errors.Is(err, upstream.ErrUnavailable):
			g.unavailable(x, "unavailable")
		default: // the client went away while queued
		}
		return
	}
	var outcome upstream.Outcome
	defer func() { lease.Done(outcome) }()
	if _, fell := lease.Assigned(); fell {
		g.m.Fallbacks.WithLabelValues(pool.Name()).Inc()
	}

	ctx, done := g.sendContext(x)
	defer done()
	if d := g.cfg.Timeouts.Request.D(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	out := r.WithContext(ctx)
	out.URL = lease.Target.URLFor(r.URL)
	out.Host = ""
	out.RequestURI = ""
	out.Close = false
	out.Header = outHeader(r, x.id)
	body := x.body
	if g.wantsStreamUsage(x) {
		if b, ok := openai.WithStreamUsage(body); ok {
			body, x.dropUsage = b, true
		}
	}
	var streamed *clientBody // a body that streams from the client
	switch {
	case body != nil:
		out.Body = &bytesBody{b: body}
		out.ContentLength = int64(len(body))
		// The Transport sends the body again when a reused connection
		// turns out closed before the request was written.
		out.GetBody = func() (io.ReadCloser, error) { return &bytesBody{b: body}, nil }
	case r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody:
		out.Body, out.ContentLength = nil, 0
	default:
		streamed = &clientBody{rc: r.Body}
		out.Body = streamed
	}
	sent := time.Now()
	resp, err := g.send(ctx, x, &lease, out, body, streamed)
	if err != nil {
		outcome.Err = err
		if r.Context().Err() != nil {
			outcome.Err = context.Canceled
			return
		}
		if streamed != nil {
			if cerr := streamed.failed(); cerr != nil {
				err = cerr
			}
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			outcome.Err = nil // the client's doing, not the target's
			openai.WriteError(&x.w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", "The request body is too large.")
			return
		}
		if streamed != nil && streamed.failed() != nil {
			outcome.Err = nil
			openai.WriteError(&x.w, http.StatusBadRequest, "invalid_request_error", "invalid_body",
				"The request body could not be read: "+err.Error())
			return
		}
		g.log.Warn("upstream request failed", "request_id", x.id, "target", lease.Target.URL(), "err", err)
		if x.stale != nil {
			g.unavailable(x, "upstream_error")
			return
		}
		code, msg := upstreamFailure(err)
		openai.WriteError(&x.w, code, "upstream_error", "upstream_error", msg)
		return
	}
	defer resp.Body.Close()
	outcome.Status = resp.StatusCode
	x.upStatus = resp.StatusCode

	h := x.w.Header()
	dropConnectionTokens(resp.Header)
	for k, v := range resp.Header {
		if !isHop(k) {
			h[k] = v
		}
	}
	if x.cacheRes != "" {
		h["X-Cache"] = headerValue(x.cacheRes)
	}
	g.busyRetryAfter(resp, h)
	isSSE := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	stream := isSSE || resp.ContentLength < 0
	x.streamed = isSSE
	x.upHeader = resp.Header
	if x.share != nil {
		x.share.setHead(resp.StatusCode, resp.Header, isSSE)
	}
	x.w.WriteHeader(resp.StatusCode)
	if stream {
		x.w.Flush()
	}
	if err := g.copyBody(x, resp, stream, isSSE); err != nil {
		outcome.Err = err
	}
	if x.isOA && x.complete && resp.StatusCode/100 == 2 {
		lease.Observe(answerOf(sent, x.firstByte, time.Now(), isSSE, x.usage, x.hasUsage, x.chunks, x.finish))
	}
	if x.isOA && resp.StatusCode/100 == 2 {
		g.m.ForModel(x.oa.Model).Inference.Observe(time.Since(sent).Seconds())
	}
}

// busyRetryAfter gives a model's "too busy" answer (503 or 429) that says
// nothing about when to come back the Retry-After of the gateway's own
// degraded answer: Ollama refuses past OLLAMA_MAX_QUEUE while a model loads
// with a bare 503, and a client without a Retry-After retries at once or
// gives up. The outcome's status already makes the adaptive limit back off.
func (g *Gateway) busyRetryAfter(resp *http.Response, h http.Header) {
	if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
		return
	}
	if resp.Header.Get("Retry-After") != "" {
		return
	}
	h.Set("Retry-After", g.retryAfter)
	g.m.Degraded.WithLabelValues("upstream_busy").Inc()
}

// maxConnectRetries bounds how many other targets a request is sent to when
// its target cannot be connected to.
const maxConnectRetries = 2

// send sends out to lease's target. While a target cannot be connected to,
// the request was never sent, so whatever its method it goes to another
// usable target of the pool (at most maxConnectRetries more; never one
// already tried), unless its body streams from the client.
// Each failed lease is released with its error, so that passive ejection and
// the breaker count it; *lease ends as the one that answered or failed last.
// ctx, not the client's request, decides whether to go on: a shared
// stream's outlives its leader.
func (g *Gateway) send(ctx context.Context, x *exchange, lease *upstream.Lease, out *http.Request, body []byte, streamed *clientBody) (*http.Response, error) {
	var tried []*upstream.Target
	pool := g.poolFor(x.route)
	for {
		resp, err := lease.Target.Transport().RoundTrip(out)
		var ce *upstream.ConnectError
		// A body that streams from the client cannot go twice: the
		// Transport closes it even when the dial fails.
		if err == nil || len(tried) == maxConnectRetries || ctx.Err() != nil || streamed != nil {
			return resp, err
		}
		var next upstream.Lease
		var nerr error
		connect := errors.As(err, &ce)
		switch {
		case connect:
			next, nerr = pool.AcquireOther(*lease, append(tried, lease.Target))
		case replayable(x, body, err):
			next, nerr = pool.AcquireFallback(*lease) // see canary.go
		default:
			return resp, err
		}
		if nerr != nil {
			return resp, err
		}
		tried = append(tried, lease.Target)
		g.log.Warn("upstream unreachable; sending the request to another target", "request_id", x.id,
			"target", lease.Target.URL(), "next", next.Target.URL(), "err", err)
		if connect {
			g.m.Retries.WithLabelValues(pool.Name()).Inc()
		}
		if _, was := lease.Assigned(); !was {
			if _, now := next.Assigned(); now {
				g.m.Fallbacks.WithLabelValues(pool.Name()).Inc()
			}
		}
		lease.Done(upstream.Outcome{Err: err})
		*lease = next
		out.URL = lease.Target.URLFor(x.r.URL)
		if body != nil {
			out.Body = &bytesBody{b: body}
		}
	}
}

// upstreamFailure is the status and message for a request the target did not
// answer: the operator's next step differs between a target that cannot be
// reached, one that is too slow, and one that answers with something that is
// not HTTP.
func upstreamFailure(err error) (int, string) {
	var ce *upstream.ConnectError
	switch {
	case errors.As(err, &ce):
		return http.StatusBadGateway, "The model server could not be reached."
	case isTimeout(err):
		return http.StatusGatewayTimeout, "The model server did not answer in time."
	}
	return http.StatusBadGateway, "The model server sent an invalid answer or closed the connection without one."
}

// copyBody streams the upstream body to the client, flushing each read of a
// stream at once. A body cut by the upstream ends an SSE stream with an error
// event and any other body uncleanly.
func (g *Gateway) copyBody(x *exchange, resp *http.Response, stream, isSSE bool) error {
	bp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bp)
	buf := *bp
	var out io.Writer = &x.w
	var sw *openai.StreamWriter // notes the usage of an OpenAI stream
	if x.isOA && isSSE {
		sw = &openai.StreamWriter{W: &x.w, DropUsage: x.dropUsage}
		out = sw
	}
	capture := x.isOA || x.record
	if capture && resp.ContentLength > 0 && resp.ContentLength <= maxCapture {
		x.captured = make([]byte, 0, resp.ContentLength)
	}
	first := true
	gone := false // the client went away; followers of the share still read
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if x.firstByte.IsZero() {
				x.firstByte = time.Now()
			}
			chunk := buf[:n]
			if x.share != nil {
				x.share.add(chunk) // the share's buffer is the capture too
			} else if capture {
				g.capture(x, chunk)
			}
			if !gone {
				_, werr := out.Write(chunk)
				if sw != nil && sw.HasUsage {
					x.usage, x.hasUsage = sw.Usage, true
				}
				if werr != nil {
					if x.share == nil || !x.share.leaderLeft() {
						return context.Canceled // the client went away; the deferred cancel stops the upstream
					}
					gone = true
				}
			} else if sw != nil {
				_, _ = sw.Write(chunk) // fails at once, but sees the stream's end for the followers
			}
			if stream && !gone {
				x.w.Flush()
				if first && isSSE {
					first = false
					g.m.ForModel(x.oa.Model).TTFT.Observe(time.Since(x.start).Seconds())
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if x.r.Context().Err() != nil {
				if isSSE && !gone && errors.Is(context.Cause(x.r.Context()), errShuttingDown) {
					shutdownEvent(&x.w)
				}
				return context.Canceled
			}
			g.log.Warn("upstream cut the answer", "request_id", x.id, "err", rerr)
			x.overflow = true // never cache a partial answer
			if isSSE {
				_ = sse.WriteError(&x.w, "upstream_error", "the model server ended the stream early")
				x.w.Flush()
			} else {
				x.abort = true
			}
			return rerr
		}
	}
	if x.share != nil {
		x.captured, x.overflow = x.share.recorded()
	}
	if sw != nil && !sw.Complete() {
		return g.streamCut(x)
	}
	if sw != nil {
		x.finish, x.chunks = sw.FinishReason, sw.Chunks
	}
	if x.isOA && !isSSE && !x.overflow {
		if u, ok := openai.UsageOf(x.captured); ok {
			x.usage, x.hasUsage = u, true
		}
		x.finish = openai.FinishReasonOf(x.captured)
	}
	x.complete = true
	if x.hasUsage && x.onUsage != nil {
		x.onUsage(x.usage)
	}
	return nil
}

// shutdownEvent tells a stream's client that the gateway cut it because it
// is shutting down, so that the client retries instead of taking a truncated
// answer for a whole one.
func shutdownEvent(w *responseWriter) {
	_ = sse.WriteError(w, "server_shutting_down", "the gateway is shutting down; send the request again")
	w.Flush()
}

// sendContext is the context of the upstream call: the client's, except for
// a stream that followers may join, whose call stops only when its last
// reader is gone (see share).
func (g *Gateway) sendContext(x *exchange) (context.Context, func()) {
	if x.share == nil {
		return x.r.Context(), func() {}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(x.r.Context()))
	x.share.setStop(cancel)
	unwatch := context.AfterFunc(x.r.Context(), func() { x.share.leaderLeft() })
	return ctx, func() { unwatch(); cancel() }
}

// wantsStreamUsage says whether to ask the model for the usage chunk of a
// stream whose client did not: without it a stream's tokens count nowhere.
func (g *Gateway) wantsStreamUsage(x *exchange) bool {
	return x.isOA && x.oa.Stream && !x.oa.IncludeUsage && g.cfg.StreamUsage == StreamUsageInject &&
		(x.route == openai.RouteChat || x.route == openai.RouteCompletions)
}

func (g *Gateway) capture(x *exchange, b []byte) {
	if x.overflow {
		return
	}
	if len(x.captured)+len(b) > maxCapture {
		x.overflow = true
		x.captured = nil
		return
	}
	x.captured = append(x.captured, b...)
}

// outHeader turns the client's header into the upstream's, in place: the
// incoming header map is the request's own and nothing reads it afterwards,
// so a copy per request would be waste.
func outHeader(r *http.Request, id string) http.Header {
	h := r.Header
	if h == nil {
		h = make(http.Header, 2)
	}
	trailers := false
	if te := h["Te"]; len(te) > 0 && strings.Contains(te[0], "trailers") {
		trailers = true
	}
	stripHops(h)
	if trailers {
		h["Te"] = []string{"trailers"}
	}
	h["X-Request-Id"] = []string{id}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := h["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		h["X-Forwarded-For"] = []string{ip}
	}
	return h
}

// stripHops removes the hop-by-hop headers of h: those Connection names and
// the standard ones (RFC 9110 7.6.1), which never travel past one hop.
func stripHops(h http.Header) {
	dropConnectionTokens(h)
	for k := range h {
		if isHop(k) {
			delete(h, k)
		}
	}
}

// dropConnectionTokens deletes the headers that any Connection header names
// (RFC 9110 7.6.1): a header field may be repeated, and a token in the second
// one is as much a hop-by-hop header as one in the first.
func dropConnectionTokens(h http.Header) {
	for _, c := range h["Connection"] {
		for f := range strings.SplitSeq(c, ",") {
			if f = strings.TrimSpace(f); f != "" {
				delete(h, http.CanonicalHeaderKey(f))
			}
		}
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// bytesBody is the upstream request body of an OpenAI route: the bytes read
// whole, in one allocation instead of io.NopCloser(bytes.NewReader(b)).
type bytesBody struct {
	b []byte
	i int
}

func (r *bytesBody) Read(p []byte) (int, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.i:])
	r.i += n
	return n, nil
}

func (r *bytesBody) Close() error { return nil }

// clientBody is a request body that streams from the client to the target.
// It remembers the client's own read error, so that a malformed body is
// answered 400 and not blamed on the target. The Transport reads it on its
// own goroutine, which may outlive RoundTrip.
type clientBody struct {
	rc  io.ReadCloser
	err atomic.Pointer[error]
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// failed is the client's read error, or nil.
func (b *clientBody) failed() error {
	if e := b.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (b *clientBody) Close() error { return b.rc.Close() }
