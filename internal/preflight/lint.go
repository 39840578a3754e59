package preflight

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// LintOptions are the facts the manifest lint compares against.
type LintOptions struct {
	// Req is the deployment's needs: model size, startup budget, image.
	Req Requirements
	// AvailableGPUs is how many GPUs the target has (0: unknown; the replica rule is skipped).
	AvailableGPUs int
}

// Manifest is one file to lint.
type Manifest struct {
	// Name is how results name the file (a path relative to the linted directory).
	Name string
	// Data is the file's content.
	Data []byte
	// Dir is the directory compose build contexts are relative to ("" skips reading Dockerfiles).
	Dir string
}

// LintDir lints every .yaml and .yml file under dir: Kubernetes manifests and compose files.
func LintDir(dir string, opts LintOptions) []Result {
	var files []Manifest
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isYAML(path) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, Manifest{Name: filepath.ToSlash(rel), Data: data, Dir: filepath.Dir(path)})
		return nil
	})
	if err != nil {
		return []Result{fail("lint.read", dir, firstLine(err), "", "pass a readable directory of manifests to --manifests")}
	}
	if len(files) == 0 {
		return []Result{warn("lint.read", dir, "no .yaml or .yml files", "", "point --manifests at the rendered or hand-written manifests")}
	}
	return LintManifests(files, opts)
}

func isYAML(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".yaml" || ext == ".yml"
}

// LintManifests lints Kubernetes and compose files together, so that an HPA and a
// PodDisruptionBudget are matched with the Deployment they belong to, wherever it is.
// It reports only problems, or one pass when there are none.
func LintManifests(files []Manifest, opts LintOptions) []Result {
	var est *MemoryEstimate
	if opts.Req.Model.Params > 0 {
		if e, err := EstimateMemory(opts.Req.Model); err == nil {
			est = &e
		}
	}
	l := &linter{opts: opts, estimate: est}
	var k8s []object
	for _, f := range files {
		if isCompose(f.Data) {
			l.compose(f)
			continue
		}
		objs, err := decodeObjects(f)
		if err != nil {
			l.add(fail("lint.parse", f.Name, firstLine(err), "", "fix the YAML so kubectl apply --dry-run=client accepts it"))
			continue
		}
		k8s = append(k8s, objs...)
	}
	l.kubernetes(k8s)
	if len(l.results) == 0 {
		return []Result{pass("lint.manifests", "manifests", fmt.Sprintf("%d file(s), no known pitfall", len(files)), "")}
	}
	return l.results
}

type linter struct {
	opts     LintOptions
	estimate *MemoryEstimate
	results  []Result
}

func (l *linter) add(r Result) { l.results = append(l.results, r) }

// isCompose says whether a YAML file is a compose file: a top-level services map.
func isCompose(data []byte) bool {
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return false
	}
	_, hasServices := top["services"]
	_, hasKind := top["kind"]
	return hasServices && !hasKind
}

// floatingTag says whether an image reference follows a moving tag: ":latest" or none.
func floatingTag(ref string) bool {
	if ref == "" || strings.Contains(ref, "@") {
		return false
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	tag, hasTag := "", false
	if i := strings.LastIndex(name, ":"); i >= 0 {
		tag, hasTag = name[i+1:], true
	}
	return !hasTag || tag == "latest"
}

func (l *linter) latestTag(sub, image string) {
	if floatingTag(image) {
		l.add(warn("lint.latest-tag", sub, "image "+image+" follows a moving tag", "a pinned tag or digest",
			"pin a version tag (or @sha256 digest) so a rollback brings back the same model server"))
	}
}

// dockerfileFromCUDA says whether the Dockerfile in a build context starts FROM a CUDA image.
func dockerfileFromCUDA(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for line := range bytes.Lines(data) {
		fields := strings.Fields(string(line))
		if len(fields) >= 2 && strings.EqualFold(fields[0], "FROM") {
			img := strings.ToLower(fields[1])
			if strings.Contains(img, "cuda") || strings.HasPrefix(img, "nvcr.io/") {
				return true
			}
		}
	}
	return false
}

// wantsGPUImage says whether an image is the deployment's GPU model server.
func (l *linter) wantsGPUImage(image string) bool {
	if image == "" {
		return false
	}
	if l.opts.Req.wantsGPU() && image == l.opts.Req.Image {
		return true
	}
	lower := strings.ToLower(image)
	return strings.Contains(lower, "cuda") || slices.ContainsFunc([]string{"vllm", "tritonserver", "text-generation-inference", "sglang"},
		func(s string) bool { return strings.Contains(lower, s) })
}
