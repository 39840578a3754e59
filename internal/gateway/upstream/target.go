package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"
)

// Breaker guards one target; it is the two-step breaker of the breaker package.
type Breaker interface {
	// Allow asks to send one request; done reports its outcome.
	Allow() (done func(success bool), err error)
	// State is "closed", "half-open" or "open".
	State() string
}

// BreakerFactory makes the breaker of a target, named by its URL.
type BreakerFactory func(target string) Breaker

// Target is one upstream server of a pool.
type Target struct {
	url       string
	base      *url.URL // scheme+host that requests are sent to (http://unix for sockets)
	transport *http.Transport
	breaker   Breaker
	lastURL   atomic.Pointer[url.URL] // see URLFor
	group     atomic.Pointer[string]  // nil: the group ""

	weight   atomic.Int64
	inflight atomic.Int64
	// started counts the leases taken (those released are started minus
	// inflight); starts holds the start of lease n (unix nanos) at
	// n % startRing, so the oldest in flight is the first not released
	// (see oldestInflight).
	started     atomic.Int64
	starts      [startRing]atomic.Int64
	healthy     atomic.Bool
	draining    atomic.Bool
	ejectedTill atomic.Int64 // unix nanos; passive ejection
	fails       atomic.Int64 // consecutive passive failures
	hcPass      int          // consecutive active passes, owned by the health loop
	hcFail      int

	stats ring
}

