package ollamatest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BuildHint is what to run when a tool of hack/ollama-build.sh is missing.
const BuildHint = "build it with: make ollama-tools (hack/ollama-build.sh; 10 to 30 minutes the first time, cached in .cache/ollama)"

// Tool returns the path of a binary that hack/ollama-build.sh built into
// .cache/ollama/bin ("ollama" or "registry"). Under -short it skips the test;
// when the binary is missing it fails the test with how to build it.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("integration test: needs %s from hack/ollama-build.sh; skipped under -short", name)
	}
	dir, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin", name)
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing at %s; %s", name, bin, BuildHint)
	}
	return bin
}

// CacheDir is .cache/ollama in the repository, found by walking up from the
// test's working folder to the one holding hack/ollama-build.sh.
func CacheDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "ollama-build.sh")); err == nil {
			return filepath.Join(dir, ".cache", "ollama"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("ollamatest: no hack/ollama-build.sh above the working folder; run the tests from inside the repository")
		}
		dir = parent
	}
}
