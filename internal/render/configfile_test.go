package render

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/aideploy/aideploy/internal/config"
)

// TestConfigFileRoundTrip: what init writes reads back as the same configuration.
func TestConfigFileRoundTrip(t *testing.T) {
	t.Parallel()
	starter := config.Default()
	starter.Name, starter.Image = "chat", "registry.example.com/chat:1.0.0"
	cases := map[string]*config.Config{"init-defaults": starter}
	for _, name := range goldenConfigs {
		cases[name] = loadTestConfig(t, name)
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := ConfigFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			back, err := config.Parse(config.DefaultFile, data)
			if err != nil {
				t.Fatalf("the written aideploy.yaml does not parse: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(back, cfg) {
				t.Errorf("round trip changed the configuration:\n got %+v\nwant %+v", back, cfg)
			}
		})
	}
}

func TestConfigFileGolden(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Name, cfg.Image = "chat", "registry.example.com/chat:1.0.0"
	got, err := ConfigFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "init-aideploy.yaml.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/render -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("aideploy.yaml differs from %s; run go test ./internal/render -update if intended\n%s", golden, firstDiff(string(want), string(got)))
	}
}
