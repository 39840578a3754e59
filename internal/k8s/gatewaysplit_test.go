package k8s

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
)

// Two gateway pods' figures: counts add up, the p95s, rates and lengths
// weigh by requests (a pod that saw none of a group says nothing of it), a
// p95's lower bound goes when one pod with requests lacks it (blue's TPOT),
// and a group's mirror stays apart from its live traffic.
func TestMergeGroupStats(t *testing.T) {
	t.Parallel()
	a := adminapi.Stats{ByGroup: []adminapi.GroupStats{
		{Group: "blue", Requests: 300, Errors: 3, TTFTP95Seconds: 0.050, TTFTP95LowSeconds: 0.040, TPOTP95Seconds: 0.010, TPOTP95LowSeconds: 0.008, TokensPerSecond: 100, OutputTokensP50: 10, OutputTokensMean: 12, FinishReasons: map[string]int64{"stop": 290, "length": 10}},
		{Group: "green", Requests: 100, TTFTP95Seconds: 0.080, TokensPerSecond: 50, OutputTokensP50: 20, OutputTokensMean: 20},
		{Group: "green", Shadow: true, Requests: 10, Dropped: 2, TTFTP95Seconds: 0.5},
	}}
	b := adminapi.Stats{ByGroup: []adminapi.GroupStats{
		{Group: "blue", Requests: 100, Errors: 1, TTFTP95Seconds: 0.070, TTFTP95LowSeconds: 0.060, TPOTP95Seconds: 0.005, TokensPerSecond: 60, OutputTokensP50: 14, OutputTokensMean: 16, FinishReasons: map[string]int64{"stop": 100}},
		{Group: "green", TTFTP95Seconds: 9}, // no request: its p95 says nothing
	}}
	got := MergeGroupStats([]adminapi.Stats{a, b})
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	want := []rollout.GroupStats{
		{Color: rollout.Blue, Requests: 400, Errors: 4, TTFTP95: ms(55), TTFTP95Low: ms(45), TPOTP95: ms(8.75), TokensPerSecond: 90, OutputTokensP50: 11, OutputTokensMean: 13,
			FinishReasons: map[string]int64{"stop": 390, "length": 10}},
		{Color: rollout.Green, Requests: 100, TTFTP95: ms(80), TokensPerSecond: 50, OutputTokensP50: 20, OutputTokensMean: 20},
		{Color: rollout.Green, Shadow: true, Requests: 10, Dropped: 2, TTFTP95: ms(500)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged:\n%+v\nwant\n%+v", got, want)
	}
}

// Without the gateway every split call refuses, naming the way out, before it
// reaches anything; with gateway.enabled but no gateway applied, it says so.
func TestSplitRefusedWithoutGateway(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := gatewayConfig(t)
	p := NewPlatform(&Client{Namespace: "serving", Clientset: fake.NewClientset()}, Options{Config: cfg})
	calls := map[string]func() error{
		"Join": func() error {
			return p.Join(ctx, rollout.Deployment{Color: rollout.Green}, rollout.Deployment{Color: rollout.Blue})
		},
		"SetSplit": func() error {
			return p.SetSplit(ctx, map[rollout.Color]int{rollout.Blue: 90, rollout.Green: 10}, "", rollout.Blue)
		},
		"SetShadow": func() error { return p.SetShadow(ctx, rollout.Green, 10) },
		"Keep": func() error {
			return p.Keep(ctx, rollout.Deployment{Color: rollout.Blue}, rollout.Deployment{Color: rollout.Green})
		},
		"GroupStats":   func() error { _, err := p.GroupStats(ctx, time.Second); return err },
		"SplitRefusal": func() error { return p.SplitRefusal(ctx) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, errSelectorSplit) || !strings.Contains(err.Error(), "no Deployment "+GatewayName(cfg.Name)) {
			t.Errorf("%s without the gateway's Deployment: %v, want the refusal naming the missing Deployment", name, err)
		}
	}

	off := *cfg
	no := false
	off.Gateway.Enabled = &no
	p = NewPlatform(&Client{Namespace: "serving", Clientset: fake.NewClientset()}, Options{Config: &off})
	if err := p.SplitRefusal(ctx); !errors.Is(err, errSelectorSplit) || !strings.Contains(err.Error(), "--strategy bluegreen") {
		t.Errorf("SplitRefusal with gateway.enabled: false = %v, want the refusal", err)
	}
	if err := p.SetSplit(ctx, map[rollout.Color]int{rollout.Blue: 100}, "", rollout.Blue); !errors.Is(err, errSelectorSplit) {
		t.Errorf("SetSplit with gateway.enabled: false = %v, want the refusal", err)
	}
}

// Operator commands: the last one sent is taken once, then none; the history
// written meanwhile leaves an unread command in place.
func TestCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := NewPlatform(&Client{Namespace: "serving", Clientset: fake.NewClientset()}, Options{Config: gatewayConfig(t)})
	if c, err := p.TakeCommand(ctx); err != nil || c != nil {
		t.Fatalf("TakeCommand with no ConfigMap = %v, %v; want nil, nil", c, err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, v := range []rollout.Verb{rollout.VerbPause, rollout.VerbAbort} {
		if err := p.SendCommand(ctx, rollout.Command{Verb: v, By: "ops", At: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Record(ctx, rollout.Journal{ID: "j1", Started: at}); err != nil {
		t.Fatal(err)
	}
	c, err := p.TakeCommand(ctx)
	if err != nil || c == nil || c.Verb != rollout.VerbAbort || c.By != "ops" || !c.At.Equal(at) {
		t.Fatalf("TakeCommand = %+v, %v; want the abort, the last command sent", c, err)
	}
	if c, err := p.TakeCommand(ctx); err != nil || c != nil {
		t.Errorf("second TakeCommand = %+v, %v; want nil, nil", c, err)
	}
	_, js, err := p.journals(ctx)
	if err != nil || len(js) != 1 || js[0].ID != "j1" {
		t.Errorf("history after the commands = %+v, %v; want j1 kept", js, err)
	}
}
