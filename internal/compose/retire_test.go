package compose

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/aideploy/aideploy/internal/rollout"
)

// freezeFails is an engine whose cgroup freezer fails: pausing a container
// answers an error, stopping it works.
type freezeFails struct {
	client.APIClient // nil: a call not overridden here panics
	mu               sync.Mutex
	paused, stopped  []string
}

func (f *freezeFails) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return []container.Summary{{ID: "c1", Names: []string{"/chat-blue-r1-1"}, State: "running"}}, nil
}

func (f *freezeFails) ContainerPause(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = append(f.paused, id)
	return errors.New("OCI runtime pause failed: unable to freeze: unknown")
}

func (f *freezeFails) ContainerStop(_ context.Context, id string, _ container.StopOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = append(f.stopped, id)
	return nil
}

// A replica the engine cannot pause is stopped instead: retiring the old
// colour must not fail a rollout whose new colour already serves.
func TestStopFallsBackToStopWhenPauseFails(t *testing.T) {
	t.Parallel()
	f := &freezeFails{}
	p := New(f, Options{Service: "chat", Rollout: rollout.Config{RetireMode: rollout.RetirePause}})
	if !p.pauseOnRetire() {
		t.Fatal("retireMode pause does not pause")
	}
	if err := p.Stop(t.Context(), rollout.Deployment{Color: rollout.Blue, Revision: 1}); err != nil {
		t.Fatalf("retiring a replica the engine cannot freeze: %v", err)
	}
	if len(f.paused) != 1 || len(f.stopped) != 1 || f.stopped[0] != "c1" {
		t.Fatalf("paused %v, stopped %v: want one pause tried, then one stop", f.paused, f.stopped)
	}
}
