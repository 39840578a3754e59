package k8s_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// until polls cond every 200ms until it holds or d passes.
func until(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		<-tick.C
	}
}

// The sequence of the issue: `apply` makes chat-blue, a rollout whose new
// colour never gets ready fails, and afterwards blue still exists, still
// serves behind the Service, and status says so.
func TestIntegrationK8sApplyThenFailedRolloutKeepsServing(t *testing.T) {
	_, kc := start(t)
	waitGPUsFree(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newBG(t, kc)

	// What `aideploy apply` does (runApply): the serving manifests, applied respecting other managers.
	objs, err := kc.ServingManifests(ctx, b.cfg, "aideploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b.mutate(objs)
	if _, err := kc.ApplyRespecting(ctx, objs, false, false); err != nil {
		t.Fatalf("apply: %v", err)
	}
	// The HPA may raise the file's count to its floor: what serves is what
	// the cluster runs, once the HPA has acted (at least its floor).
	want := 0
	until(t, time.Minute, "applied blue ready at the HPA's floor", func() bool {
		floor := int32(1)
		if h, err := kc.Clientset.AutoscalingV2().HorizontalPodAutoscalers(kc.Namespace).Get(ctx, b.cfg.Name, metav1.GetOptions{}); err == nil && h.Spec.MinReplicas != nil {
			floor = *h.Spec.MinReplicas
		}
		r, _ := b.readyPods(ctx, rollout.Blue)
		n := b.replicas(ctx, rollout.Blue)
		want = int(n)
		return n >= floor && r == want
	})

	plan, err := b.runner(os.Getpid()).Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/chat:2.0.0", Replicas: want, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.Summary, "from blue r0") || plan.Journal.To.Color != rollout.Green {
		t.Errorf("dry run planned %q, want a rollout from the applied blue to green", plan.Summary)
	}

	b.podAnnotations = map[string]string{"aideploy.test/fail": "never-ready"}
	_, err = b.rollout(ctx, "registry.example.com/chat:2.0.0", want)
	var f *rollout.Failure
	if !errors.As(err, &f) || !f.RolledBack {
		t.Fatalf("rollout: %v, want a rolled-back failure", err)
	}
	if f.Active == nil || f.Active.Color != rollout.Blue {
		t.Errorf("failure says %v serves, want blue", f.Active)
	}

	v, err := kc.ReadStatus(ctx, b.cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	if v.Active != rollout.Blue || len(v.Colors) != 1 || v.Colors[0].Color != rollout.Blue || int(v.Colors[0].Ready) != want {
		t.Errorf("status after the failed rollout: active %q, colours %+v; want blue with %d ready and nothing else", v.Active, v.Colors, want)
	}
	if n := b.replicas(ctx, rollout.Blue); int(n) != want {
		t.Errorf("blue has %d replicas, want %d", n, want)
	}
}

// After prewarm --replicas 10 a rollout starts the new colour at 10, ends
// with 10 ready pods of it, and leaves the floor and the prewarm record.
func TestIntegrationK8sRolloutKeepsPrewarm(t *testing.T) {
	cl, kc := start(t)
	cl.SetPodCPU("", 100)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := newBG(t, kc)
	b.cfg = golden(t, "cpu")
	b.cfg.Autoscaling.Enabled, b.cfg.Autoscaling.MinReplicas, b.cfg.Autoscaling.MaxReplicas = true, 2, 20
	b.cfg.Autoscaling.CPUTarget, b.cfg.Autoscaling.MemoryTarget = 70, 0
	if _, err := b.rollout(ctx, "registry.example.com/app:1", 2); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	if _, err := kc.Prewarm(ctx, b.cfg.Name, 10, time.Time{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := kc.WaitScaled(ctx, b.cfg.Name, 10, nil); err != nil {
		t.Fatalf("prewarm: %v", err)
	}

	res, err := b.rollout(ctx, "registry.example.com/app:2", 2) // the file's count, as `aideploy rollout` passes it
	if err != nil {
		t.Fatalf("rollout after prewarm: %v", err)
	}
	if res.Journal.To.Replicas < 10 {
		t.Errorf("new colour started with %d replicas, want at least the prewarm floor 10", res.Journal.To.Replicas)
	}
	if ready, _ := b.readyPods(ctx, res.Journal.To.Color); ready < 10 {
		t.Errorf("%d ready pods of %s after the rollout, want at least 10", ready, res.Journal.To.Color)
	}
	hpa, err := kc.Clientset.AutoscalingV2().HorizontalPodAutoscalers(kc.Namespace).Get(ctx, b.cfg.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := k8s.ReadPrewarm(hpa)
	if err != nil || rec == nil || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 10 {
		t.Errorf("HPA after the rollout: min %v, prewarm record %+v (%v); want the floor 10 and the record kept", hpa.Spec.MinReplicas, rec, err)
	}

	// apply leaves the floor alone too.
	objs, err := kc.ServingManifests(ctx, b.cfg, "aideploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b.mutate(objs)
	if _, err := kc.ApplyRespecting(ctx, objs, false, false); err != nil {
		t.Fatalf("apply after prewarm: %v", err)
	}
	hpa, err = kc.Clientset.AutoscalingV2().HorizontalPodAutoscalers(kc.Namespace).Get(ctx, b.cfg.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *hpa.Spec.MinReplicas != 10 {
		t.Errorf("apply reset the floor to %d, want 10", *hpa.Spec.MinReplicas)
	}
}

// A user bound to a Role in their namespace only rolls out: the capacity
// check cannot list nodes, says so, and the rollout goes on.
func TestIntegrationK8sRolloutWithNamespacedRole(t *testing.T) {
	cl, kc := start(t)
	waitGPUsFree(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := kc.Namespace
	rbac := kc.Clientset.RbacV1()
	if _, err := kc.Clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "deployer"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"", "apps", "autoscaling", "policy", "coordination.k8s.io", "batch"},
		Resources: []string{"*"}, Verbs: []string{"*"},
	}}}
	if _, err := rbac.Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "deployer"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "deployer"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: ns}}}
	if _, err := rbac.RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	as := rest.CopyConfig(cl.RESTConfig)
	as.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":deployer",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	user, err := k8s.NewClient(as, ns)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := user.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("the namespaced user can list nodes: the test would prove nothing")
	}

	b := newBG(t, user)
	var mu sync.Mutex
	var lines []string
	r := b.runner(os.Getpid())
	r.Platform = k8s.NewPlatform(user, k8s.Options{Config: b.cfg, Source: "aideploy.yaml", Mutate: b.mutate, ReadinessGrace: 5 * time.Second,
		Logf: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, fmt.Sprintf(format, args...))
		}})
	if _, err := r.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/chat:1.0.0", Replicas: 1}); err != nil {
		t.Fatalf("rollout as the namespaced user: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(lines, "\n"); !strings.Contains(got, "cannot list nodes with these rights") {
		t.Errorf("the capacity check did not say what it could not see:\n%s", got)
	}
}

