package breaker

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// The errors Allow returns; match them with errors.Is.
var (
	ErrOpen            = gobreaker.ErrOpenState       // the breaker is open: do not call the upstream
	ErrTooManyRequests = gobreaker.ErrTooManyRequests // half-open and its probes are all in flight
)

// errFailed tells gobreaker that the caller saw a failure.
var errFailed = errors.New("upstream failed")

// The states State reports, as gobreaker names them.
const (
	StateClosed   = "closed"
	StateHalfOpen = "half-open"
	StateOpen     = "open"
)

// Breaker guards one upstream. It is safe for concurrent use.
type Breaker struct {
	name     string
	cooldown time.Duration
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	m        *Metrics
	log      *slog.Logger

	mu       sync.Mutex
	openedAt time.Time
}

// Option changes how New builds a breaker.
type Option func(*Breaker)

// WithLogger logs every change of state to l: an operator must learn that a
// model server gets no traffic from the log, not from a dashboard alone.
func WithLogger(l *slog.Logger) Option { return func(b *Breaker) { b.log = l } }

// New builds the breaker of upstream name from a validated cfg and adds it to m (nil: none).
// Call Close when the upstream goes away so its series disappears.
func New(name string, cfg Config, m *Metrics, opts ...Option) *Breaker {
	b := &Breaker{name: name, cooldown: cfg.Cooldown.D(), m: m}
	for _, o := range opts {
		o(b)
	}
	window := cfg.Window.D()
	st := gobreaker.Settings{
		Name:         name,
		MaxRequests:  cfg.HalfOpenMaxRequests,
		Interval:     window,
		BucketPeriod: window / 10,
		Timeout:      cfg.Cooldown.D(),
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if c.ConsecutiveFailures >= cfg.ConsecutiveFailures {
				return true
			}
			return cfg.FailureRatio > 0 && c.Requests >= cfg.MinRequests &&
				float64(c.TotalFailures) >= cfg.FailureRatio*float64(c.Requests)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) { b.changed(from, to) },
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
	if m != nil {
		m.add(b)
	}
	return b
}

// changed runs under gobreaker's lock on every transition.
func (b *Breaker) changed(from, to gobreaker.State) {
	b.mu.Lock()
	if to == gobreaker.StateOpen {
		b.openedAt = time.Now()
	}
	b.mu.Unlock()
	if b.log != nil {
		switch to {
		case gobreaker.StateOpen:
			b.log.Warn("circuit breaker opened: the upstream failed or timed out too often and gets no requests until the cooldown ends; check the model server's logs",
				"upstream", b.name, "from", from.String(), "cooldown", b.cooldown.String())
		default:
			b.log.Info("circuit breaker state changed", "upstream", b.name, "from", from.String(), "to", to.String())
		}
	}
	if b.m != nil {
		b.m.transitions.WithLabelValues(b.name, to.String()).Inc()
	}
}

// Allow asks to send one request. On success the caller must call done exactly once with
// whether the upstream answered well; on error (ErrOpen, ErrTooManyRequests) it must not send.
func (b *Breaker) Allow() (done func(success bool), err error) {
	d, err := b.cb.Allow()
	if err != nil {
		return nil, err
	}
	return func(success bool) {
		if success {
			d(nil)
		} else {
			d(errFailed)
		}
	}, nil
}

// State returns "closed", "half-open" or "open", moving an open breaker whose cooldown has
// passed to half-open as a request would.
func (b *Breaker) State() string { return b.cb.State().String() }

// RetryAfter is how long until an open breaker lets a probe through; 0 when not open.
func (b *Breaker) RetryAfter() time.Duration {
	if b.cb.State() != gobreaker.StateOpen {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.cooldown-time.Since(b.openedAt), 0)
}

// Name is the upstream the breaker guards.
func (b *Breaker) Name() string { return b.name }

// Close removes the breaker from its metrics.
func (b *Breaker) Close() {
	if b.m != nil {
		b.m.remove(b)
	}
}

// stateValue is the gauge value of a state: 0 closed, 1 half-open, 2 open.
func stateValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// Metrics exports the state of every live breaker; build it once per registry.
type Metrics struct {
	state       *prometheus.Desc
	transitions *prometheus.CounterVec

	mu       sync.Mutex
	breakers map[string]*Breaker // by upstream: a breaker built again for a reload replaces the old one
}

// NewMetrics creates the breaker series and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		state: prometheus.NewDesc("ai_gateway_breaker_state",
			"Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.", []string{"upstream"}, nil),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_gateway_breaker_transitions_total",
			Help: "Circuit breaker state changes per upstream, by the state entered.",
		}, []string{"upstream", "to"}),
		breakers: map[string]*Breaker{},
	}
	if reg != nil {
		reg.MustRegister(m, m.transitions)
	}
	return m
}

func (m *Metrics) add(b *Breaker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.breakers[b.name] = b
}

func (m *Metrics) remove(b *Breaker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.breakers[b.name] == b {
		delete(m.breakers, b.name)
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.state }

// Collect implements prometheus.Collector: the state is read at scrape time, so an open
// breaker past its cooldown shows as half-open even before the next request.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	bs := make([]*Breaker, 0, len(m.breakers))
	for _, b := range m.breakers {
		bs = append(bs, b)
	}
	m.mu.Unlock()
	for _, b := range bs {
		ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, stateValue(b.cb.State()), b.name)
	}
}
