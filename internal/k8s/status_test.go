package k8s

import (
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
)

func TestPrintStatus(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 12, 24, 9, 0, 0, 0, time.UTC)
	due := since.Add(3*time.Hour + time.Minute)
	v := StatusView{
		Service: "chat", Namespace: "serving", Active: rollout.Green, Preview: rollout.Green,
		Colors: []ColorView{
			{Color: rollout.Blue, Revision: 1, Image: "chat:1", Desired: 0},
			{Color: rollout.Green, Revision: 2, Image: "chat:2", Desired: 2, Ready: 1, ReplicaSets: []RSView{{
				Name: "chat-green-7d9f",
				Pods: []PodView{
					{Name: "chat-green-7d9f-a", Status: "Running", Ready: true, GPUs: 1, Node: "gpu-node-0"},
					{Name: "chat-green-7d9f-b", Status: "Unschedulable", GPUs: 1, Reason: `persistentvolumeclaim "chat-models" not found`},
				},
			}}},
		},
		Traffic:  &TrafficView{Mode: TrafficGateway, Gateway: "chat-gateway", Pods: 3, Ready: 2},
		HPA:      &HPAView{Target: "chat-green", Min: 10, Max: 20, Current: 2, Desired: 10},
		Prewarm:  &PrewarmRecord{MinReplicas: 2, MaxReplicas: 20, Replicas: 10, Since: since, Until: since.Add(3 * time.Hour)},
		Restorer: "chat-prewarm-restore", RestoreAt: &due,
		Last: &rollout.Journal{Op: rollout.OpRollout, Status: rollout.StatusSucceeded, To: rollout.Deployment{Color: rollout.Green, Revision: 2, Image: "chat:2"}},
	}
	var sb strings.Builder
	PrintStatus(&sb, v)
	want := `Name:       chat
Namespace:  serving
Active:     green
Preview:    green
Traffic:    gateway (3 pods, 2 ready)
HPA:        chat-green, floor 10, ceiling 20, current 2, desired 10
Prewarm:    floor 10 since 2026-12-24 09:00 UTC, until 2026-12-24 12:00 UTC (then 2–20); CronJob chat-prewarm-restore restores it at 2026-12-24 12:01 UTC
Last:       rollout to green r2 (chat:2) succeeded

chat
├── blue r1 chat:1  0/0 ready (scaled down: a rollback to it is a cold start)
└── green r2 chat:2  1/2 ready (active)
    └── ReplicaSet chat-green-7d9f
        ├── ✔ chat-green-7d9f-a Running  gpu:1 node:gpu-node-0
        └── ✖ chat-green-7d9f-b Unschedulable  gpu:1  persistentvolumeclaim "chat-models" not found
`
	if got := sb.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// A retired colour kept warm for rollback says until when.
func TestPrintStatusKeptWarm(t *testing.T) {
	t.Parallel()
	until := time.Date(2026, 12, 24, 9, 30, 0, 0, time.UTC)
	v := StatusView{Service: "chat", Active: rollout.Green, Colors: []ColorView{
		{Color: rollout.Blue, Revision: 1, Image: "chat:1", Desired: 2, Ready: 2, WarmUntil: &until},
		{Color: rollout.Green, Revision: 2, Image: "chat:2", Desired: 2, Ready: 2},
	}}
	var sb strings.Builder
	PrintStatus(&sb, v)
	if want := "├── blue r1 chat:1  2/2 ready (kept warm for rollback until 2026-12-24 09:30 UTC)\n"; !strings.Contains(sb.String(), want) {
		t.Errorf("got:\n%s\nwant a line %q", sb.String(), want)
	}
}

// A prewarm with an end and nothing to restore it says so; one restored by a
// scheduled event's CronJob names it.
func TestPrintStatusRestorer(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 12, 24, 9, 0, 0, 0, time.UTC)
	v := StatusView{Service: "chat", Prewarm: &PrewarmRecord{MinReplicas: 2, MaxReplicas: 20, Replicas: 10, Since: since, Until: since.Add(time.Hour)}}
	for _, tt := range []struct {
		restorer, want string
	}{
		{"", "; nothing restores it by itself: run aideploy prewarm --restore\n"},
		{"chat-prewarm-launch-end", "; CronJob chat-prewarm-launch-end restores it\n"},
	} {
		v.Restorer = tt.restorer
		var sb strings.Builder
		PrintStatus(&sb, v)
		if !strings.Contains(sb.String(), "(then 2–20)"+tt.want) {
			t.Errorf("restorer %q:\n%s", tt.restorer, sb.String())
		}
	}
}
