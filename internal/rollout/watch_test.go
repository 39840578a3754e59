package rollout

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The watch's success line carries the last figures read: requests, errors,
// p99 and, when the platform measures it, time to first token p95.
func TestWatchLine(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		stats Stats
		want  string
	}{
		{"with TTFT", Stats{Requests: 500, Errors: 1, P99: 11 * time.Millisecond, TTFTP95: 40*time.Millisecond + 300*time.Microsecond},
			"500 requests, 1 errors, p99 11ms, TTFT p95 40ms over 3s"},
		{"without TTFT", Stats{Requests: 500, P99: 11 * time.Millisecond}, "500 requests, 0 errors, p99 11ms over 3s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.strict = false
			r, _ := newRunner(f, 1)
			r.Platform = statsPlatform{fakePlatform: f, stats: tt.stats}
			got, err := r.watch(context.Background())
			if err != nil || got != tt.want {
				t.Errorf("watch = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// A TTFT above watch.maxTTFT fails the watch with a WatchError naming the figure.
func TestWatchMaxTTFT(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.strict = false
	r, _ := newRunner(f, 1)
	st := Stats{Requests: 50, P99: 1200 * time.Millisecond, TTFTP95: 1100 * time.Millisecond}
	r.Platform = statsPlatform{fakePlatform: f, stats: st}
	_, err := r.watch(context.Background())
	var we *WatchError
	if !errors.As(err, &we) || we.Stats != st || we.Reason != "time to first token p95 1.1s (over 300ms) is above watch.maxTTFT 1s" {
		t.Fatalf("watch = %v, want a WatchError on maxTTFT", err)
	}
	// Without the threshold the same figures pass.
	r.Config.Watch.MaxTTFT = 0
	if _, err := r.watch(context.Background()); err != nil {
		t.Errorf("watch without maxTTFT = %v", err)
	}
}

// statsPlatform answers every Stats call with the same figures.
type statsPlatform struct {
	*fakePlatform
	stats Stats
}

func (s statsPlatform) Stats(context.Context, time.Duration) (Stats, error) { return s.stats, nil }
