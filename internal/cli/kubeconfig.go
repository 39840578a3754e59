package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/k8s"
)

// missingKubeconfig names the kubeconfig file that the flags or KUBECONFIG
// point at when none of them exists, as a configuration error (exit 2).
// client-go skips missing files in silence and then blames
// KUBERNETES_MASTER, which names neither the file nor the fix.
func missingKubeconfig(flags *k8s.Flags, getenv func(string) string) error {
	if flags.Kubeconfig != "" {
		if exists(flags.Kubeconfig) {
			return nil
		}
		return kubeconfigError(flags.Kubeconfig, "the kubeconfig file does not exist; check --kubeconfig")
	}
	if env := getenv("KUBECONFIG"); env != "" {
		var paths []string
		for _, p := range filepath.SplitList(env) {
			if p == "" {
				continue
			}
			if exists(p) {
				return nil
			}
			paths = append(paths, p)
		}
		if len(paths) > 0 {
			return kubeconfigError(strings.Join(paths, string(filepath.ListSeparator)),
				"no kubeconfig file that KUBECONFIG lists exists; check KUBECONFIG or pass --kubeconfig FILE")
		}
	}
	if getenv("KUBERNETES_SERVICE_HOST") != "" {
		return nil // in a pod: the service account is the configuration
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	def := filepath.Join(home, ".kube", "config")
	if exists(def) {
		return nil
	}
	return &noKubeconfigError{kubeconfigError(def, "the kubeconfig file does not exist; pass --kubeconfig FILE, set KUBECONFIG, or set rollout.target: docker in aideploy.yaml to deploy on the local Docker engine")}
}

// noKubeconfigError is a missing kubeconfig that nothing named: the default
// file. preflight skips its cluster checks for it rather than failing.
type noKubeconfigError struct{ err *config.Error }

func (e *noKubeconfigError) Error() string { return e.err.Error() }
func (e *noKubeconfigError) Unwrap() error { return e.err }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

func kubeconfigError(file, msg string) *config.Error {
	return &config.Error{File: file, Problems: []config.Problem{{Msg: msg}}}
}
