package preflight

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func TestReportFailed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		statuses      []Status
		plain, strict bool
	}{
		{nil, false, false},
		{[]Status{Pass, Skip}, false, false},
		{[]Status{Pass, Warn}, false, true},
		{[]Status{Fail, Pass}, true, true},
	}
	for _, tt := range tests {
		var rs []Result
		for _, s := range tt.statuses {
			rs = append(rs, Result{ID: "x", Status: s})
		}
		rep := newReport(rs, 0)
		if rep.Failed(false) != tt.plain || rep.Failed(true) != tt.strict {
			t.Errorf("%v: Failed = %v/%v, want %v/%v", tt.statuses, rep.Failed(false), rep.Failed(true), tt.plain, tt.strict)
		}
	}
}

func TestRunChecksKeepsOrder(t *testing.T) {
	t.Parallel()
	var checks []check
	for i := range 20 {
		checks = append(checks, check{id: "c", subject: string(rune('a' + i)), run: func(context.Context) []Result {
			time.Sleep(time.Duration(20-i) * time.Millisecond)
			return []Result{pass("c", string(rune('a'+i)), "", "")}
		}})
	}
	got := runChecks(context.Background(), time.Second, checks)
	var order strings.Builder
	for _, r := range got {
		order.WriteString(r.Subject)
	}
	if order.String() != "abcdefghijklmnopqrst" {
		t.Errorf("order %s", order.String())
	}
}

func TestRunOneRecoversAndTimesOut(t *testing.T) {
	t.Parallel()
	got := runOne(context.Background(), time.Second, check{id: "p", subject: "s", run: func(context.Context) []Result { panic("boom") }})
	if got[0].Status != Fail || !strings.Contains(got[0].Measured, "boom") {
		t.Errorf("panic: %+v", got)
	}
	block := make(chan struct{})
	defer close(block)
	got = runOne(context.Background(), 10*time.Millisecond, check{id: "h", subject: "s", run: func(context.Context) []Result {
		<-block
		return nil
	}})
	if got[0].Status != Fail || !strings.Contains(got[0].Measured, "no answer within 10ms") {
		t.Errorf("hang: %+v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(ctx, Options{Run: Groups{Kubernetes: true}})
	if err == nil || len(rep.Results) == 0 {
		t.Errorf("cancelled run: %v %+v", err, rep)
	}
}

func TestRunNothingSelected(t *testing.T) {
	t.Parallel()
	rep, err := Run(context.Background(), Options{})
	if err != nil || len(rep.Results) != 0 || rep.Results == nil || rep.SchemaVersion != SchemaVersion {
		t.Errorf("got %+v, %v", rep, err)
	}
}

func TestRunLintGroup(t *testing.T) {
	t.Parallel()
	rep, err := Run(context.Background(), Options{ManifestsDir: "testdata/lint/clean", Req: seedOptions.Req, AvailableGPUs: 4})
	if err != nil || len(rep.Results) != 1 || rep.Results[0].ID != "lint.manifests" {
		t.Errorf("got %+v, %v", rep.Results, err)
	}
}
