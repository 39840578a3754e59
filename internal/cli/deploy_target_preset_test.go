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
