package rollout

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestHealthProgressString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    HealthProgress
		want string
	}{
		{HealthProgress{HealthCount{Want: 3, Ready: 2, Loading: 1}, 8*time.Minute + 12*time.Second + 400*time.Millisecond},
			"2/3 healthy, 1 loading, budget 8m12s left"},
		{HealthProgress{HealthCount{Want: 2, Loading: 1, Waiting: 1}, 90 * time.Second},
			"0/2 healthy, 1 loading, 1 waiting for a node, budget 1m30s left"},
		{HealthProgress{HealthCount{Want: 1, Ready: 1}, -time.Second}, "1/1 healthy, budget 0s left"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// countingFake answers CountHealthy from a script and lets WaitHealthy
// return only once the script has been read to its end.
type countingFake struct {
	*fakePlatform
	mu     sync.Mutex
	counts []HealthCount
	read   int
	served chan struct{}
}

func (c *countingFake) CountHealthy(context.Context, Deployment) (HealthCount, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.counts[min(c.read, len(c.counts)-1)]
	c.read++
	if c.read == len(c.counts) {
		close(c.served)
	}
	return n, nil
}

func (c *countingFake) WaitHealthy(ctx context.Context, d Deployment, budget time.Duration) error {
	if err := c.fakePlatform.WaitHealthy(ctx, d, budget); err != nil {
		return err
	}
	select {
	case <-c.served:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestHealthStepReportsBudgetLeft checks the health step's progress lines:
// one per change of the count, each with the startup budget still left.
func TestHealthStepReportsBudgetLeft(t *testing.T) {
	t.Parallel()
	f := newFake(t).deployed(blue1)
	f.strict = false
	c := &countingFake{fakePlatform: f, served: make(chan struct{}), counts: []HealthCount{
		{Want: 3, Loading: 3}, {Want: 3, Loading: 3}, {Want: 3, Ready: 1, Loading: 2}, {Want: 3, Ready: 3},
	}}
	r, events := newRunner(f, 1)
	r.Platform = c
	if _, err := r.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range *events {
		if e.Kind == EventProgress {
			if e.Step != StepHealthy {
				t.Errorf("progress on step %s, want %s", e.Step, StepHealthy)
			}
			got = append(got, e.Message)
		}
	}
	// The fake clock moves only when the reporter sleeps between polls (2s).
	want := []string{
		"0/3 healthy, 3 loading, budget 10m0s left",
		"1/3 healthy, 2 loading, budget 9m56s left",
		"3/3 healthy, budget 9m54s left",
	}
	if len(got) < len(want) || !reflect.DeepEqual(got[:len(want)], want) {
		t.Errorf("progress lines\n got %q\nwant %q first", got, want)
	}
}
