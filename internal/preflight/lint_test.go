package preflight

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// seedOptions describe the seed's service: a 7B fp16 model that takes 8 minutes to
// load (the seed's incident) on a cluster with 4 GPUs.
var seedOptions = LintOptions{
	Req: Requirements{
		Image: "your-registry.com/ai-api:v1.2.0", GPUsPerReplica: 1, Replicas: 3,
		Model:         ModelSpec{Params: 7e9, DType: "fp16", ContextLength: 4096, Concurrency: 4},
		StartupBudget: 8 * time.Minute,
	},
	AvailableGPUs: 4,
}

func findings(results []Result) []string {
	var out []string
	for _, r := range results {
		out = append(out, fmt.Sprintf("%s %s %s", r.Status, r.ID, r.Subject))
	}
	return out
}

// TestLintSeed finds each of the seed's pitfalls in its own manifests, copied verbatim.
func TestLintSeed(t *testing.T) {
	t.Parallel()
	got := findings(LintDir(filepath.Join("testdata", "seed"), seedOptions))
	want := []string{
		"fail lint.compose-gpu-reservation docker-compose.yml:service/ai-api",
		"fail lint.startup-probe ai-api-deployment.yaml:Deployment/ai-api",
		"fail lint.liveness-delay ai-api-deployment.yaml:Deployment/ai-api",
		"fail lint.memory-limit ai-api-deployment.yaml:Deployment/ai-api",
		"warn lint.hpa-gpu-blind ai-api-hpa.yaml:HorizontalPodAutoscaler/ai-api-hpa",
		"warn lint.replicas-gpus ai-api-hpa.yaml:HorizontalPodAutoscaler/ai-api-hpa",
		"warn lint.pdb ai-api-deployment.yaml:Deployment/ai-api",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("seed findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLintPitfalls(t *testing.T) {
	t.Parallel()
	results := LintDir(filepath.Join("testdata", "lint", "pitfalls"), seedOptions)
	got := findings(results)
	want := []string{
		"warn lint.latest-tag compose.yaml:service/llm",
		"warn lint.replicas-gpus compose.yaml:service/llm",
		"warn lint.latest-tag deploy.yaml:Deployment/bad",
		"fail lint.gpu-limit deploy.yaml:Deployment/bad",
		"fail lint.startup-budget deploy.yaml:Deployment/bad",
		"warn lint.readiness-same deploy.yaml:Deployment/bad",
		"fail lint.replicas-gpus deploy.yaml:Deployment/bad",
		"fail lint.hpa-gpu-blind deploy.yaml:HorizontalPodAutoscaler/bad",
		"warn lint.pdb deploy.yaml:Deployment/bad",
		"fail lint.gpu-limit deploy.yaml:Deployment/nolimit",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range results {
		if r.Remedy == "" || r.Measured == "" {
			t.Errorf("%s %s: a finding needs what was measured and a remedy: %+v", r.ID, r.Subject, r)
		}
	}
}

func TestLintClean(t *testing.T) {
	t.Parallel()
	got := LintDir(filepath.Join("testdata", "lint", "clean"), seedOptions)
	if len(got) != 1 || got[0].Status != Pass || got[0].ID != "lint.manifests" {
		t.Errorf("clean manifests: %+v", got)
	}
}

func TestLintManifestsErrors(t *testing.T) {
	t.Parallel()
	got := LintManifests([]Manifest{{Name: "broken.yaml", Data: []byte("kind: Deployment\nspec: [unclosed\n")}}, LintOptions{})
	if len(got) != 1 || got[0].ID != "lint.parse" || got[0].Status != Fail {
		t.Errorf("broken YAML: %+v", got)
	}
	if got := LintDir(t.TempDir(), LintOptions{}); len(got) != 1 || got[0].Status != Warn {
		t.Errorf("empty dir: %+v", got)
	}
	if got := LintDir(filepath.Join(t.TempDir(), "missing"), LintOptions{}); len(got) != 1 || got[0].Status != Fail {
		t.Errorf("missing dir: %+v", got)
	}
}

func TestFloatingTag(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"nginx":                       true,
		"nginx:latest":                true,
		"localhost:5000/llm":          true,
		"localhost:5000/llm:1.0":      false,
		"redis:7-alpine":              false,
		"llm@sha256:abcd":             false,
		"registry.io/team/llm:latest": true,
	}
	for ref, want := range tests {
		if got := floatingTag(ref); got != want {
			t.Errorf("floatingTag(%q) = %v, want %v", ref, got, want)
		}
	}
}
