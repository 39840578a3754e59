package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/openai"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
)

// Canary support in the data path: the group a request is assigned (the
// pool's split, see upstream.Pool.Select), the figures of each answer for the
// per-group analysis, and mirroring to a shadow group.

// caller is what the pool's sticky split may hash: the tenant when auth is
// on, else the client's own bearer credential, and the request's headers.
func (g *Gateway) caller(p *upstream.Pool, x *exchange) upstream.Caller {
	if p.Sticky() == "" {
		return upstream.Caller{}
	}
	c := upstream.Caller{Header: x.r.Header}
	switch {
	case x.key != nil:
		c.Credential = x.tenant
	default:
		if tok, ok := bearerToken(x.r.Header.Get("Authorization")); ok {
			c.Credential = tok
		}
	}
	return c
}

// answerOf is the measured answer: sent when the request left, first when
// the first byte of the answer arrived, end when the last did.
func answerOf(sent, first, end time.Time, streamed bool, u openai.Usage, hasUsage bool, chunks int, finish string) upstream.Answer {
	a := upstream.Answer{Total: end.Sub(sent), Streamed: streamed, Finish: finish, Tokens: -1}
	if first.IsZero() {
		first = end
	}
	a.TTFT = first.Sub(sent)
	switch {
	case hasUsage:
		a.Tokens = int(u.CompletionTokens)
	case streamed && chunks > 0:
		a.Tokens = chunks
	}
	return a
}

// mirrorHeaderDrop are the client's headers a mirrored request does not carry.
var mirrorHeaderDrop = []string{"Content-Length", "Accept-Encoding", "Cache-Control", "Pragma"}

// startMirror sends a copy of x to the pool's shadow group on its own
// goroutine: the client's request never waits for it, and its answer is read
// whole, measured in the shadow's figures and discarded. The mirror is never
// counted in tenants' limits nor looked up in or stored to the cache (it
// starts past those steps and goes straight to a target), and nothing of it
// reaches the client.
func (g *Gateway) startMirror(p *upstream.Pool, x *exchange) {
	lease, ok := p.AcquireMirror()
	if !ok {
		return // dropped: the shadow is full or down
	}
	h := x.r.Header.Clone()
	stripHops(h)
	for _, k := range mirrorHeaderDrop {
		delete(h, k)
	}
	h["X-Request-Id"] = []string{x.id + "-mirror"}
	body := x.body
	if x.oa.Stream && !x.oa.IncludeUsage {
		if b, ok := openai.WithStreamUsage(body); ok {
			body = b // the usage chunk gives the shadow's token count
		}
	}
	u := lease.Target.URLFor(x.r.URL)
	go g.mirror(lease, x.r.Method, u.String(), h, body)
}

// mirror sends one mirrored request and measures its answer.
func (g *Gateway) mirror(lease upstream.Lease, method, url string, h http.Header, body []byte) {
	var outcome upstream.Outcome
	defer func() { lease.Done(outcome) }()
	ctx := context.Background()
	if d := g.cfg.Timeouts.Request.D(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		outcome.Err = err
		return
	}
	req.Header = h
	sent := time.Now()
	resp, err := lease.Target.Transport().RoundTrip(req)
	if err != nil {
		outcome.Err = err
		return
	}
	defer resp.Body.Close()
	outcome.Status = resp.StatusCode
	isSSE := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	var first time.Time
	var sw *openai.StreamWriter
	var captured bytes.Buffer
	var dst io.Writer = &limitedBuffer{b: &captured, max: maxCapture}
	if isSSE {
		sw = &openai.StreamWriter{W: io.Discard}
		dst = sw
	}
	bp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if first.IsZero() {
				first = time.Now()
			}
			_, _ = dst.Write(buf[:n])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			outcome.Err = rerr
			return
		}
	}
	end := time.Now()
	if resp.StatusCode/100 != 2 {
		return
	}
	if sw != nil {
		if !sw.Complete() {
			outcome.Err = io.ErrUnexpectedEOF // a stream cut short is the shadow's failure
			return
		}
		lease.Observe(answerOf(sent, first, end, true, sw.Usage, sw.HasUsage, sw.Chunks, sw.FinishReason))
		return
	}
	b := captured.Bytes()
	u, hasUsage := openai.UsageOf(b)
	lease.Observe(answerOf(sent, first, end, false, u, hasUsage, 0, openai.FinishReasonOf(b)))
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// replayable says whether a request whose target dropped it without any
// answer (the connection closed or reset before a status line) may go to the
// split's fallback group: an inference request read whole, which changes
// nothing on the server, so that sending it again costs compute but no
// correctness. A new version that crashed, or whose port is still held by a
// proxy in front of a dead container, then loses only the answers it had
// begun to send. Timeouts are never replayed: the model may still be working.
func replayable(x *exchange, body []byte, err error) bool {
	return x.isOA && body != nil && !isTimeout(err) && !errors.Is(err, context.Canceled)
}
