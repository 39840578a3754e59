package rollout

import (
	"context"
	"fmt"
	"time"
)

// WatchError says why the watch window switched back.
type WatchError struct {
	Reason string
	Stats  Stats
}

func (e *WatchError) Error() string { return e.Reason }

// watch polls traffic figures through the window after the switch and fails
// as soon as the error rate, p99 or time to first token crosses its threshold.
func (r *Runner) watch(ctx context.Context) (string, error) {
	window := r.Config.Watch.Window.D()
	// At most half a second between reads: every read later than the first
	// failures is that much more traffic on a colour that fails.
	poll := min(max(window/10, 100*time.Millisecond), 500*time.Millisecond)
	start := r.now()
	var last Stats
	var lastErr error
	read := false
	for {
		if err := r.sleep(ctx, poll); err != nil {
			return "", err
		}
		elapsed := min(r.since(start), window)
		st, err := r.Platform.Stats(ctx, elapsed)
		if err != nil {
			lastErr = err
		} else {
			read, last = true, st
			if reason := r.verdict(st, elapsed); reason != "" {
				return "", &WatchError{Reason: reason, Stats: st}
			}
		}
		if elapsed >= window {
			break
		}
	}
	if !read {
		return "", fmt.Errorf("no traffic figures could be read during the watch window: %w", lastErr)
	}
	line := fmt.Sprintf("%d requests, %d errors, p99 %s", last.Requests, last.Errors, round(last.P99))
	if last.TTFTP95 > 0 {
		line += fmt.Sprintf(", TTFT p95 %s", round(last.TTFTP95))
	}
	return line + " over " + window.String(), nil
}

// verdict names the threshold st crosses, or returns "". The error rate
// comes first: a colour that answers errors has its breakers opened by the
// gateway soon after, and the cause is what the operator needs to read.
func (r *Runner) verdict(st Stats, over time.Duration) string {
	w := r.Config.Watch
	if st.Requests > 0 && st.Requests >= int64(w.MinRequests) {
		rate := float64(st.Errors) / float64(st.Requests)
		if rate > w.MaxErrorRate {
			return fmt.Sprintf("error rate %.1f%% (%d of %d requests in %s) is above watch.maxErrorRate %.1f%%",
				rate*100, st.Errors, st.Requests, round(over), w.MaxErrorRate*100)
		}
	}
	if st.Targets > 0 && st.Unhealthy >= st.Targets {
		return fmt.Sprintf("no target of the new colour takes traffic (%d of %d unhealthy or ejected by the gateway)", st.Unhealthy, st.Targets)
	}
	if w.MaxP99 > 0 && st.P99 > w.MaxP99.D() {
		return fmt.Sprintf("p99 latency %s (over %s) is above watch.maxP99 %s", round(st.P99), round(over), w.MaxP99)
	}
	if w.MaxTTFT > 0 && st.TTFTP95 > w.MaxTTFT.D() {
		return fmt.Sprintf("time to first token p95 %s (over %s) is above watch.maxTTFT %s", round(st.TTFTP95), round(over), w.MaxTTFT)
	}
	return ""
}
