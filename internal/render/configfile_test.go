package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
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

// TestConfigFileGatewayExample: the commented gateway section that init
// writes becomes, uncommented, a valid one, once the placeholder hash is
// replaced; left as it is, the placeholder is refused with its line.
func TestConfigFileGatewayExample(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Name, cfg.Image = "chat", "registry.example.com/chat:1.0.0"
	data, err := ConfigFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Uncomment from "# gateway:" to the end of its block.
	lines := strings.Split(string(data), "\n")
	start := slices.Index(lines, "# gateway:")
	if start < 0 {
		t.Fatalf("no commented gateway section in:\n%s", data)
	}
	for i := start; i < len(lines) && strings.HasPrefix(lines[i], "#"); i++ {
		lines[i] = strings.TrimPrefix(strings.TrimPrefix(lines[i], "#"), " ")
	}
	uncommented := strings.Join(lines, "\n")
	_, err = config.Parse(config.DefaultFile, []byte(uncommented))
	placeholderLine := fmt.Sprintf("%s:%d:", config.DefaultFile, start+1+slices.IndexFunc(lines[start:], func(l string) bool { return strings.Contains(l, "sha256:") }))
	if err == nil || !strings.Contains(err.Error(), placeholderLine) || !strings.Contains(err.Error(), "gateway.auth.keys[0].sha256") ||
		!strings.Contains(err.Error(), "`aideploy gateway key team-a`") {
		t.Fatalf("the placeholder hash: got %v, want an error at %s naming gateway.auth.keys[0].sha256", err, placeholderLine)
	}
	sum := sha256.Sum256([]byte("a key"))
	filled := strings.Replace(uncommented, "paste the 64 hex digits here", hex.EncodeToString(sum[:]), 1)
	back, err := config.Parse(config.DefaultFile, []byte(filled))
	if err != nil {
		t.Fatalf("the uncommented gateway section is invalid: %v\n%s", err, filled)
	}
	g := back.Gateway
	if !g.Auth.Enabled || len(g.Auth.Keys) != 1 || g.Auth.Keys[0].Name != "team-a" || !g.Limits.Enabled ||
		g.Limits.Default.Requests != 100 || g.Limits.Default.TokensPerMinute != 200000 {
		t.Fatalf("the example's settings did not arrive: %+v", g)
	}
}
