package k8s_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/aideploy/aideploy/internal/cli"
	"github.com/aideploy/aideploy/internal/iostreams"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
)

// aideploy runs the command line against the test's cluster and namespace.
func aideploy(ctx context.Context, t *testing.T, kubeconfig, ns, configPath string, args ...string) (string, string, int) {
	t.Helper()
	streams, _, out, errOut := iostreams.Test()
	all := append([]string{"--config", configPath, "--kubeconfig", kubeconfig, "-n", ns}, args...)
	code := cli.ExitCode(streams, cli.Run(ctx, streams, all))
	t.Logf("aideploy %s → %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	return out.String(), errOut.String(), code
}

// commandLine writes the render golden config named golden, with extra YAML
// appended, and returns the command line run against it in kc's namespace.
func commandLine(ctx context.Context, t *testing.T, kubeconfig string, kc *k8s.Client, golden, extra string) func(args ...string) (string, string, int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "render", "testdata", golden, "aideploy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "aideploy.yaml")
	if err := os.WriteFile(path, append(data, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	return func(args ...string) (string, string, int) {
		return aideploy(ctx, t, kubeconfig, kc.Namespace, path, args...)
	}
}

// The commands as a user runs them: apply --dry-run=server --diff, prewarm
// --wait and --restore, status, render prewarm.
func TestIntegrationK8sCommandLine(t *testing.T) {
	cl, kc := start(t)
	waitGPUsFree(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// rollout.target in the file, not --target, sends prewarm and status to Kubernetes.
	run := commandLine(ctx, t, cl.Kubeconfig, kc, "gpu1", "rollout:\n  target: k8s\n"+
		"prewarm:\n  - name: launch\n    start: 2026-12-24T18:00\n    end: 2026-12-24T22:00\n    timezone: Europe/Berlin\n    replicas: 6\n")

	out, _, code := run("apply", "--target", "k8s", "--dry-run=server", "--diff")
	if code != 0 || !strings.Contains(out, "Deployment/chat-blue created (server dry run)") || !strings.Contains(out, "+ kind: Deployment") {
		t.Errorf("apply --dry-run=server: exit %d\n%s", code, out)
	}

	deleteDeployments(t, kc)
	cl.SetPodCPU("", 100)
	if _, err := kc.Apply(ctx, runnable(t, golden(t, "gpu1"), rollout.Blue, nil), false); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	out, _, code = run("prewarm", "--replicas", "6", "--wait", "--for", "2h")
	if code != 0 || !strings.Contains(out, "floor raised to 6 (was 2") || !strings.Contains(out, "6/6 ready") ||
		!strings.Contains(out, "the floor returns at ") {
		t.Errorf("prewarm --wait: exit %d\n%s", code, out)
	}
	// The one-off restore CronJob fires in the minute after the peak, in UTC.
	cj, err := kc.Clientset.BatchV1().CronJobs(kc.Namespace).Get(ctx, k8s.RestoreCronJobName("chat"), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the restore CronJob: %v", err)
	}
	var due []string
	for _, d := range []time.Duration{0, time.Minute, 2 * time.Minute} {
		at := before.Add(2*time.Hour + d).UTC()
		due = append(due, fmt.Sprintf("%d %d %d %d *", at.Minute(), at.Hour(), at.Day(), int(at.Month())))
	}
	args := strings.Join(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args, " ")
	if !slices.Contains(due, cj.Spec.Schedule) || cj.Spec.TimeZone == nil || *cj.Spec.TimeZone != "UTC" ||
		args != "prewarm --target k8s --name chat --restore" || cj.Spec.JobTemplate.Spec.Template.Spec.ServiceAccountName != "chat-prewarm" {
		t.Errorf("restore CronJob: schedule %q (want one of %v), args %q, account %q", cj.Spec.Schedule, due, args, cj.Spec.JobTemplate.Spec.Template.Spec.ServiceAccountName)
	}
	out, _, code = run("status")
	for _, want := range []string{"HPA:        chat-blue, floor 6, ceiling 20", "Prewarm:    floor 6 since", "(then 2–20); CronJob chat-prewarm-restore restores it at ", "└── blue r0 registry.example.com/chat:1.0.0  6/6 ready (active)"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, lacks %q\n%s", code, want, out)
		}
	}
	out, _, code = run("prewarm", "--restore")
	if code != 0 || !strings.Contains(out, "restored to minReplicas 2, maxReplicas 20") || !strings.Contains(out, "removed the scheduled restore (CronJob chat-prewarm-restore)") {
		t.Errorf("prewarm --restore: exit %d\n%s", code, out)
	}
	if _, err := kc.Clientset.BatchV1().CronJobs(kc.Namespace).Get(ctx, k8s.RestoreCronJobName("chat"), metav1.GetOptions{}); err == nil {
		t.Error("the restore CronJob outlived prewarm --restore")
	}
	// What the restore CronJob does, with the rights of its ServiceAccount.
	out, _, code = run("prewarm", "--replicas", "3", "--for", "1h", "--output", "json")
	var res struct {
		HPA      string `json:"hpa"`
		Action   string `json:"action"`
		Replicas int    `json:"replicas"`
		Original struct {
			MinReplicas int `json:"minReplicas"`
		}
		RestoreAt      time.Time `json:"restoreAt"`
		RestoreCronJob string    `json:"restoreCronJob"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("prewarm --for 1h --output json: exit %d, %v\n%s", code, err, out)
	}
	if res.HPA != "chat" || res.Action != "raised" || res.Replicas != 3 || res.Original.MinReplicas != 2 ||
		res.RestoreCronJob != "chat-prewarm-restore" || time.Until(res.RestoreAt) < 59*time.Minute {
		t.Errorf("prewarm --output json: %+v", res)
	}
	asJob := rest.CopyConfig(cl.RESTConfig)
	asJob.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + kc.Namespace + ":chat-prewarm"}
	jc, err := k8s.NewClient(asJob, kc.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := jc.Restore(ctx, "chat"); err != nil || rec == nil || rec.MinReplicas != 2 {
		t.Errorf("restore as the CronJob's ServiceAccount: %+v, %v", rec, err)
	}
	if gone, err := jc.CancelRestore(ctx, "chat"); err != nil || !gone {
		t.Errorf("the CronJob's ServiceAccount removing its CronJob: %v, %v", gone, err)
	}
	out, _, code = run("prewarm", "--replicas", "11", "--wait")
	if code != 1 {
		t.Errorf("prewarm 11 on 10 GPUs: exit %d, want 1", code)
	}
	_, errOut, _ := run("prewarm", "--restore")
	_ = errOut
	out, _, code = run("render", "prewarm", "--stdout")
	if code != 0 || !strings.Contains(out, `schedule: 52 17 24 12 *`) || !strings.Contains(out, "timeZone: Europe/Berlin") {
		t.Errorf("render prewarm: exit %d\n%s", code, out)
	}
	objs, err := k8s.Decode([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	changes, err := kc.Apply(ctx, objs, true)
	if err != nil {
		t.Fatalf("the prewarm CronJobs fail a server dry run: %v", err)
	}
	if len(changes) != 5 {
		t.Errorf("dry-run applied %v, want ServiceAccount, Role, RoleBinding and 2 CronJobs", changes)
	}
}
