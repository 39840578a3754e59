package breaker

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

// cooldown is short enough for a quick test and long enough that a busy machine does not
// pass it between two steps that expect the breaker still open.
const cooldown = 300 * time.Millisecond

func testConfig() Config {
	cfg := Default()
	cfg.Cooldown = units.Duration(cooldown)
	return cfg
}

// call sends one request through b and reports success as given; it fails the test if
// the breaker refuses.
func call(t *testing.T, b *Breaker, success bool) {
	t.Helper()
	done, err := b.Allow()
	if err != nil {
		t.Fatalf("Allow in state %s: %v", b.State(), err)
	}
	done(success)
}

func TestOpensAfterConsecutiveFailures(t *testing.T) {
	t.Parallel()
	b := New("u", testConfig(), nil)
	for i := range 4 {
		call(t, b, false)
		if s := b.State(); s != StateClosed {
			t.Fatalf("after %d failures: %s, want closed", i+1, s)
		}
	}
	call(t, b, true) // a success resets the run
	for range 4 {
		call(t, b, false)
	}
	if s := b.State(); s != StateClosed {
		t.Fatalf("4 failures after a success: %s, want closed", s)
	}
	call(t, b, false)
	if s := b.State(); s != StateOpen {
		t.Fatalf("after 5 failures in a row: %s, want open", s)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Errorf("Allow when open = %v, want ErrOpen", err)
	}
	if d := b.RetryAfter(); d <= 0 || d > cooldown {
		t.Errorf("RetryAfter = %s, want within the %s cooldown", d, cooldown)
	}
}

func TestOpensOnFailureRatio(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.ConsecutiveFailures = 100
	cfg.FailureRatio = 0.5
	cfg.MinRequests = 10
	b := New("u", cfg, nil)
	// Alternate: never two failures in a row, but half of all requests fail.
	for i := range 9 {
		call(t, b, i%2 == 1)
	}
	if s := b.State(); s != StateClosed {
		t.Fatalf("before minRequests: %s, want closed", s)
	}
	call(t, b, false) // 10 requests, 6 failures
	if s := b.State(); s != StateOpen {
		t.Fatalf("at 6 of 10 failed: %s, want open", s)
	}
}

func TestHalfOpenRecoversOrReopens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		probe bool
		want  string
	}{
		{"probe succeeds", true, StateClosed},
		{"probe fails", false, StateOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := New("u", testConfig(), nil)
			for range 5 {
				call(t, b, false)
			}
			time.Sleep(cooldown + 20*time.Millisecond)
			if s := b.State(); s != StateHalfOpen {
				t.Fatalf("after the cooldown: %s, want half-open", s)
			}
			done, err := b.Allow()
			if err != nil {
				t.Fatalf("first probe refused: %v", err)
			}
			if _, err := b.Allow(); !errors.Is(err, ErrTooManyRequests) {
				t.Errorf("second concurrent probe = %v, want ErrTooManyRequests", err)
			}
			done(tt.probe)
			if s := b.State(); s != tt.want {
				t.Errorf("after the probe: %s, want %s", s, tt.want)
			}
		})
	}
}

func TestStateMetric(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	a, b := New("a", testConfig(), m), New("b", testConfig(), m)
	for range 5 {
		call(t, a, false)
	}
	want := `
# HELP ai_gateway_breaker_state Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.
# TYPE ai_gateway_breaker_state gauge
ai_gateway_breaker_state{upstream="a"} 2
ai_gateway_breaker_state{upstream="b"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ai_gateway_breaker_state"); err != nil {
		t.Error(err)
	}
	time.Sleep(cooldown + 20*time.Millisecond)
	b.Close()
	want = `
# HELP ai_gateway_breaker_state Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.
# TYPE ai_gateway_breaker_state gauge
ai_gateway_breaker_state{upstream="a"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ai_gateway_breaker_state"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(m.transitions.WithLabelValues("a", StateOpen)); got != 1 {
		t.Errorf("transitions to open = %v, want 1", got)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(*Config)
		paths []string
	}{
		{"default", func(*Config) {}, nil},
		{"zero", func(c *Config) { *c = Config{FailureRatio: 0.5} }, []string{"consecutiveFailures", "minRequests", "window", "cooldown", "halfOpenMaxRequests"}},
		{"ratio", func(c *Config) { c.FailureRatio = 1.5 }, []string{"failureRatio"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			tt.edit(&cfg)
			errs := validate.New()
			cfg.Validate(errs)
			var got []string
			for _, e := range errs.List() {
				got = append(got, e.Path)
			}
			if strings.Join(got, ",") != strings.Join(tt.paths, ",") {
				t.Errorf("Validate paths = %v, want %v (%v)", got, tt.paths, errs.List())
			}
		})
	}
}

func TestOpeningIsLogged(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	b := New("http://127.0.0.1:9", testConfig(), nil, WithLogger(log))
	for range 4 {
		call(t, b, false)
	}
	if buf.Len() != 0 {
		t.Fatalf("logged before the breaker opened: %s", buf.String())
	}
	call(t, b, false)
	got := buf.String()
	for _, want := range []string{"level=WARN", "circuit breaker opened", "upstream=http://127.0.0.1:9", "cooldown=300ms"} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
}
