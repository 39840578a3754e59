package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/iostreams"
)

const validHead = `apiVersion: aideploy.dev/v1
name: chat
image: registry.example.com/chat:1.0.0
`

// run executes one aideploy invocation in-process and returns its exit code and streams.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	streams, _, out, errOut := iostreams.Test()
	code = ExitCode(streams, Run(context.Background(), streams, args))
	return code, out.String(), errOut.String()
}

// TestBadInputsExit2 feeds aideploy broken configurations, flags and output
// folders: each must exit 2, name the file, line and field (or the flag or
// folder), and leave no file behind.
func TestBadInputsExit2(t *testing.T) {
	t.Parallel()
	type setup func(t *testing.T, dir string) (args []string)
	withConfig := func(content string) setup {
		return func(t *testing.T, dir string) []string {
			if err := os.WriteFile(filepath.Join(dir, "aideploy.yaml"), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"render", "all", "--config", filepath.Join(dir, "aideploy.yaml"), "--output-dir", filepath.Join(dir, "out")}
		}
	}
	valid := withConfig(validHead)
	tests := []struct {
		name  string
		setup setup
		want  []string // substrings of stderr
	}{
		{"unknown field", withConfig(validHead + "replicaz: 3\n"), []string{"aideploy.yaml:4:1: replicaz is not a known field"}},
		{"wrong type", withConfig(validHead + "port: eighty\n"), []string{"aideploy.yaml:4:7: port", "whole number"}},
		{"negative replicas", withConfig(validHead + "replicas: -1\n"), []string{"aideploy.yaml:4:1: replicas (-1) must not be negative"}},
		{"min above max", withConfig(validHead + "autoscaling:\n  minReplicas: 5\n  maxReplicas: 2\n"), []string{"aideploy.yaml:6:3: autoscaling.maxReplicas (2) is below autoscaling.minReplicas (5)"}},
		{"latest tag", withConfig(strings.Replace(validHead, ":1.0.0", ":latest", 1)), []string{"aideploy.yaml:3:1: image", "latest"}},
		{"untagged image", withConfig(strings.Replace(validHead, ":1.0.0", "", 1)), []string{"aideploy.yaml:3:1: image", "has no tag"}},
		{"unknown dtype", withConfig(validHead + "model:\n  dtype: fp7\n"), []string{"aideploy.yaml:5:3: model.dtype (\"fp7\") must be one of"}},
		{"unknown strategy", withConfig(validHead + "rollout:\n  strategy: canary-ish\n"), []string{"aideploy.yaml:5:3: rollout.strategy (\"canary-ish\") must be one of bluegreen"}},
		{"unknown gateway field", withConfig(validHead + "gateway:\n  cache:\n    ttls: 1h\n"), []string{"aideploy.yaml:6:5: gateway.cache.ttls is not a known field"}},
		{"bad duration", withConfig(validHead + "startup:\n  budget: ten minutes\n"), []string{"aideploy.yaml:5:11: startup.budget", "duration"}},
		{"bare number duration", withConfig(validHead + "startup:\n  budget: 600\n"), []string{"aideploy.yaml:5:11: startup.budget", "duration"}},
		{"malformed YAML", withConfig(validHead + "model: [path\n"), []string{"aideploy.yaml:", "is not valid YAML"}},
		{"empty file", withConfig("\n  \n"), []string{"aideploy.yaml:1:1: is empty"}},
		{"missing file", func(t *testing.T, dir string) []string {
			return []string{"render", "--config", filepath.Join(dir, "aideploy.yaml"), "--output-dir", filepath.Join(dir, "out")}
		}, []string{"aideploy.yaml: does not exist", "aideploy init"}},
		{"duplicate key", withConfig(validHead + "port: 8000\nport: 9000\n"), []string{"aideploy.yaml:5:1: port is set twice"}},
		{"bad prewarm timezone", withConfig(validHead + "prewarm:\n  - name: peak\n    start: 2026-12-31T23:00\n    end: 2027-01-01T03:00\n    timezone: Mars/Olympus\n    replicas: 5\n"), []string{"aideploy.yaml:8:5: prewarm[0].timezone", "IANA"}},
		{"prewarm end before start", withConfig(validHead + "prewarm:\n  - name: peak\n    start: 2027-01-01T03:00\n    end: 2026-12-31T23:00\n    replicas: 5\n"), []string{"aideploy.yaml:7:5: prewarm[0].end", "must be after"}},
		{"secret value in env", withConfig(validHead + "env:\n  - name: HF_TOKEN\n    value: hf_abcdef\n"), []string{"aideploy.yaml:6:5: env[0].value", "secretRef"}},
		{"parameter count without a unit", withConfig(validHead + "model:\n  params: \"8\"\n"), []string{"aideploy.yaml:5:3: model.params", "needs a unit: 8B for 8 billion parameters"}},
		{"bad port", withConfig(validHead + "port: 70000\n"), []string{"aideploy.yaml:4:1: port (70000) must be between 1 and 65535"}},
		{"bad memory size", withConfig(validHead + "resources:\n  memory: 16 gigs\n"), []string{"aideploy.yaml:5:11: resources.memory", "size"}},
		{"bad apiVersion", withConfig(strings.Replace(validHead, "aideploy.dev/v1", "aideploy.dev/v9", 1)), []string{"aideploy.yaml:1:1: apiVersion", "aideploy.dev/v1"}},
		{"bad CPU quantity", withConfig(validHead + "resources:\n  cpu: two\n"), []string{"aideploy.yaml:5:3: resources.cpu", "CPU quantity"}},
		{"health path without slash", withConfig(validHead + "health:\n  readyPath: ready\n"), []string{"aideploy.yaml:5:3: health.readyPath", "starting with /"}},
		{"bad CUDA version", withConfig(validHead + "build:\n  cudaVersion: twelve\n"), []string{"aideploy.yaml:5:3: build.cudaVersion"}},
		{"unknown nested field", withConfig(validHead + "autoscaling:\n  scaleUp:\n    window: 0s\n"), []string{"aideploy.yaml:6:5: autoscaling.scaleUp.window is not a known field"}},
		{"unwritable output folder", func(t *testing.T, dir string) []string {
			args := valid(t, dir)
			ro := filepath.Join(dir, "ro")
			if os.Geteuid() == 0 {
				ro = "/sys/fs" // root ignores file modes; sysfs refuses new folders even to root
			} else {
				if err := os.Mkdir(ro, 0o555); err != nil {
					t.Fatal(err)
				}
			}
			return append(args[:len(args)-1], ro)
		}, []string{"is not writable", "--output-dir"}},
		{"output path is a file", func(t *testing.T, dir string) []string {
			args := valid(t, dir)
			if err := os.WriteFile(filepath.Join(dir, "out"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			return args
		}, []string{"is a file, not a folder"}},
		{"name escaping the output folder", func(t *testing.T, dir string) []string {
			args := valid(t, dir)
			if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, "out", "k8s")); err != nil {
				t.Fatal(err)
			}
			return args
		}, []string{"refusing to write k8s/deployment.yaml", "escapes"}},
		{"unknown kind", func(t *testing.T, dir string) []string {
			return append(valid(t, dir), "helm")
		}, []string{`"helm" is not something aideploy renders`}},
		{"stdout with output dir", func(t *testing.T, dir string) []string {
			return append(valid(t, dir), "--stdout")
		}, []string{"--stdout and --output-dir exclude each other"}},
		{"init with negative gpus", func(t *testing.T, dir string) []string {
			return []string{"init", filepath.Join(dir, "out"), "--name", "chat", "--gpus", "-1"}
		}, []string{"--gpus: resources.gpus (-1) must not be negative"}},
		{"init with min above max", func(t *testing.T, dir string) []string {
			return []string{"init", filepath.Join(dir, "out"), "--name", "chat", "--min-replicas", "4", "--max-replicas", "2"}
		}, []string{"--max-replicas: autoscaling.maxReplicas (2) is below autoscaling.minReplicas (4)"}},
		{"init with a folder name that is no service name", func(t *testing.T, dir string) []string {
			return []string{"init", filepath.Join(dir, "out", "My_Model")}
		}, []string{`folder name "My_Model"`, "--name"}},
		{"init with an untagged image", func(t *testing.T, dir string) []string {
			return []string{"init", filepath.Join(dir, "out"), "--name", "chat", "--image", "registry.example.com/chat"}
		}, []string{"--image: image", "has no tag"}},
	}
	if len(tests) < 20 {
		t.Fatalf("only %d bad inputs", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := tt.setup(t, dir)
			code, stdout, stderr := run(t, args...)
			if code != ExitUsage {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, ExitUsage, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			assertNoFiles(t, filepath.Join(dir, "out"))
		})
	}
}

// assertNoFiles fails if dir holds any regular file: a failed command must
// leave no partial output.
func assertNoFiles(t *testing.T, dir string) {
	t.Helper()
	st, err := os.Lstat(dir)
	if err != nil || !st.IsDir() {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			t.Errorf("a failed command left %s behind", p)
		}
		return nil
	})
}
