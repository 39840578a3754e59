package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/iostreams"
	"github.com/aideploy/aideploy/internal/render"
)

// goldenConfigs are render's golden configurations, one per preset among them.
var goldenConfigs = []string{"cpu", "gpu1", "gpu4-rps", "vllm", "tgi", "ollama"}

// TestInitIsRender renders each golden configuration through init's path (the
// configuration written as aideploy.yaml, read back, rendered) and through
// render's (the golden aideploy.yaml loaded and rendered), and compares the
// bytes of every file: init and a later render must never disagree.
func TestInitIsRender(t *testing.T) {
	t.Parallel()
	for _, name := range goldenConfigs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			golden := filepath.Join("..", "render", "testdata", name, config.DefaultFile)
			cfg, err := config.Load(golden)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			configPath := filepath.Join(dir, config.DefaultFile)
			fromInit, err := initFiles(cfg, configPath, dir)
			if err != nil {
				t.Fatalf("init: %v", err)
			}
			if fromInit[0].Path != config.DefaultFile {
				t.Fatalf("init's first file is %s, want %s", fromInit[0].Path, config.DefaultFile)
			}
			// render reads the file init wrote, as `aideploy render` would.
			written, err := config.Parse(configPath, fromInit[0].Data)
			if err != nil {
				t.Fatal(err)
			}
			fromRender, err := renderFiles(written, configPath, dir, nil)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			// And render of the golden file itself, in the same folder.
			fromGolden, err := renderFiles(cfg, configPath, dir, nil)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			want := filesByPath(fromRender)
			got := filesByPath(fromInit[1:])
			if len(got) != len(want) || len(fromGolden) != len(fromRender) {
				t.Fatalf("init rendered %d files, render of its file %d, render of the golden file %d", len(got), len(want), len(fromGolden))
			}
			for i, f := range fromGolden {
				if w, ok := want[f.Path]; !ok || !bytes.Equal(w, f.Data) || !bytes.Equal(got[f.Path], f.Data) || fromRender[i].Path != f.Path {
					t.Errorf("%s differs between init, render of init's file and render of the golden file", f.Path)
				}
			}
		})
	}
}

func filesByPath(files []render.File) map[string][]byte {
	m := map[string][]byte{}
	for _, f := range files {
		m[f.Path] = f.Data
	}
	return m
}

// TestInitNeverRendersAnHPAWithoutMetrics runs init on defaults and with the
// flags that used to leave the HPA's metrics empty (which the API server
// fills in as CPU 80%): every HPA rendered names a metric, and a choice that
// leaves none is refused, naming the flag.
func TestInitNeverRendersAnHPAWithoutMetrics(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		args    []string
		refused string
	}{
		{"defaults", nil, ""},
		{"cpu only", []string{"--gpus", "0"}, ""},
		{"vllm", []string{"--server", "vllm", "--gpus", "1"}, ""},
		{"ollama on cpu", []string{"--server", "ollama", "--gpus", "0"}, ""},
		{"rps off on a GPU", []string{"--rps-target", "0"}, "--rps-target"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			streams, _, _, _ := iostreams.Test()
			var opts *initOptions
			cmd := newCmdInit(NewFactory(streams), func(_ context.Context, o *initOptions) error { opts = o; return nil })
			cmd.SetArgs(append([]string{"svc"}, tt.args...))
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			cfg, err := opts.buildConfig("svc")
			if err == nil {
				dir := t.TempDir()
				var files []render.File
				files, err = initFiles(cfg, filepath.Join(dir, config.DefaultFile), dir)
				for _, fl := range files {
					if fl.Path == "k8s/hpa.yaml" && !bytes.Contains(fl.Data, []byte("\n    - type: ")) {
						t.Errorf("the HPA names no metric:\n%s", fl.Data)
					}
				}
			}
			switch {
			case tt.refused == "" && err != nil:
				t.Fatal(err)
			case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
				t.Fatalf("error %v, want one naming %s", err, tt.refused)
			}
		})
	}
}

// The preset flags reach the configuration: server, model, model volume and
// storage class; the port, image and probes then come from the preset.
func TestInitPresetFlags(t *testing.T) {
	t.Parallel()
	streams, _, _, _ := iostreams.Test()
	var got *initOptions
	cmd := newCmdInit(NewFactory(streams), func(_ context.Context, o *initOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"svc", "--server", "tgi", "--model", "org/m", "--model-volume", "hostPath", "--storage-class", "fast", "--gpus", "2"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	cfg, err := got.buildConfig("svc")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server != config.ServerTGI || cfg.Model.Name != "org/m" || cfg.Model.Volume != config.VolumeHostPath || cfg.Model.StorageClass != "fast" {
		t.Errorf("server %s model %s volume %s class %s", cfg.Server, cfg.Model.Name, cfg.Model.Volume, cfg.Model.StorageClass)
	}
	p := cfg.Preset()
	if cfg.Port != p.Port || cfg.Image != p.Image || cfg.Health != p.Health || !slices.Contains(cfg.Args, "--num-shard") {
		t.Errorf("port %d image %s health %+v args %q: want the TGI preset's, sharded over 2 GPUs", cfg.Port, cfg.Image, cfg.Health, cfg.Args)
	}
	// hostPath needs a folder: without --host-path init refuses, naming the flag.
	dir := t.TempDir()
	if _, err := initFiles(cfg, filepath.Join(dir, config.DefaultFile), dir); err == nil || !strings.Contains(err.Error(), "--host-path") {
		t.Errorf("init with --model-volume hostPath and no folder: %v, want a problem naming --host-path", err)
	}
	cfg.Model.HostPath = "/srv/models"
	files, err := initFiles(cfg, filepath.Join(dir, config.DefaultFile), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Path == "k8s/deployment.yaml" && !strings.Contains(string(f.Data), `path: "/srv/models"`) {
			t.Errorf("the Deployment does not mount the host folder:\n%s", f.Data)
		}
	}
}