// A Lease left by a rollout on another host (a CI runner killed mid-run) is
// refused while fresh and taken over, with a line, once its duration passes.
func TestIntegrationK8sLeaseFromDeadHostExpires(t *testing.T) {
	t.Parallel()
	_, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := newBG(t, kc)
	b.cfg = golden(t, "cpu")
	secs := int32(2)
	now := metav1.NewMicroTime(time.Now())
	id := "ci@runner-7/4242"
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: b.cfg.Name + "-rollout",
		Annotations: map[string]string{"aideploy.dev/holder": `{"owner":"ci@runner-7","host":"runner-7","pid":4242,"op":"rollout","image":"app:9"}`}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &id, RenewTime: &now, AcquireTime: &now, LeaseDurationSeconds: &secs}}
	if _, err := kc.Clientset.CoordinationV1().Leases(kc.Namespace).Create(ctx, l, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	p := k8s.NewPlatform(kc, k8s.Options{Config: b.cfg, Logf: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }})
	host, _ := os.Hostname()
	me := rollout.Holder{Owner: "test@" + host, Host: host, PID: os.Getpid(), Op: rollout.OpRollout}
	var le *rollout.LockedError
	if err := p.Lock(ctx, me, false); !errors.As(err, &le) {
		t.Fatalf("Lock while the Lease is fresh: %v, want a LockedError", err)
	}
	start := time.Now()
	until(t, 10*time.Second, "taking over the expired Lease", func() bool { return p.Lock(ctx, me, false) == nil })
	t.Logf("taken over %s after the first refusal (Lease duration %ds)", time.Since(start).Round(100*time.Millisecond), secs)
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("took %s to take over a %ds Lease", took, secs)
	}
	if got := strings.Join(lines, "\n"); !strings.Contains(got, "taking over the rollout lock of ci@runner-7") || !strings.Contains(got, "its Lease expired at") {
		t.Errorf("no line about the takeover:\n%s", got)
	}
	if err := p.Unlock(ctx, me); err != nil {
		t.Fatal(err)
	}
}

