package k8s_test

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

const scaleDownDelay = 3 * time.Second

// bg is a blue/green setup of the gpu1 service in a test's namespace.
type bg struct {
	t   *testing.T
	kc  *k8s.Client
	cfg *config.Config
	// podAnnotations and gpus shape the next colour's pods (kwok failure stages, GPUs per pod).
	podAnnotations map[string]string
	gpus           int64
	// podSpec, when set, edits the next colour's pod spec.
	podSpec func(spec map[string]any)
	mu      sync.Mutex
	events  []rollout.Event
	onEvent func(rollout.Event)
}

func newBG(t *testing.T, kc *k8s.Client) *bg {
	deleteDeployments(t, kc)
	return &bg{t: t, kc: kc, cfg: golden(t, "gpu1")}
}

func (b *bg) mutate(objs []*unstructured.Unstructured) {
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		spec := o.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		spec["volumes"] = nil
		if b.podSpec != nil {
			b.podSpec(spec)
		}
		for _, ct := range spec["containers"].([]any) {
			c := ct.(map[string]any)
			c["volumeMounts"] = nil
			if b.gpus > 0 {
				res := c["resources"].(map[string]any)
				res["requests"].(map[string]any)["nvidia.com/gpu"] = b.gpus
				res["limits"].(map[string]any)["nvidia.com/gpu"] = b.gpus
			}
		}
		md := o.Object["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)
		ann, _ := md["annotations"].(map[string]any)
		if ann == nil {
			ann = map[string]any{}
		}
		for k, v := range b.podAnnotations {
			ann[k] = v
		}
		md["annotations"] = ann
	}
}

func (b *bg) runner(pid int) *rollout.Runner {
	settings := b.cfg.Rollout
	settings.Warmup.Enabled = false
	settings.Watch.Window = units.Duration(2 * time.Second)
	settings.ScaleDownDelay = units.Duration(scaleDownDelay)
	settings.StartupBudget = units.Duration(time.Minute)
	p := k8s.NewPlatform(b.kc, k8s.Options{Config: b.cfg, Source: "aideploy.yaml", Mutate: b.mutate, ReadinessGrace: 5 * time.Second, Logf: b.t.Logf})
	host, _ := os.Hostname()
	return &rollout.Runner{Platform: p, Config: settings,
		Holder: rollout.Holder{Owner: "test@" + host, Host: host, PID: pid},
		Observe: func(e rollout.Event) {
			b.mu.Lock()
			b.events = append(b.events, e)
			f := b.onEvent
			b.mu.Unlock()
			if f != nil {
				f(e)
			}
		}}
}

func (b *bg) rollout(ctx context.Context, image string, replicas int) (rollout.Result, error) {
	return b.runner(os.Getpid()).Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: image, Replicas: replicas})
}

func (b *bg) selector(ctx context.Context) string {
	s, err := b.kc.Clientset.CoreV1().Services(b.kc.Namespace).Get(ctx, b.cfg.Name, metav1.GetOptions{})
	if err != nil {
		b.t.Fatal(err)
	}
	return s.Spec.Selector[k8s.LabelColor]
}

func (b *bg) replicas(ctx context.Context, c rollout.Color) int32 {
	d, err := b.kc.Clientset.AppsV1().Deployments(b.kc.Namespace).Get(ctx, k8s.ColorName(b.cfg.Name, c), metav1.GetOptions{})
	if err != nil {
		return -1
	}
	return *d.Spec.Replicas
}

func (b *bg) readyPods(ctx context.Context, c rollout.Color) (ready, total int) {
	pods, err := b.kc.Clientset.CoreV1().Pods(b.kc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: k8s.LabelColor + "=" + string(c)})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		total++
		for _, cd := range p.Status.Conditions {
			if cd.Type == corev1.PodReady && cd.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return ready, total
}

