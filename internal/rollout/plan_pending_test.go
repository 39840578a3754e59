package rollout

import (
	"context"
	"strings"
	"testing"
)

// TestPlanDescribesTheInterruptedRun kills a rollout to model:v2 (green r2)
// at several steps, then checks that the plan a second run prints first (and
// so --dry-run and the confirmation prompt) names what that run then does,
// and that the run itself does it.
func TestPlanDescribesTheInterruptedRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kill     string
		req      Request
		want     string // the plan's summary
		wantStep string // the first thing the run reports after the lock
	}{
		{"WaitHealthy", Request{Op: OpRollout, Image: "model:v2"},
			"resume the interrupted rollout to green r2 (model:v2) at step healthy",
			"resuming the interrupted rollout to green r2 (model:v2) at step healthy"},
		{"WaitHealthy", Request{Op: OpRollout},
			"resume the interrupted rollout to green r2 (model:v2) at step healthy",
			"resuming the interrupted rollout to green r2 (model:v2) at step healthy"},
		{"WaitHealthy", Request{Op: OpRollout, Image: "model:v3"},
			"undo the interrupted rollout to green r2 (model:v2), then rollout from blue r1 (model:v1) to green r3 (model:v3)",
			"undoing the interrupted rollout to green r2 (model:v2)"},
		{"Drain", Request{Op: OpRollout, Image: "model:v3"},
			"finish the interrupted rollout to green r2 (model:v2) (traffic may already be on it), then roll out model:v3 from it",
			"finishing the interrupted rollout to green r2 (model:v2) (traffic may already be on it) before the new request"},
	}
	for _, tt := range tests {
		t.Run(tt.kill+"/"+tt.req.Image, func(t *testing.T) {
			t.Parallel()
			f := newFake(t).deployed(blue1)
			f.strict, f.killAt = false, tt.kill
			r, _ := newRunner(f, 1)
			func() {
				defer func() {
					if p := recover(); p != errKilled {
						t.Fatalf("first run did not die at %s: %v", tt.kill, p)
					}
				}()
				_, _ = r.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2"})
			}()
			f.dead, f.killAt = false, ""

			dry := tt.req
			dry.DryRun = true
			r2, _ := newRunner(f, 2)
			res, err := r2.Run(context.Background(), dry)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if res.Summary != tt.want {
				t.Errorf("dry-run plan\n got %q\nwant %q", res.Summary, tt.want)
			}

			r3, events := newRunner(f, 3)
			if _, err := r3.Run(context.Background(), tt.req); err != nil {
				t.Fatalf("second run: %v", err)
			}
			var plans []string
			for _, e := range *events {
				if e.Step == StepPlan {
					plans = append(plans, e.Message)
				}
			}
			if len(plans) < 2 || plans[0] != tt.want || !strings.HasPrefix(plans[1], tt.wantStep) {
				t.Errorf("plan lines %q, want %q then one starting %q", plans, tt.want, tt.wantStep)
			}
		})
	}
}
