package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const valid = `apiVersion: aideploy.dev/v1
name: chat
image: registry.example.com/chat:1.0.0
resources:
  gpus: 1
  memory: 16Gi
autoscaling:
  minReplicas: 2
  maxReplicas: 4
`

func TestParseValidKeepsDefaults(t *testing.T) {
	cfg, err := Parse("aideploy.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 8000 || cfg.Resources.Memory.String() != "16Gi" || cfg.Autoscaling.MaxReplicas != 4 {
		t.Fatalf("unexpected config: %+v", cfg)
	}
}

func TestAutoscalingTargetsFollowGPUs(t *testing.T) {
	tests := []struct {
		name, extra   string
		cpu, mem, rps int
	}{
		{"gpu service scales on requests", "", 0, 0, 100},
		{"cpu service scales on cpu and memory", "  cpu: \"2\"\n", 70, 80, 0},
		{"explicit target wins", "autoscaling:\n  cpuTarget: 50\n", 50, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "apiVersion: aideploy.dev/v1\nname: chat\nimage: r/chat:1\n"
			switch {
			case strings.HasPrefix(tt.extra, "  cpu"):
				doc += "resources:\n  gpus: 0\n" + tt.extra
			default:
				doc += tt.extra
			}
			cfg, err := Parse("aideploy.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			a := cfg.Autoscaling
			if a.CPUTarget != tt.cpu || a.MemoryTarget != tt.mem || a.RequestsPerSecond != tt.rps {
				t.Errorf("targets cpu %d memory %d rps %d; want %d %d %d", a.CPUTarget, a.MemoryTarget, a.RequestsPerSecond, tt.cpu, tt.mem, tt.rps)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string // each must appear in the error text
	}{
		{"unknown field", valid + "replica: 3\n", []string{"aideploy.yaml:10:1: replica is not a known field"}},
		{"nested unknown field", valid + "model:\n  weights: 8B\n", []string{"aideploy.yaml:11:3: model.weights is not a known field", "allowed here: accessMode, claimName, concurrency"}},
		{"wrong type", valid + "port: http\n", []string{"aideploy.yaml:10:7: port must be a whole number, not \"http\""}},
		{"negative replicas", valid + "replicas: -2\n", []string{":10:1: replicas (-2) must not be negative"}},
		{"min above max", strings.Replace(valid, "maxReplicas: 4", "maxReplicas: 1", 1), []string{"aideploy.yaml:9:3: autoscaling.maxReplicas (1) is below autoscaling.minReplicas (2)"}},
		{"latest tag", strings.Replace(valid, "chat:1.0.0", "chat:latest", 1), []string{":3:1: image", "uses the tag latest; pin a version"}},
		{"no tag", strings.Replace(valid, "chat:1.0.0", "chat", 1), []string{":3:1: image", "has no tag"}},
		{"registry port is not a tag", strings.Replace(valid, "registry.example.com/chat:1.0.0", "localhost:5000/chat", 1), []string{"has no tag"}},
		{"bad duration", valid + "startup:\n  budget: 10\n", []string{":11:11: startup.budget (\"10\") is not a duration"}},
		{"bad size", strings.Replace(valid, "16Gi", "lots", 1), []string{":6:11: resources.memory (\"lots\") is not a size"}},
		{"duplicate key", valid + "name: other\n", []string{":10:1: name is set twice"}},
		{"malformed yaml", valid + "model: [\n", []string{"is not valid YAML"}},
		{"empty", "  \n", []string{"aideploy.yaml:1:1: is empty"}},
		{"secret value", valid + "env:\n  - name: HF_TOKEN\n    value: hf_abc\n", []string{":12:5: env[0].value holds what looks like a secret"}},
		{"bad timezone and order", valid + "prewarm:\n  - name: ny\n    start: 2027-01-01T03:00\n    end: 2026-12-31T23:00\n    timezone: Mars/Base\n    replicas: 10\n",
			[]string{"prewarm[0].timezone (\"Mars/Base\") is not an IANA timezone", "prewarm[0].end (2026-12-31T23:00) must be after prewarm start"}},
		{"several at once", valid + "port: 0\nmodel:\n  dtype: bf17\n", []string{"port (0) must be between 1 and 65535", "model.dtype (\"bf17\") must be one of"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("aideploy.yaml", []byte(tt.yaml))
			var cfgErr *Error
			if !errors.As(err, &cfgErr) {
				t.Fatalf("want *config.Error, got %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%s", w, err)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "aideploy.yaml"))
	if err == nil || !strings.Contains(err.Error(), "does not exist; run `aideploy init`") {
		t.Fatalf("got %v", err)
	}
}

func TestParseParams(t *testing.T) {
	for in, want := range map[string]float64{"8B": 8e9, "1.5b": 1.5e9, "350M": 350e6, "70K": 7e4, "7000000000": 7e9} {
		got, err := ParseParams(in)
		if err != nil || got != want {
			t.Errorf("ParseParams(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseParams("big"); err == nil {
		t.Error("ParseParams(big) succeeded")
	}
	// "8" is 8B written short, not 8 parameters (which would size memory at nothing).
	for _, in := range []string{"8", "70", "1.5", "350000"} {
		_, err := ParseParams(in)
		if err == nil || !strings.Contains(err.Error(), "needs a unit: "+in+"B for "+in+" billion") {
			t.Errorf("ParseParams(%q) = %v, want an error asking for a unit", in, err)
		}
	}
}

// A file naming only what has no default loads: every default is valid.
func TestDefaultIsValidOnceNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aideploy.yaml")
	if err := os.WriteFile(path, []byte("apiVersion: aideploy.dev/v1\nname: chat\nimage: r/chat:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
}
