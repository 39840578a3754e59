package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aideploy/aideploy/internal/k8s"
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
	// Neither version reports the time per output token: no limit of 0s.
	if strings.Contains(b.String(), "≤ 0s") || !strings.Contains(b.String(), "n/a: the serving version reported no tpotP95") {
		t.Errorf("a check neither version could make shows a limit, or no reason:\n%s", b.String())
	}
	if canaryStatus(context.Background(), p, rollout.Default(), &rollout.Journal{From: &from}, t0) != nil {
		t.Error("a blue/green journal got a canary view")
	}
}

// On Kubernetes a verb reads the rollout Lease to know whether a process runs
// the canary: with nobody holding it, pause is left for `aideploy rollout`
// to obey when it resumes the run, without waiting for an answer.
func TestKubeVerbWithoutProcess(t *testing.T) {
	t.Parallel()
	cm := kubeCanaryState(t, rollout.Progress{Joined: true, Index: 0, Steps: 3, Weight: 10})
	hpas := schema.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{hpas: "HorizontalPodAutoscalerList"})
	kc := &k8s.Client{Namespace: "serving", Clientset: fake.NewClientset(cm), Dynamic: dyn}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := runKube(t, kc, "rollout", "pause", "--wait", "20s")
	if !strings.HasPrefix(out, "no process runs the canary rollout to green r2") {
		t.Errorf("rollout pause with no Lease: %q, want that no process runs it", out)
	}
	got, err := kc.Clientset.CoreV1().ConfigMaps("serving").Get(ctx, "embed-rollout", metav1.GetOptions{})
	if err != nil || !strings.Contains(got.Annotations[k8s.AnnotationCommand], `"pause"`) {
		t.Errorf("the pause left for the resumed run: %v %v", got.Annotations, err)
	}
}

// kubeCanaryState is the embed service's rollout ConfigMap in namespace
// serving, its journal a canary from blue r1 to green r2 that began a minute
// ago and stands at p.
func kubeCanaryState(t *testing.T, p rollout.Progress) *corev1.ConfigMap {
	t.Helper()
	t0 := time.Now().Add(-time.Minute)
	from := rollout.Deployment{Color: rollout.Blue, Revision: 1, Image: "registry.example.com/embed:1", Replicas: 2}
	j := []rollout.Journal{{ID: "r2", Op: rollout.OpRollout, Step: rollout.StepCanary, Status: rollout.StatusRunning, Strategy: rollout.StrategyCanary,
		From: &from, To: rollout.Deployment{Color: rollout.Green, Revision: 2, Image: "registry.example.com/embed:2", Replicas: 2},
		Started: t0, Updated: t0, Progress: &p}}
	state, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "embed-rollout", Namespace: "serving", Annotations: map[string]string{k8s.AnnotationState: string(state)}}}
}
