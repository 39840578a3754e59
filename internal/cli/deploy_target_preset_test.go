package cli

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aideploy/aideploy/internal/config"
)

// A Docker rollout without a compose file starts the preset's server as
// compose.yaml would: with its arguments, its environment, shared memory and
// a writable model store; custom keeps its image's command and read-only weights.
func TestServiceSpecRunsThePreset(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"vllm", "gpu4-rps"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(filepath.Join("..", "render", "testdata", name, config.DefaultFile))
			if err != nil {
				t.Fatal(err)
			}
			svc, _, _, err := serviceSpec(context.Background(), cfg, "")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(svc.Command, cfg.Args) {
				t.Errorf("command %q, want %q", svc.Command, cfg.Args)
			}
			if int64(svc.ShmSize) != int64(cfg.Resources.SharedMemory) {
				t.Errorf("shm %d, want %d", svc.ShmSize, cfg.Resources.SharedMemory)
			}
			if len(svc.Volumes) != 1 || svc.Volumes[0].Target != cfg.Model.Path || svc.Volumes[0].ReadOnly != cfg.Preset().Dockerfile {
				t.Errorf("volumes %+v, want one at %s, read-only %v", svc.Volumes, cfg.Model.Path, cfg.Preset().Dockerfile)
			}
			for _, e := range cfg.ServerEnv() {
				if _, ok := svc.Environment[e.Name]; !ok {
					t.Errorf("environment lacks %s", e.Name)
				}
			}
			if cache := cfg.Preset().CacheEnv; cache != "" {
				if v := svc.Environment[cache]; v == nil || *v != cfg.Model.Path {
					t.Errorf("%s = %v, want %s", cache, v, cfg.Model.Path)
				}
			}
		})
	}
}

// Without a compose file the model volume is the one `docker compose` makes
// of compose.yaml's: the same Docker name, so a model pulled into it (as the
// README's quickstart does) is what the replicas find.
func TestServiceSpecModelVolumeIsComposes(t *testing.T) {
	t.Setenv("AIDEPLOY_ADMIN_TOKEN", "test")
	t.Setenv("QWEN_API_KEY", "test")
	dir := filepath.Join("..", "render", "testdata", "vllm")
	cfg, err := config.Load(filepath.Join(dir, config.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	svc, vols, _, err := serviceSpec(context.Background(), cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	composed, composedVols, _, err := serviceSpec(context.Background(), cfg, filepath.Join(dir, "compose.yaml.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Volumes) != 1 || len(composed.Volumes) != 1 {
		t.Fatalf("volumes %+v and %+v, want one each", svc.Volumes, composed.Volumes)
	}
	got, want := vols[svc.Volumes[0].Source].Name, composedVols[composed.Volumes[0].Source].Name
	if got == "" || got != want {
		t.Errorf("model volume %q without a compose file, %q with compose.yaml: they must be one", got, want)
	}
}
