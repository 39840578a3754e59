package render

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// goldenConfigs are the configurations under testdata: CPU only, one GPU,
// four GPUs autoscaled on the requests-per-second custom metric (all three
// custom servers), and one per preset: vLLM on two GPUs with a rendered claim
// and an API key, TGI on scratch storage, Ollama on CPU without an HPA, and
// vLLM scaled by KEDA on the gateway's in-flight, queue and time to first token.
var goldenConfigs = []string{"cpu", "gpu1", "gpu4-rps", "vllm", "tgi", "ollama", "keda"}

// testVersion stands in for the binary's version so goldens do not depend on -ldflags.
const testVersion = "0.0.0-test"

func loadTestConfig(t *testing.T, name string) *config.Config {
	t.Helper()
	cfg, err := config.Load(filepath.Join("testdata", name, config.DefaultFile))
	if err != nil {
		t.Fatalf("loading testdata config %s: %v", name, err)
	}
	return cfg
}

func renderTest(t *testing.T, name string, kinds ...Kind) []File {
	t.Helper()
	files, err := render(loadTestConfig(t, name), config.DefaultFile, testVersion, kinds)
	if err != nil {
		t.Fatalf("rendering %s: %v", name, err)
	}
	return files
}

func TestGolden(t *testing.T) {
	for _, name := range goldenConfigs {
		t.Run(name, func(t *testing.T) {
			files := renderTest(t, name)
			dir := filepath.Join("testdata", name)
			if *update {
				removeGoldens(t, dir)
			}
			var rendered []string
			for _, f := range files {
				golden := filepath.Join(dir, filepath.FromSlash(f.Path)+".golden")
				rendered = append(rendered, golden)
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, f.Data, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Errorf("%s: %v (run go test ./internal/render -update)", f.Path, err)
					continue
				}
				if !bytes.Equal(f.Data, want) {
					t.Errorf("%s differs from %s; if the change is intended run go test ./internal/render -update\n%s", f.Path, golden, firstDiff(string(want), string(f.Data)))
				}
			}
			if stale := slices.DeleteFunc(listGoldens(t, dir), func(p string) bool { return slices.Contains(rendered, p) }); len(stale) > 0 {
				t.Errorf("golden files no longer rendered: %v (run go test ./internal/render -update)", stale)
			}
		})
	}
}

func listGoldens(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".golden") {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func removeGoldens(t *testing.T, dir string) {
	t.Helper()
	for _, p := range listGoldens(t, dir) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// firstDiff shows the first differing line, enough to find the change.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl
		}
	}
	return ""
}
