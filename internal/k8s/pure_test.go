package k8s

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

func TestSchedulerReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		msg   string
		nodes int
		want  string
	}{
		{"0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 3 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are available: 1 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod.", 3,
			"Insufficient nvidia.com/gpu on all 3 GPU nodes"},
		{"0/4 nodes are available: 2 Insufficient nvidia.com/gpu, 2 node(s) had untolerated taint. preemption: x", 3,
			"Insufficient nvidia.com/gpu on 2 nodes"},
		{"0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient nvidia.com/gpu.", 1,
			"Insufficient cpu on 1 node, Insufficient nvidia.com/gpu on 1 node"},
		{"0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.", 0,
			"1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }"},
	}
	for _, tt := range tests {
		if got := schedulerReason(tt.msg, tt.nodes); got != tt.want {
			t.Errorf("schedulerReason(%q, %d)\n got %q\nwant %q", tt.msg, tt.nodes, got, tt.want)
		}
	}
}

func TestLineDiff(t *testing.T) {
	t.Parallel()
	tests := []struct{ a, b, want string }{
		{"a\nb\n", "a\nb\n", ""},
		{"", "a\n", "+ a\n"},
		{"a\nb\nc\n", "a\nx\nc\n", "  a\n- b\n+ x\n  c\n"},
		{"1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\n4\n5\n6\n7\nX\n", "  5\n  6\n  7\n- 8\n+ X\n"},
	}
	for _, tt := range tests {
		if got := lineDiff(tt.a, tt.b, 3); got != tt.want {
			t.Errorf("lineDiff(%q, %q)\n got %q\nwant %q", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestBlueGreen(t *testing.T) {
	t.Parallel()
	objs, err := Decode([]byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: chat, labels: {app.kubernetes.io/name: chat}}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: chat}}
  template: {metadata: {labels: {app.kubernetes.io/name: chat}}}
---
apiVersion: v1
kind: Service
metadata: {name: chat}
spec: {selector: {app.kubernetes.io/name: chat}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: chat}
spec: {scaleTargetRef: {kind: Deployment, name: chat}}
`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := BlueGreen(objs, "chat", rollout.Green)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range out {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	want := []string{"Deployment/chat-green", "Service/chat", "Service/chat-preview", "HorizontalPodAutoscaler/chat"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("object %d: %s, want %s", i, got[i], want[i])
		}
	}
	sel := out[0].Object["spec"].(map[string]any)["selector"].(map[string]any)["matchLabels"].(map[string]any)
	if sel[LabelColor] != "green" {
		t.Errorf("Deployment selector %v, want colour green", sel)
	}
	if s := out[1].Object["spec"].(map[string]any)["selector"].(map[string]any); s[LabelColor] != "green" {
		t.Errorf("Service selector %v, want colour green", s)
	}
	if n := out[3].Object["spec"].(map[string]any)["scaleTargetRef"].(map[string]any)["name"]; n != "chat-green" {
		t.Errorf("HPA targets %v, want chat-green", n)
	}
	if objs[0].GetName() != "chat" {
		t.Error("BlueGreen changed its input")
	}
}

func TestPrewarmCronJobs(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Name: "chat", Startup: config.Startup{ColdStart: units.Duration(8 * time.Minute)},
		Prewarm: []config.PrewarmEvent{{Name: "singles-day", Start: "2026-11-11T00:00", End: "2026-11-11T02:00", Timezone: "Asia/Shanghai", Replicas: 10}}}
	b, err := PrewarmCronJobs(cfg, "ghcr.io/aideploy/aideploy:v1")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		if o.GetKind() != "CronJob" {
			continue
		}
		spec := o.Object["spec"].(map[string]any)
		args := spec["jobTemplate"].(map[string]any)["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["args"]
		got = append(got, fmt.Sprintf("%s %q %s %v", o.GetName(), spec["schedule"], spec["timeZone"], args))
	}
	want := []string{
		`chat-prewarm-singles-day-start "52 23 10 11 *" Asia/Shanghai [prewarm --target k8s --name chat --replicas 10 --until 2026-11-11T02:00:00+08:00]`,
		`chat-prewarm-singles-day-end "0 2 11 11 *" Asia/Shanghai [prewarm --target k8s --name chat --restore]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