// An operator's edit of a field aideploy applies (the PDB's budget) is not
// reverted by apply: it names the field and changes nothing, unless forced.
func TestIntegrationK8sApplyRespectsOtherManagers(t *testing.T) {
	t.Parallel()
	_, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := newBG(t, kc)
	b.cfg = golden(t, "gpu1")
	objs, err := kc.ServingManifests(ctx, b.cfg, "aideploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b.mutate(objs)
	if _, err := kc.ApplyRespecting(ctx, objs, false, false); err != nil {
		t.Fatalf("first apply: %v", err)
	}
	pdbs := kc.Clientset.PolicyV1().PodDisruptionBudgets(kc.Namespace)
	three := intstr.FromInt32(3)
	// The disruption controller writes the PDB's status meanwhile: read and
	// edit again on a conflict, as kubectl edit would.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pdb, err := pdbs.Get(ctx, b.cfg.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		edited := pdb.DeepCopy()
		edited.Spec.MaxUnavailable, edited.Spec.MinAvailable = &three, nil
		_, err = pdbs.Update(ctx, edited, metav1.UpdateOptions{FieldManager: "kubectl-edit"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	_, err = kc.ApplyRespecting(ctx, objs, false, false)
	var ce *k8s.ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "PodDisruptionBudget/"+b.cfg.Name) || !strings.Contains(err.Error(), "kubectl-edit") {
		t.Fatalf("apply over an operator's edit: %v, want a ConflictError naming the PDB field and its manager", err)
	}
	if got, _ := pdbs.Get(ctx, b.cfg.Name, metav1.GetOptions{}); got.Spec.MaxUnavailable == nil || got.Spec.MaxUnavailable.IntValue() != 3 {
		t.Errorf("the refused apply changed the PDB: %+v", got.Spec)
	}
	if _, err := kc.ApplyRespecting(ctx, objs, false, true); err != nil {
		t.Fatalf("apply --force-conflicts: %v", err)
	}
	if got, _ := pdbs.Get(ctx, b.cfg.Name, metav1.GetOptions{}); got.Spec.MaxUnavailable != nil && got.Spec.MaxUnavailable.IntValue() == 3 {
		t.Errorf("--force-conflicts left the operator's value: %+v", got.Spec)
	}
}

// addGPUNode adds a kwok GPU node as a node autoscaler would, removed when
// the test ends.
func addGPUNode(ctx context.Context, t *testing.T, kc *k8s.Client, name string, gpus int64) {
	t.Helper()
	nodes := kc.Clientset.CoreV1().Nodes()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
				"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "nvidia.com/gpu", Effect: corev1.TaintEffectNoSchedule}}},
	}
	if _, err := nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nodes.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	status := fmt.Sprintf(`{"status":{"allocatable":{"cpu":"32","memory":"256Gi","pods":"110","nvidia.com/gpu":"%d"},"capacity":{"cpu":"32","memory":"256Gi","pods":"110","nvidia.com/gpu":"%d"}}}`, gpus, gpus)
	if _, err := nodes.Patch(ctx, name, types.MergePatchType, []byte(status), metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	manage := `{"metadata":{"annotations":{"kwok.x-k8s.io/node":"fake"}}}`
	if _, err := nodes.Patch(ctx, name, types.MergePatchType, []byte(manage), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// rollout.capacity: wait creates the pods though the GPUs are short, says
// so, and waits for the node an autoscaler adds instead of refusing.
func TestIntegrationK8sRolloutWaitsForNodes(t *testing.T) {
	_, kc := start(t)
	waitGPUsFree(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newBG(t, kc)
	b.cfg.Rollout.Capacity = rollout.CapacityWait
	b.gpus = 4 // 3 replicas × 4 GPUs: two fit on the 4-GPU nodes, the third needs a new node
	var mu sync.Mutex
	var lines []string
	added := false
	r := b.runner(os.Getpid())
	r.Platform = k8s.NewPlatform(kc, k8s.Options{Config: b.cfg, Source: "aideploy.yaml", Mutate: b.mutate, ReadinessGrace: 5 * time.Second,
		Logf: func(format string, args ...any) {
			line := fmt.Sprintf(format, args...)
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, line)
			if strings.Contains(line, "waits for a node") && !added {
				added = true
				addGPUNode(ctx, t, kc, "gpu-autoscaled-"+kc.Namespace[len(kc.Namespace)-5:], 4)
			}
		}})
	if _, err := r.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: "registry.example.com/chat:1.0.0", Replicas: 3}); err != nil {
		t.Fatalf("rollout in wait mode: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(lines, "\n")
	if !added || !strings.Contains(got, "rollout.capacity is wait: creating the pods for the node autoscaler") {
		t.Errorf("node added %v; log:\n%s", added, got)
	}
	if ready, _ := b.readyPods(ctx, rollout.Blue); ready != 3 {
		t.Errorf("%d ready pods, want 3", ready)
	}
}

// rollout.keepWarm leaves the old colour running after the rollout, status
// shows until when, and the first run under the lock after the window scales
// it down.
func TestIntegrationK8sKeepWarm(t *testing.T) {
	t.Parallel()
	_, kc := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newBG(t, kc)
	b.cfg = golden(t, "cpu")
	const window = 3 * time.Second
	run := func(image string) {
		t.Helper()
		r := b.runner(os.Getpid())
		r.Config.KeepWarm, r.Config.ScaleDownDelay = units.Duration(window), 0
		if _, err := r.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: image, Replicas: 1}); err != nil {
			t.Fatalf("rollout of %s: %v", image, err)
		}
	}
	run("registry.example.com/app:1")
	run("registry.example.com/app:2")
	switched := time.Now()
	if n := b.replicas(ctx, rollout.Blue); n != 1 {
		t.Fatalf("blue has %d replicas right after the rollout, want 1 kept warm", n)
	}
	v, err := kc.ReadStatus(ctx, b.cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range v.Colors {
		if c.Color == rollout.Blue && c.WarmUntil == nil {
			t.Errorf("status shows no keep-warm window for blue: %+v", c)
		}
	}
	// After the window, the next run under the lock (here a bare lock, as rollback or down take it) scales blue down.
	until(t, 10*time.Second, "the keep-warm window to pass", func() bool { return time.Since(switched) > window+time.Second })
	p := b.runner(os.Getpid()).Platform
	host, _ := os.Hostname()
	h := rollout.Holder{Owner: "test@" + host, Host: host, PID: os.Getpid(), Op: rollout.OpRollback}
	if err := p.Lock(ctx, h, false); err != nil {
		t.Fatal(err)
	}
	if err := p.Unlock(ctx, h); err != nil {
		t.Fatal(err)
	}
	if n := b.replicas(ctx, rollout.Blue); n != 0 {
		t.Errorf("blue has %d replicas after its window, want 0", n)
	}
}
