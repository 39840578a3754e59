package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// --watch draws at most 5 frames a second however fast the state changes,
// and only when it changed.
func TestWatchStatusRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		changing bool
		tty      bool
		maxDrawn int
		minDrawn int
	}{
		{"changing every read, terminal", true, true, 6, 3},
		{"changing every read, plain", true, false, 6, 3},
		{"unchanged", false, false, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var sb strings.Builder
			n := 0
			err := watchStatus(ctx, &sb, tt.tty, watchInterval, func(context.Context) (string, error) {
				n++
				if !tt.changing {
					return "same\n", nil
				}
				return fmt.Sprintf("frame %d\n", n), nil
			})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("watchStatus: %v", err)
			}
			drawn := strings.Count(sb.String(), "frame ") + strings.Count(sb.String(), "same")
			if drawn > tt.maxDrawn || drawn < tt.minDrawn {
				t.Errorf("drew %d frames in 1s, want %d to %d", drawn, tt.minDrawn, tt.maxDrawn)
			}
			if tt.tty != strings.Contains(sb.String(), "\033[2J") {
				t.Errorf("terminal %v, output %q", tt.tty, sb.String())
			}
		})
	}
}