func newTarget(tc TargetConfig, to Timeouts, bf BreakerFactory) (*Target, error) {
	u, err := ParseTargetURL(tc.URL)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: to.Connect.D(), KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           connectErrors(dialer.DialContext),
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   4096,
		IdleConnTimeout:       to.Idle.D(),
		ResponseHeaderTimeout: to.ResponseHeader.D(),
		TLSHandshakeTimeout:   to.Connect.D(),
		// HTTP/1.1 only: a model server's streams are long and one h2
		// connection's flow control would couple every stream on it.
		ForceAttemptHTTP2:  false,
		DisableCompression: true,    // pass the client's Accept-Encoding through untouched
		WriteBufferSize:    8 << 10, // small: thousands of open streams each hold one
		ReadBufferSize:     8 << 10,
	}
	if tc.CAFile != "" {
		pem, err := os.ReadFile(tc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("target %s: reading caFile: %w", tc.URL, err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("target %s: caFile %s holds no PEM certificate; give the CA's certificate in PEM", tc.URL, tc.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	base := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if u.Scheme == "unix" {
		path := u.Path
		tr.DialContext = connectErrors(func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		})
		base = &url.URL{Scheme: "http", Host: "unix"}
	}
	if base.Path == "/" {
		base.Path = ""
	}
	t := &Target{url: tc.URL, base: base, transport: tr}
	if bf != nil {
		t.breaker = bf(tc.URL)
	}
	w := tc.Weight
	if w <= 0 {
		w = 1
	}
	t.weight.Store(int64(w))
	t.healthy.Store(true)
	return t, nil
}

// ConnectError is a target that could not be connected to: the request was
// not sent, so another target may take it, whatever its method.
type ConnectError struct{ Err error }

func (e *ConnectError) Error() string { return "connecting to the target: " + e.Err.Error() }

func (e *ConnectError) Unwrap() error { return e.Err }

// connectErrors marks the errors of dial as ConnectError, which http.Transport
// passes through unchanged: only then is it certain that no byte of the
// request left, so that another target may take it.
func connectErrors(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil && ctx.Err() == nil {
			return nil, &ConnectError{Err: err}
		}
		return c, err
	}
}

// Group is the group (version) the target belongs to; "" is the pool's one group.
func (t *Target) Group() string {
	if g := t.group.Load(); g != nil {
		return *g
	}
	return ""
}

func (t *Target) setGroup(g string) {
	if g == t.Group() {
		return
	}
	t.group.Store(&g)
}

// URL is the configured address of the target.
func (t *Target) URL() string { return t.url }

// Base is the scheme, host and path prefix requests go to.
func (t *Target) Base() *url.URL { return t.base }

// URLFor is the URL on this target of a request for in: Base's scheme and
// host, Base's path prefix before in's path, and in's query. The last one made
// is kept and returned again for a request to the same path and query (most
// requests to a model go to one route); callers must not modify it.
func (t *Target) URLFor(in *url.URL) *url.URL {
	if u := t.lastURL.Load(); u != nil && u.RawQuery == in.RawQuery && t.samePath(u, in) {
		return u
	}
	u := &url.URL{Scheme: t.base.Scheme, Host: t.base.Host, Path: in.Path, RawPath: in.RawPath, RawQuery: in.RawQuery}
	if t.base.Path != "" {
		u.Path = t.base.Path + in.Path
		u.RawPath = ""
	}
	t.lastURL.Store(u)
	return u
}

// samePath says whether u, made by URLFor, is the URL of in's path.
func (t *Target) samePath(u, in *url.URL) bool {
	if t.base.Path == "" {
		return u.Path == in.Path && u.RawPath == in.RawPath
	}
	return len(u.Path) == len(t.base.Path)+len(in.Path) && u.Path[len(t.base.Path):] == in.Path
}

// Transport sends requests to the target: one http.Transport per target,
// so that its keep-alive connections, and their limits, are the target's.
func (t *Target) Transport() http.RoundTripper { return t.transport }

// closeIdle closes the target's idle connections.
func (t *Target) closeIdle() { t.transport.CloseIdleConnections() }

// Inflight is the number of requests in progress.
func (t *Target) Inflight() int64 { return t.inflight.Load() }

// Healthy reports the active and passive verdicts together.
func (t *Target) Healthy() bool {
	if !t.healthy.Load() {
		return false
	}
	if till := t.ejectedTill.Load(); till != 0 {
		if time.Now().UnixNano() < till {
			return false
		}
		t.ejectedTill.CompareAndSwap(till, 0)
	}
	return true
}

// BreakerState is the breaker's state, or "closed" without one.
func (t *Target) BreakerState() string {
	if t.breaker == nil {
		return "closed"
	}
	return t.breaker.State()
}

// usable says whether the target may take a new request, ignoring capacity.
func (t *Target) usable() bool {
	if t.draining.Load() || !t.Healthy() {
		return false
	}
	return t.breaker == nil || t.breaker.State() != "open"
}

// startRing is how many lease starts a target remembers: as many as the
// adaptive limit lets be in flight, the only limit under which they are read.
const startRing = adaptiveMax

// leased records a lease taken at now.
func (t *Target) leased(now time.Time) {
	n := t.started.Add(1)
	t.starts[n%startRing].Store(now.UnixNano())
}

// ended is how many leases were released.
func (t *Target) ended() int64 { return t.started.Load() - t.inflight.Load() }

// oldestInflight is when the oldest request in flight started, taking the
// requests to end in the order they started; ok is false when none is.
func (t *Target) oldestInflight() (time.Time, bool) {
	if t.inflight.Load() <= 0 {
		return time.Time{}, false
	}
	return time.Unix(0, t.starts[(t.ended()+1)%startRing].Load()), true
}

// tryAcquire reserves a slot unless the target is at max.
func (t *Target) tryAcquire(max int64) bool {
	if max <= 0 {
		t.inflight.Add(1)
		return true
	}
	for {
		n := t.inflight.Load()
		if n >= max {
			return false
		}
		if t.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// passive records the outcome of a proxied request for passive ejection.
func (t *Target) passive(ok bool, threshold int64, ejectFor time.Duration) {
	if ok {
		if t.fails.Load() != 0 {
			t.fails.Store(0)
		}
		return
	}
	if threshold > 0 && t.fails.Add(1) >= threshold {
		t.fails.Store(0)
		t.ejectedTill.Store(time.Now().Add(ejectFor).UnixNano())
	}
}

// SetHealthyForTest forces the active verdict; tests use it to take a target down.
func (t *Target) SetHealthyForTest(ok bool) { t.healthy.Store(ok) }
