package k8s_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/aideploy/aideploy/internal/cli"
	"github.com/aideploy/aideploy/internal/iostreams"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
)

// Environment of the child process that TestIntegrationK8sRolloutKill kills.
const (
	envChildKubeconfig = "AIDEPLOY_TEST_CHILD_KUBECONFIG"
	envChildNamespace  = "AIDEPLOY_TEST_CHILD_NAMESPACE"
)

// TestChildRollout is the rollout process that the kill test kills with
// SIGKILL; it does nothing unless started by that test.
func TestChildRollout(t *testing.T) {
	kubeconfig := os.Getenv(envChildKubeconfig)
	if kubeconfig == "" {
		t.Skip("started only by TestIntegrationK8sRolloutKill")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := k8s.NewClient(cfg, os.Getenv(envChildNamespace))
	if err != nil {
		t.Fatal(err)
	}
	b := &bg{t: t, kc: kc, cfg: golden(t, "gpu1")}
	b.onEvent = func(e rollout.Event) {
		if e.Kind == rollout.EventStart {
			fmt.Printf("start %s\n", e.Step)
		}
	}
	_, err = b.rollout(context.Background(), "registry.example.com/chat:2.0.0", 1)
	fmt.Printf("done %v\n", err)
}

// kill -9 of a rollout at each step, then the same rollout again: it
// converges on one serving colour running the new image, the other scaled
// down, and the lock released.
func TestIntegrationK8sRolloutKill(t *testing.T) {
	for _, step := range []rollout.Step{rollout.StepCheck, rollout.StepCreate, rollout.StepHealthy, rollout.StepSwitch, rollout.StepWatch, rollout.StepDrain, rollout.StepRetire} {
		t.Run(string(step), func(t *testing.T) {
			cl, kc := start(t)
			waitGPUsFree(t, kc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			b := newBG(t, kc)
			if _, err := b.rollout(ctx, "registry.example.com/chat:1.0.0", 1); err != nil {
				t.Fatalf("first deploy: %v", err)
			}

			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChildRollout$", "-test.v")
			cmd.Env = append(os.Environ(), envChildKubeconfig+"="+cl.Kubeconfig, envChildNamespace+"="+kc.Namespace)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = cmd.Stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killed := false
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "start "+string(step) {
					_ = cmd.Process.Kill()
					killed = true
					break
				}
				if strings.HasPrefix(sc.Text(), "done") {
					break
				}
			}
			_ = cmd.Wait()
			if !killed {
				t.Fatalf("the child rollout never reached step %s", step)
			}

			res, err := b.rollout(ctx, "registry.example.com/chat:2.0.0", 1)
			if err != nil {
				t.Fatalf("re-run after kill -9 at %s: %v", step, err)
			}
			t.Logf("re-run: %s (resumed %v)", res.Summary, res.Resumed)
			active := rollout.Color(b.selector(ctx))
			st, err := kc.ReadStatus(ctx, b.cfg.Name)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range st.Colors {
				switch {
				// The HPA's floor (2) owns the count once the colour serves.
				case c.Color == active && (c.Image != "registry.example.com/chat:2.0.0" || c.Desired < 1):
					t.Errorf("active %s runs %s ×%d, want chat:2.0.0", c.Color, c.Image, c.Desired)
				case c.Color != active && c.Desired != 0:
					t.Errorf("inactive %s still has %d replicas", c.Color, c.Desired)
				}
			}
			if st.HPA == nil || st.HPA.Target != k8s.ColorName(b.cfg.Name, active) {
				t.Errorf("HPA %+v does not target the active colour %s", st.HPA, active)
			}
			if st.Last == nil || st.Last.Status != rollout.StatusSucceeded {
				t.Errorf("last journal %+v, want succeeded", st.Last)
			}
			if _, err := kc.Clientset.CoordinationV1().Leases(kc.Namespace).Get(ctx, b.cfg.Name+"-rollout", metav1.GetOptions{}); err == nil {
				t.Error("the Lease is still held after the re-run")
			}
		})
	}
}

// TestChildPrewarm is the prewarm process that TestIntegrationK8sPrewarmKill
// kills; it does nothing unless started by that test.
func TestChildPrewarm(t *testing.T) {
	kubeconfig := os.Getenv(envChildKubeconfig)
	if kubeconfig == "" || os.Getenv(envChildPrewarm) == "" {
		t.Skip("started only by TestIntegrationK8sPrewarmKill")
	}
	streams := iostreams.System()
	err := cli.Run(context.Background(), streams, []string{"prewarm", "--target", "k8s", "--name", "chat", "--replicas", "10", "--wait",
		"--kubeconfig", kubeconfig, "-n", os.Getenv(envChildNamespace)})
	fmt.Printf("done %v\n", err)
}

const envChildPrewarm = "AIDEPLOY_TEST_CHILD_PREWARM"

// kill -9 of prewarm --wait, at once and while it waits, then a re-run: the
// floor is 10 and the recorded original is still 2, so --restore gives 2.
func TestIntegrationK8sPrewarmKill(t *testing.T) {
	cl, kc := start(t)
	waitGPUsFree(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := deployGPU1(ctx, t, cl, kc)
	for _, killAfter := range []string{"", "HPA chat floor raised"} {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChildPrewarm$")
		cmd.Env = append(os.Environ(), envChildKubeconfig+"="+cl.Kubeconfig, envChildNamespace+"="+kc.Namespace, envChildPrewarm+"=1")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if killAfter == "" {
			_ = cmd.Process.Kill()
		} else {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), killAfter) {
					_ = cmd.Process.Kill()
					break
				}
			}
		}
		_ = cmd.Wait()
		if _, err := kc.Prewarm(ctx, name, 10, time.Time{}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := kc.WaitScaled(ctx, name, 10, nil); err != nil {
			t.Fatal(err)
		}
		if lo, _ := hpaBounds(ctx, t, kc, name); lo != 10 {
			t.Errorf("after kill (%q) and re-run: floor %d, want 10", killAfter, lo)
		}
		rec, err := kc.Restore(ctx, name)
		if err != nil || rec == nil || rec.MinReplicas != 2 {
			t.Fatalf("restore after kill (%q): %+v %v", killAfter, rec, err)
		}
		if lo, hi := hpaBounds(ctx, t, kc, name); lo != 2 || hi != 20 {
			t.Errorf("restored %d–%d, want 2–20", lo, hi)
		}
	}
}
