package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aideploy/aideploy/internal/iostreams"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
)

// --watch draws at most 5 frames a second however fast the state changes,
// and only when it changed.
func TestWatchStatusRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		changing bool
		tty      bool
		maxDrawn int
		minDrawn int
	}{
		{"changing every read, terminal", true, true, 6, 3},
		{"changing every read, plain", true, false, 6, 3},
		{"unchanged", false, false, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var sb strings.Builder
			n := 0
			err := watchStatus(ctx, &sb, tt.tty, watchInterval, func(context.Context) (string, error) {
				n++
				if !tt.changing {
					return "same\n", nil
				}
				return fmt.Sprintf("frame %d\n", n), nil
			})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("watchStatus: %v", err)
			}
			drawn := strings.Count(sb.String(), "frame ") + strings.Count(sb.String(), "same")
			if drawn > tt.maxDrawn || drawn < tt.minDrawn {
				t.Errorf("drew %d frames in 1s, want %d to %d", drawn, tt.minDrawn, tt.maxDrawn)
			}
			if tt.tty != strings.Contains(sb.String(), "\033[2J") {
				t.Errorf("terminal %v, output %q", tt.tty, sb.String())
			}
		})
	}
}

// On Kubernetes, status shows a canary in progress as on Docker: its step,
// the shares and the figures (here, why they cannot be read: the gateway
// Deployment is not in the namespace), in the table and under canary in JSON.
func TestKubeStatusShowsTheCanary(t *testing.T) {
	t.Parallel()
	cm := kubeCanaryState(t, rollout.Progress{Joined: true, Index: 1, Steps: 3, Weight: 25, Paused: true})
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "embed", Namespace: "serving"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Name: "embed-blue"}, MaxReplicas: 4}}
	kc := &k8s.Client{Namespace: "serving", Clientset: fake.NewClientset(cm, hpa)}

	status := func(args ...string) string {
		out, _ := runKube(t, kc, append([]string{"status"}, args...)...)
		return out
	}
	var v struct {
		Service string      `json:"service"`
		Canary  *canaryView `json:"canary"`
	}
	out := status("-o", "json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if c := v.Canary; v.Service != "embed" || c == nil || c.Strategy != rollout.StrategyCanary || c.Step != 2 || c.Steps != 3 || !c.Paused ||
		c.Weights["green"] != 25 || c.Weights["blue"] != 75 || !strings.Contains(c.Error, "Service selector") {
		t.Errorf("status -o json: %+v\n%s", v.Canary, out)
	}
	out = status()
	for _, want := range []string{"Name:       embed", "canary step 2/3: blue 75%, green 25%, paused: `aideploy rollout resume` carries on", "figures: "} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// runKube runs the command line with aideploy.yaml of the golden cpu
// service on Kubernetes, against kc.
func runKube(t *testing.T, kc *k8s.Client, args ...string) (string, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "render", "testdata", "cpu", "aideploy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "aideploy.yaml")
	if err := os.WriteFile(path, append(data, "rollout:\n  target: k8s\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	io, _, out, errOut := iostreams.Test()
	f := NewFactory(io)
	f.Kube = func() (*k8s.Client, error) { return kc, nil }
	root := NewRootCmd(f)
	root.SetArgs(append([]string{"--config", path}, args...))
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	if _, err = root.ExecuteContextC(context.Background()); err != nil {
		t.Errorf("aideploy %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out.String(), err
}
