package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/rollout"
)

func TestRolloutVerbFlags(t *testing.T) {
	t.Parallel()
	for _, verb := range []rollout.Verb{rollout.VerbPromote, rollout.VerbAbort, rollout.VerbPause, rollout.VerbResume} {
		newCmd := func(f *Factory, runF func(context.Context, *verbOptions) error) *cobra.Command {
			return newCmdRolloutVerb(f, verb, runF)
		}
		o := parseFlags(t, newCmd, []string{"--wait", "5s"}, "")
		if o.Verb != verb || o.Wait != 5*time.Second {
			t.Errorf("%s parsed as %+v", verb, o)
		}
		parseFlags(t, newCmd, []string{"--wait", "-1s"}, "--wait (-1s) must not be negative")
		parseFlags(t, newCmd, []string{"now"}, "takes no arguments")
	}
	// The verbs hang under `aideploy rollout`.
	cmd := newCmdRollout(NewFactory(nil), nil)
	for _, v := range []string{"promote", "abort", "pause", "resume"} {
		if c, _, err := cmd.Find([]string{v}); err != nil || c.Name() != v {
			t.Errorf("rollout %s: %v", v, err)
		}
	}
}

func TestObeyed(t *testing.T) {
	t.Parallel()
	running := rollout.Journal{Status: rollout.StatusRunning, Progress: &rollout.Progress{Weight: 5}}
	paused := running
	paused.Progress = &rollout.Progress{Weight: 5, Paused: true}
	switched := running
	switched.Switched = true
	undone := running
	undone.Status = rollout.StatusRolledBack
	tests := []struct {
		j    rollout.Journal
		verb rollout.Verb
		want bool
	}{
		{running, rollout.VerbAbort, false}, {undone, rollout.VerbAbort, true},
		{running, rollout.VerbPromote, false}, {switched, rollout.VerbPromote, true},
		{running, rollout.VerbPause, false}, {paused, rollout.VerbPause, true},
		{paused, rollout.VerbResume, false}, {running, rollout.VerbResume, true},
	}
	for _, tt := range tests {
		if got := obeyed(tt.j, tt.verb); got != tt.want {
			t.Errorf("obeyed(%s, paused %v, switched %v, status %s) = %v, want %v", tt.verb, tt.j.Progress.Paused, tt.j.Switched, tt.j.Status, got, tt.want)
		}
	}
}

// figures is a platform that only measures each colour, for canaryStatus.
type figures struct {
	rollout.Platform
	groups []rollout.GroupStats
	window time.Duration
}

func (f *figures) Join(context.Context, rollout.Deployment, rollout.Deployment) error { return nil }
func (f *figures) SetSplit(context.Context, map[rollout.Color]int, string, rollout.Color) error {
	return nil
}
func (f *figures) SetShadow(context.Context, rollout.Color, int) error                { return nil }
func (f *figures) Keep(context.Context, rollout.Deployment, rollout.Deployment) error { return nil }
func (f *figures) GroupStats(_ context.Context, w time.Duration) ([]rollout.GroupStats, error) {
	f.window = w
	return f.groups, nil
}

func TestCanaryStatus(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	from := rollout.Deployment{Color: rollout.Blue, Revision: 1, Image: "m:v1"}
	j := &rollout.Journal{Strategy: rollout.StrategyCanary, From: &from, To: rollout.Deployment{Color: rollout.Green, Revision: 2, Image: "m:v2"},
		Status: rollout.StatusRunning, Updated: t0, Progress: &rollout.Progress{Index: 1, Steps: 3, Weight: 25}}
	good := rollout.GroupStats{Color: rollout.Blue, Requests: 300, TTFTP95: 200 * time.Millisecond, OutputTokensP50: 100}
	slow := rollout.GroupStats{Color: rollout.Green, Requests: 100, TTFTP95: 400 * time.Millisecond, OutputTokensP50: 100}
	p := &figures{groups: []rollout.GroupStats{good, slow}}
	v := canaryStatus(context.Background(), p, rollout.Default(), j, t0.Add(2*time.Minute))
	if v == nil || v.Step != 2 || v.Weights["green"] != 25 || v.Weights["blue"] != 75 || p.window != 2*time.Minute {
		t.Fatalf("view %+v, window %s", v, p.window)
	}
	if v.Verdict.Outcome != rollout.OutcomeFail || v.Verdict.FailedMetric() != "ttftP95" {
		t.Errorf("verdict %s %q", v.Verdict.Outcome, v.Verdict.FailedMetric())
	}
	var b bytes.Buffer
	printCanary(&b, v)
	for _, want := range []string{"canary step 2/3: blue 75%, green 25%, running", "ttftP95", "400ms", "200ms", "≤ 240ms (1.2× baseline)", "no"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	if canaryStatus(context.Background(), p, rollout.Default(), &rollout.Journal{From: &from}, t0) != nil {
		t.Error("a blue/green journal got a canary view")
	}
}
