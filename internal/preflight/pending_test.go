package preflight

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
)

func TestPendingPods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		pods   []PendingPod
		err    error
		want   []Status
		texts  []string // in each result's Measured, in order
		remedy []string // in each result's Remedy, in order
	}{
		{"none", nil, nil, []Status{Pass}, []string{"no pod waits"}, nil},
		{"missing claim and no GPU", []PendingPod{
			{"chat-blue-1", `persistentvolumeclaim "chat-models" not found`},
			{"chat-blue-2", `persistentvolumeclaim "chat-models" not found`},
			{"chat-green-1", "Insufficient nvidia.com/gpu on 3 nodes"},
		}, nil, []Status{Fail, Fail}, []string{ // sorted by reason
			"1 pod(s) Pending: Insufficient nvidia.com/gpu on 3 nodes (chat-green-1)",
			`2 pod(s) Pending: persistentvolumeclaim "chat-models" not found (chat-blue-1, chat-blue-2)`,
		}, []string{"add GPU nodes", "create the claim"}},
		{"taint", []PendingPod{{"chat-blue-1", "1 node(s) had untolerated taint {dedicated: llm}"}}, nil, []Status{Fail},
			[]string{"untolerated taint {dedicated: llm} (chat-blue-1)"}, []string{"toleration"}},
		{"forbidden", nil, errors.New(`pods is forbidden: User "ana" cannot list resource "pods"`), []Status{Warn}, []string{"forbidden"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs := cluster([]string{"v1"})
			rep, err := Run(context.Background(), Options{Run: Groups{Kubernetes: true}, Service: "chat",
				Kubernetes:  func() (kubernetes.Interface, error) { return cs, nil },
				PendingPods: func(context.Context) ([]PendingPod, error) { return tt.pods, tt.err }})
			if err != nil {
				t.Fatal(err)
			}
			var got []Result
			for _, r := range rep.Results {
				if r.ID == "k8s.pending-pods" {
					got = append(got, r)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("results %+v, want %d", got, len(tt.want))
			}
			for i, r := range got {
				if r.Status != tt.want[i] || r.Subject != "chat" || !strings.Contains(r.Measured, tt.texts[i]) {
					t.Errorf("result %d: %+v, want %s with %q", i, r, tt.want[i], tt.texts[i])
				}
				if i < len(tt.remedy) && !strings.Contains(r.Remedy, tt.remedy[i]) {
					t.Errorf("result %d: remedy %q, want %q in it", i, r.Remedy, tt.remedy[i])
				}
			}
		})
	}
}
