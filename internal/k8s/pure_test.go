package k8s

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
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
	want := []string{"Deployment/chat-green", "Service/chat", "Service/chat-preview", "HorizontalPodAutoscaler/chat", "ScaledObject/chat"}
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
	for _, o := range out[3:] {
		if n := o.Object["spec"].(map[string]any)["scaleTargetRef"].(map[string]any)["name"]; n != "chat-green" {
			t.Errorf("%s targets %v, want chat-green", o.GetKind(), n)
		}
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
		got = append(got, fmt.Sprintf("%s %q %s deadline %vs %v", o.GetName(), spec["schedule"], spec["timeZone"], spec["startingDeadlineSeconds"], args))
	}
	want := []string{
		// The raise may run late while the event lasts (8m + 2h), the restore for a day.
		`chat-prewarm-singles-day-start "52 23 10 11 *" Asia/Shanghai deadline 7680s [prewarm --target k8s --name chat --replicas 10 --until 2026-11-11T02:00:00+08:00 --schedule-restore=false]`,
		`chat-prewarm-singles-day-end "0 2 11 11 *" Asia/Shanghai deadline 86400s [prewarm --target k8s --name chat --restore]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The diff of an apply sees only the fields aideploy owns: another manager's
// annotation is left out, list items are picked by their keys, and an owned
// field's whole value is kept.
func TestProjectOwnedFields(t *testing.T) {
	t.Parallel()
	var obj map[string]any
	if err := json.Unmarshal([]byte(`{
		"metadata": {"labels": {"app": "m"}, "annotations": {"deployment.kubernetes.io/revision": "1"}},
		"spec": {"replicas": 2, "template": {"spec": {"containers": [
			{"name": "model", "image": "m:1", "ports": [{"containerPort": 8000, "protocol": "TCP"}], "terminationMessagePath": "/dev/termination-log"},
			{"name": "sidecar", "image": "s:1"}
		]}}}
	}`), &obj); err != nil {
		t.Fatal(err)
	}
	var set map[string]any
	if err := json.Unmarshal([]byte(`{
		"f:metadata": {"f:labels": {"f:app": {}}},
		"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
			"k:{\"name\":\"model\"}": {".": {}, "f:image": {}, "f:name": {}, "f:ports": {
				"k:{\"containerPort\":8000,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}
			}}
		}}}}
	}`), &set); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(project(obj, set))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"labels":{"app":"m"}},"spec":{"replicas":2,"template":{"spec":{"containers":[{"image":"m:1","name":"model","ports":[{"containerPort":8000}]}]}}}}`
	if string(got) != want {
		t.Errorf("project\n got %s\nwant %s", got, want)
	}
	merged := mergeFields(map[string]any{"f:spec": map[string]any{"f:paused": map[string]any{}}}, set)
	if _, ok := merged["f:spec"].(map[string]any)["f:paused"]; !ok {
		t.Errorf("mergeFields lost a field only the first set has: %v", merged)
	}
}

// The race CI met: the deployment controller wrote its revision annotation
// between aideploy's read and its apply. That is no change of aideploy's; a
// changed image is.
func TestOwnedDiffIgnoresOtherManagers(t *testing.T) {
	t.Parallel()
	obj := func(image string, annotated bool) *unstructured.Unstructured {
		o := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "m-blue", "labels": map[string]any{"app": "m"}},
			"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
				"containers": []any{map[string]any{"name": "model", "image": image}},
			}}},
		}}
		fields := []metav1.ManagedFieldsEntry{{
			Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply,
			FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"model\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`)},
		}}
		if annotated {
			o.SetAnnotations(map[string]string{"deployment.kubernetes.io/revision": "1"})
			fields = append(fields, metav1.ManagedFieldsEntry{
				Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate,
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{".":{},"f:deployment.kubernetes.io/revision":{}}}}`)},
			})
		}
		o.SetManagedFields(fields)
		return o
	}
	diff, err := ownedDiff(obj("m:1", false), obj("m:1", true))
	if err != nil || diff != "" {
		t.Errorf("controller's annotation showed as a change: %q (err %v)", diff, err)
	}
	diff, err = ownedDiff(obj("m:1", false), obj("m:2", true))
	if err != nil || !strings.Contains(diff, "- ") || !strings.Contains(diff, "+ ") || !strings.Contains(diff, "m:2") || strings.Contains(diff, "revision") {
		t.Errorf("image change diff:\n%s (err %v)", diff, err)
	}
	created, err := ownedDiff(nil, obj("m:1", true))
	if err != nil || !strings.Contains(created, "+ ") || !strings.Contains(created, "name: m-blue") {
		t.Errorf("created diff:\n%s (err %v)", created, err)
	}
}
