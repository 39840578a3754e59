package rollout

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestRunSurge(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	blue3 := Deployment{Color: Blue, Revision: 1, Image: "model:v1", Replicas: 3}
	batch := func(n int, last string) []expect {
		x := "green r2 x" + string(rune('0'+n))
		return seq("Create "+x, "WaitHealthy "+x, "Warmup "+x, last)
	}
	undo3 := seq("Switch blue r1", "Remove green r2", "Create blue r1 x3", "WaitHealthy blue r1 x3", "Switch blue r1", "Unlock")
	tests := []struct {
		name       string
		from       Deployment
		surge      int
		expect     []expect
		wantErr    string
		wantStatus Status
		wantActive int
		wantBlue   int // replicas of blue r1 running afterwards
	}{
		{
			name: "one replica at a time", from: blue3, surge: 1,
			expect: seq("Lock", "Check green r2", batch(1, "SwitchPart green r2 1"), batch(2, "SwitchPart green r2 2"),
				batch(3, "Switch green r2"), healthy(10), "Drain blue r1", "Stop blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 2,
		},
		{
			name: "two at a time, the last batch smaller", from: blue3, surge: 2,
			expect: seq("Lock", "Check green r2", batch(2, "SwitchPart green r2 2"),
				batch(3, "Switch green r2"), healthy(10), "Drain blue r1", "Stop blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 2,
		},
		{
			name: "second batch never healthy", from: blue3, surge: 1,
			expect: seq("Lock", "Check green r2", batch(1, "SwitchPart green r2 1"),
				"Create green r2 x2", expect{call: "WaitHealthy green r2 x2", err: boom}, undo3),
			wantErr:    "batch 2 of 3 (replica 2): waiting until healthy: boom",
			wantStatus: StatusRolledBack, wantActive: 1, wantBlue: 3,
		},
		{
			name: "second swap fails", from: blue3, surge: 1,
			expect: seq("Lock", "Check green r2", batch(1, "SwitchPart green r2 1"),
				"Create green r2 x2", "WaitHealthy green r2 x2", "Warmup green r2 x2", expect{call: "SwitchPart green r2 2", err: boom}, undo3),
			wantErr:    "batch 2 of 3 (replica 2): switching: boom",
			wantStatus: StatusRolledBack, wantActive: 1, wantBlue: 3,
		},
		{
			name: "last batch fails its warm-up", from: blue3, surge: 2,
			expect: seq("Lock", "Check green r2", batch(2, "SwitchPart green r2 2"),
				"Create green r2 x3", "WaitHealthy green r2 x3", expect{call: "Warmup green r2 x3", err: boom}, undo3),
			wantErr:    "blue r1 (model:v1) still serves all traffic",
			wantStatus: StatusRolledBack, wantActive: 1, wantBlue: 3,
		},
		{
			name: "surge as large as the fleet is a plain blue/green", from: blue3, surge: 3,
			expect:     seq("Lock", "Check green r2", batch(3, "Switch green r2"), healthy(10), "Drain blue r1", "Stop blue r1", "Unlock"),
			wantStatus: StatusSucceeded, wantActive: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.expect...).deployed(tt.from)
			f.sizes = true
			r, _ := newRunner(f, 1)
			r.Config.Surge = tt.surge
			_, err := r.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2"})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Run error = %v, want one containing %q", err, tt.wantErr)
			}
			st, _ := f.Current(context.Background())
			if j := st.Journals[0]; j.Status != tt.wantStatus {
				t.Errorf("journal status = %s, want %s (reason %q)", j.Status, tt.wantStatus, j.Reason)
			}
			if a := st.Active(); a == nil || a.Revision != tt.wantActive {
				t.Errorf("active = %v, want revision %d", a, tt.wantActive)
			}
			want := []int{tt.wantActive}
			if got := f.running(); !reflect.DeepEqual(got, want) {
				t.Errorf("running revisions = %v, want %v", got, want)
			}
			if in, ok := st.Instance(1); tt.wantBlue > 0 && (!ok || in.Running != tt.wantBlue) {
				t.Errorf("blue r1 runs %d replica(s), want %d", in.Running, tt.wantBlue)
			}
		})
	}
}

// plainPlatform hides the fake's SwitchPart, as a target without surge support would.
type plainPlatform struct{ Platform }

func TestRunSurgeRefusedWhereTheTargetCannot(t *testing.T) {
	t.Parallel()
	f := newFake(t).deployed(blue1)
	r, _ := newRunner(f, 1)
	r.Platform = plainPlatform{f}
	r.Config.Surge = 1
	_, err := r.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2"})
	if err == nil || !strings.Contains(err.Error(), "cannot replace replicas in batches") {
		t.Fatalf("Run = %v, want a refusal naming rollout.surge", err)
	}
	if got := f.running(); !reflect.DeepEqual(got, []int{1}) {
		t.Errorf("running revisions = %v, want [1]", got)
	}
}
