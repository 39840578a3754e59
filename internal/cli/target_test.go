package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/iostreams"
	"github.com/aideploy/aideploy/internal/k8s"
)

// errKubeReached stands in for a cluster: a command that asks for the
// Kubernetes client took the k8s path.
var errKubeReached = errors.New("kube client requested")

// runWithTarget runs args with aideploy.yaml of the golden cpu service,
// rollout.target set to target, and no --target flag. It reports whether the
// command asked for the Kubernetes client, and its error.
func runWithTarget(t *testing.T, target string, args ...string) (bool, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "render", "testdata", "cpu", "aideploy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "aideploy.yaml")
	if err := os.WriteFile(path, append(data, "rollout:\n  target: "+target+"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	io, _, _, _ := iostreams.Test()
	f := NewFactory(io)
	kube := false
	f.Kube = func() (*k8s.Client, error) { kube = true; return nil, errKubeReached }
	root := NewRootCmd(f)
	root.SetArgs(append([]string{"--config", path}, args...))
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	_, err = root.ExecuteContextC(context.Background())
	return kube, err
}

// TestEveryCommandHonoursTheFileTarget: with rollout.target: k8s in
// aideploy.yaml and no --target, every deploy command goes to Kubernetes.
func TestEveryCommandHonoursTheFileTarget(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"rollout", "--yes"},
		{"rollback", "--yes"},
		{"status"},
		{"history"},
		{"down", "--yes"},
		{"prewarm", "--replicas", "10"},
		{"prewarm", "--restore"},
		{"apply"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			kube, err := runWithTarget(t, "k8s", args...)
			if !kube || !errors.Is(err, errKubeReached) {
				t.Errorf("with rollout.target k8s: asked for the cluster %v, error %v; want the Kubernetes path", kube, err)
			}
		})
	}
}

// TestFileTargetDocker: rollout.target: docker keeps Kubernetes out of the
// commands that used to default to it, and apply says what to change.
func TestFileTargetDocker(t *testing.T) {
	t.Parallel()
	kube, err := runWithTarget(t, "docker", "apply")
	var ue *UsageError
	if kube || !errors.As(err, &ue) || !strings.Contains(err.Error(), "set it to k8s, or pass --target k8s") {
		t.Errorf("apply with rollout.target docker: asked for the cluster %v, error %v; want a usage error", kube, err)
	}
	kube, err = runWithTarget(t, "docker", "prewarm", "--replicas", "4", "--for", "2h")
	if kube || !errors.As(err, &ue) || !strings.Contains(err.Error(), "--for and --until need Kubernetes") {
		t.Errorf("prewarm --for with rollout.target docker: asked for the cluster %v, error %v; want a usage error", kube, err)
	}
	// The flag still wins over the file.
	if kube, err = runWithTarget(t, "docker", "status", "--target", "k8s"); !kube || !errors.Is(err, errKubeReached) {
		t.Errorf("status --target k8s with rollout.target docker: asked for the cluster %v, error %v", kube, err)
	}
}