// Happy path: the selector moves only once every new pod is Ready, the HPA
// follows it, and the old colour is scaled down after the delay.
func TestIntegrationK8sRolloutHappyPath(t *testing.T) {
	cl, kc := start(t)
	waitGPUsFree(t, kc)
	cl.SetPodCPU("", 100)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := newBG(t, kc)
	if _, err := b.rollout(ctx, "registry.example.com/chat:1.0.0", 2); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	if got := b.selector(ctx); got != "blue" {
		t.Fatalf("after the first deploy the Service selects %q, want blue", got)
	}

	var switchedAt, retiredAt time.Time
	var readyAtSwitch, totalAtSwitch int
	var blueAtSwitchDone int32
	var progress []string
	b.onEvent = func(e rollout.Event) {
		switch {
		case e.Step == rollout.StepSwitch && e.Kind == rollout.EventStart:
			readyAtSwitch, totalAtSwitch = b.readyPods(ctx, rollout.Green)
		case e.Step == rollout.StepSwitch && e.Kind == rollout.EventDone:
			switchedAt = time.Now()
			blueAtSwitchDone = b.replicas(ctx, rollout.Blue)
		case e.Step == rollout.StepRetire && e.Kind == rollout.EventDone:
			retiredAt = time.Now()
		case e.Kind == rollout.EventProgress:
			progress = append(progress, string(e.Step)+": "+e.Message)
		}
	}
	res, err := b.rollout(ctx, "registry.example.com/chat:2.0.0", 2)
	if err != nil {
		t.Fatalf("rollout: %v", err)
	}
	// The health step says how many pods are ready and how long the startup budget (1m) still runs.
	budgetLine := regexp.MustCompile(`^healthy: [0-2]/2 healthy(, [12] loading)?, budget ([0-5]?[0-9]s|1m0s) left$`)
	if len(progress) == 0 || !budgetLine.MatchString(progress[0]) {
		t.Errorf("health step progress lines %q, want the first like %q", progress, "healthy: 0/2 healthy, 2 loading, budget 1m0s left")
	}
	if readyAtSwitch != 2 || totalAtSwitch != 2 {
		t.Errorf("at the switch %d of %d green pods were Ready, want 2 of 2", readyAtSwitch, totalAtSwitch)
	}
	if got := b.selector(ctx); got != "green" {
		t.Errorf("Service selects %q, want green", got)
	}
	if blueAtSwitchDone != 2 {
		t.Errorf("blue had %d replicas right after the switch, want 2 until the delay", blueAtSwitchDone)
	}
	if d := retiredAt.Sub(switchedAt); d < scaleDownDelay {
		t.Errorf("blue retired %s after the switch, want at least %s", d, scaleDownDelay)
	}
	if n := b.replicas(ctx, rollout.Blue); n != 0 {
		t.Errorf("blue has %d replicas after the rollout, want 0", n)
	}
	h, err := kc.Clientset.AutoscalingV2().HorizontalPodAutoscalers(kc.Namespace).Get(ctx, b.cfg.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Spec.ScaleTargetRef.Name != b.cfg.Name+"-green" {
		t.Errorf("HPA targets %s, want %s-green", h.Spec.ScaleTargetRef.Name, b.cfg.Name)
	}
	if res.Journal.Status != rollout.StatusSucceeded || res.Journal.To.Color != rollout.Green {
		t.Errorf("journal %+v", res.Journal)
	}
	// apply after a rollout changes no version: it targets the serving colour as the rollout left it.
	objs, err := kc.ServingManifests(ctx, b.cfg, "aideploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b.mutate(objs)
	changes, err := kc.Apply(ctx, objs, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Kind == "Deployment" && (c.Name != b.cfg.Name+"-green" || c.Action != k8s.Unchanged) {
			t.Errorf("apply after the rollout: %s\n%s", c, c.Diff)
		}
	}
	st, err := kc.ReadStatus(ctx, b.cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	k8s.PrintStatus(&sb, st)
	t.Logf("status:\n%s", sb.String())
	if !strings.Contains(sb.String(), "green r2 registry.example.com/chat:2.0.0  2/2 ready (active)") {
		t.Errorf("status lacks the active green colour:\n%s", sb.String())
	}
}

// Too few GPUs: refused before anything is created, with the numbers.
func TestIntegrationK8sRolloutTooFewGPUs(t *testing.T) {
	_, kc := start(t)
	waitGPUsFree(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newBG(t, kc)
	if _, err := b.rollout(ctx, "registry.example.com/chat:1.0.0", 2); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	_, err := b.rollout(ctx, "registry.example.com/chat:2.0.0", 9)
	if err == nil {
		t.Fatal("a rollout needing 9 GPUs next to 2 on 10 succeeded")
	}
	for _, want := range []string{"need 9", "8 of 10 allocatable nvidia.com/gpu free on 3 GPU nodes", "keeps 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if n := b.replicas(ctx, rollout.Green); n != -1 {
		t.Errorf("green Deployment exists with %d replicas; nothing should have been created", n)
	}
	if got := b.selector(ctx); got != "blue" {
		t.Errorf("Service selects %q, want blue", got)
	}
}

// Each simulated failure is seen and rolled back within 15s; blue keeps serving.
func TestIntegrationK8sRolloutFailures(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		gpus        int64
		want        string
	}{
		{"never-ready", map[string]string{"aideploy.test/fail": "never-ready"}, 0, "readiness is not progressing"},
		{"crashloop", map[string]string{"aideploy.test/fail": "crashloop"}, 0, "CrashLoopBackOff"},
		{"imagepull", map[string]string{"aideploy.test/fail": "imagepull"}, 0, "cannot pull image"},
		{"unschedulable", nil, 5, "cannot be scheduled: Insufficient nvidia.com/gpu on all 3 GPU nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, kc := start(t)
			waitGPUsFree(t, kc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			b := newBG(t, kc)
			// One replica each: a rollout starts the new colour at the count the HPA keeps the old one at.
			b.cfg.Autoscaling.MinReplicas = 1
			if _, err := b.rollout(ctx, "registry.example.com/chat:1.0.0", 1); err != nil {
				t.Fatalf("first deploy: %v", err)
			}
			b.podAnnotations, b.gpus = tt.annotations, tt.gpus
			var created time.Time
			b.onEvent = func(e rollout.Event) {
				if e.Step == rollout.StepCreate && e.Kind == rollout.EventDone {
					created = time.Now()
				}
			}
			_, err := b.rollout(ctx, "registry.example.com/chat:2.0.0", 1)
			took := time.Since(created)
			var f *rollout.Failure
			if !errors.As(err, &f) || !f.RolledBack {
				t.Fatalf("rollout: %v, want a rolled-back failure", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error lacks %q:\n%v", tt.want, err)
			}
			t.Logf("failed and rolled back %s after the green pods were created", took.Round(100*time.Millisecond))
			if took > 15*time.Second {
				t.Errorf("took %s from create to rolled back, want under 15s", took)
			}
			if got := b.selector(ctx); got != "blue" {
				t.Errorf("Service selects %q, want blue", got)
			}
			if n := b.replicas(ctx, rollout.Blue); n < 1 {
				t.Errorf("blue has %d replicas, want it serving", n)
			}
			if n := b.replicas(ctx, rollout.Green); n != -1 {
				t.Errorf("green Deployment left with %d replicas", n)
			}
		})
	}
}

// Of two concurrent rollouts the Lease refuses the second, naming the holder.
func TestIntegrationK8sRolloutLease(t *testing.T) {
	t.Parallel()
	_, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := newBG(t, kc)
	b.cfg = golden(t, "cpu")
	first := b.runner(os.Getpid())
	first.Holder.Op, first.Holder.Image = rollout.OpRollout, "registry.example.com/app:1"
	if err := first.Platform.Lock(ctx, first.Holder, false); err != nil {
		t.Fatal(err)
	}
	second := b.runner(1) // pid 1 is alive: not a dead holder
	second.Holder.Owner = "other@" + second.Holder.Host
	_, err := second.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/app:2", Replicas: 1})
	var le *rollout.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second rollout: %v, want a LockedError", err)
	}
	if le.Holder.PID != os.Getpid() || !strings.Contains(err.Error(), first.Holder.Owner) {
		t.Errorf("error names %v: %v", le.Holder, err)
	}
	l, err := kc.Clientset.CoordinationV1().Leases(kc.Namespace).Get(ctx, b.cfg.Name+"-rollout", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		t.Fatalf("Lease: %v %v", l, err)
	}
	if err := first.Platform.Unlock(ctx, first.Holder); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/app:2", Replicas: 1}); err != nil {
		t.Errorf("after the first released the lock: %v", err)
	}
}
