package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// leafCommands lists the runnable commands of the tree, by their arguments.
func leafCommands(t *testing.T) [][]string {
	t.Helper()
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			p := append(append([]string(nil), path...), sub.Name())
			if sub.Runnable() {
				out = append(out, p)
			}
			walk(sub, p)
		}
	}
	walk(NewRootCmd(NewFactory(nil)), nil)
	if len(out) < 15 {
		t.Fatalf("found %d commands, want every command of the tree: %v", len(out), out)
	}
	return out
}

// TestJSONErrorOnEveryCommand runs every command with -o json and a flag it
// does not have: stdout must be one JSON error document and the exit code 2,
// so a script that parses stdout never reads an empty string.
func TestJSONErrorOnEveryCommand(t *testing.T) {
	t.Parallel()
	for _, path := range leafCommands(t) {
		t.Run(strings.Join(path, "_"), func(t *testing.T) {
			t.Parallel()
			for _, args := range [][]string{
				append(append([]string(nil), path...), "-o", "json", "--no-such-flag"),
				append([]string{"--no-such-flag", "--output=json"}, path...),
			} {
				code, stdout, stderr := run(t, args...)
				if code != ExitUsage {
					t.Fatalf("%v: exit %d, want %d; stderr %s", args, code, ExitUsage, stderr)
				}
				var rep errorReport
				if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
					t.Fatalf("%v: stdout is not JSON (%v): %q", args, err, stdout)
				}
				if rep.Error.Kind != "usage" || rep.Error.ExitCode != ExitUsage || !strings.Contains(rep.Error.Message, "no-such-flag") {
					t.Fatalf("%v: error document %+v", args, rep.Error)
				}
				if !strings.Contains(stderr, "unknown flag: --no-such-flag") {
					t.Fatalf("%v: stderr %q lost the human message", args, stderr)
				}
			}
		})
	}
}

// TestJSONConfigErrorListsProblems: validate -o json on a broken file prints
// the problems with their lines and fields on stdout and exits 2.
func TestJSONConfigErrorListsProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "aideploy.yaml")
	writeFile(t, cfg, validHead+"replicaz: 3\nport: eighty\n")
	for _, format := range []string{"json", "yaml"} {
		code, stdout, _ := run(t, "validate", "--config", cfg, "-o", format)
		if code != ExitUsage {
			t.Fatalf("exit %d, want 2", code)
		}
		if format == "yaml" {
			if !strings.Contains(stdout, "kind: config") || !strings.Contains(stdout, "line: 4") {
				t.Fatalf("yaml error document: %s", stdout)
			}
			continue
		}
		var rep errorReport
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("stdout is not JSON (%v): %q", err, stdout)
		}
		if rep.Error.Kind != "config" || rep.Error.File != cfg || len(rep.Error.Problems) != 2 {
			t.Fatalf("error document %+v", rep.Error)
		}
		if p := rep.Error.Problems[0]; p.Line != 4 || !strings.Contains(p.Msg, "not a known field") {
			t.Fatalf("first problem %+v", p)
		}
	}
}

// TestJSONOnSuccess: the commands that need no engine or cluster print one
// JSON document on success.
func TestJSONOnSuccess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "aideploy.yaml")
	writeFile(t, cfg, validHead)
	for _, args := range [][]string{
		{"version"},
		{"schema"},
		{"validate", "--config", cfg},
		{"render", "--config", cfg, "--output-dir", filepath.Join(dir, "out")},
		{"gateway", "key", "team-a"},
		{"gateway", "config", "--upstream", "http://127.0.0.1:9"},
		{"init", filepath.Join(dir, "new")},
	} {
		code, stdout, stderr := run(t, append(args, "-o", "json")...)
		if code != ExitOK {
			t.Fatalf("%v: exit %d; stderr %s", args, code, stderr)
		}
		var v any
		if err := json.Unmarshal([]byte(stdout), &v); err != nil {
			t.Fatalf("%v: stdout is not one JSON document (%v): %q", args, err, stdout)
		}
	}
}

// TestFlagSuggestion: a mistyped flag names the flag the user meant.
func TestFlagSuggestion(t *testing.T) {
	t.Parallel()
	code, _, stderr := run(t, "rollout", "--strateg", "canary")
	if code != ExitUsage || !strings.Contains(stderr, "Did you mean this?\n\t--strategy") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = run(t, "status", "--zzzzzz")
	if code != ExitUsage || strings.Contains(stderr, "Did you mean") || !strings.Contains(stderr, "aideploy status --help") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// TestUsageErrorsNameTheCommandOnce: ExitCode prefixes "aideploy: "; the
// message must not repeat the program's name.
func TestUsageErrorsNameTheCommandOnce(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"gateway", "key"}, {"status", "extra"}} {
		_, _, stderr := run(t, args...)
		if strings.Contains(stderr, "aideploy: aideploy") {
			t.Fatalf("%v: doubled prefix in %q", args, stderr)
		}
	}
}

// TestMissingKubeconfig: a kubeconfig that does not exist is a configuration
// error naming the file, exit 2, not client-go's KUBERNETES_MASTER hint.
func TestMissingKubeconfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope", "kubeconfig")
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	flags := NewFactory(nil).KubeFlags
	flags.Kubeconfig = missing
	err := missingKubeconfig(flags, getenv)
	if code, kind := classify(err); code != ExitUsage || kind != "config" || !strings.Contains(err.Error(), missing) {
		t.Fatalf("--kubeconfig missing: %v (exit %d)", err, code)
	}
	flags.Kubeconfig = ""
	env["KUBECONFIG"] = missing + string(filepath.ListSeparator) + missing + "2"
	err = missingKubeconfig(flags, getenv)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "KUBECONFIG") {
		t.Fatalf("KUBECONFIG missing: %v", err)
	}
	present := filepath.Join(dir, "kubeconfig")
	writeFile(t, present, "apiVersion: v1\nkind: Config\n")
	env["KUBECONFIG"] = missing + string(filepath.ListSeparator) + present
	if err := missingKubeconfig(flags, getenv); err != nil {
		t.Fatalf("one listed file exists: %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
