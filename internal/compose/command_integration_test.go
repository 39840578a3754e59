package compose

import (
	"context"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
)

// TestIntegrationOperatorCommands carries commands through the real engine,
// as `aideploy rollout promote|abort|pause|resume` leave them for the
// process running a canary: the newest unread command wins and is read once.
func TestIntegrationOperatorCommands(t *testing.T) {
	c := dockerClient(t)
	p := testPlatform(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if got, err := p.TakeCommand(ctx); err != nil || got != nil {
		t.Fatalf("TakeCommand with none left = %v, %v; want nil, nil", got, err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := p.SendCommand(ctx, rollout.Command{Verb: rollout.VerbPause, By: "ana@box", At: at}); err != nil {
		t.Fatal(err)
	}
	if err := p.SendCommand(ctx, rollout.Command{Verb: rollout.VerbAbort, By: "bo@box", At: at.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	got, err := p.TakeCommand(ctx)
	if err != nil || got == nil || got.Verb != rollout.VerbAbort || got.By != "bo@box" || !got.At.Equal(at.Add(time.Second)) {
		t.Fatalf("TakeCommand = %+v, %v; want bo@box's abort", got, err)
	}
	if again, err := p.TakeCommand(ctx); err != nil || again != nil {
		t.Errorf("a command was read twice: %+v, %v", again, err)
	}
}
