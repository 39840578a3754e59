package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestPresetsFillWhatTheFileLeavesOut reads a file that names only the server
// and the model: the preset gives image, port, probes, args, startup budget,
// model storage and the autoscaling target, as each server documents them.
func TestPresetsFillWhatTheFileLeavesOut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		server, image string
		port          int
		live, ready   string
		args          []string
		inFlight, rps int
	}{
		{ServerVLLM, "vllm/vllm-openai:v0.8.5", 8000, "/health", "/health",
			[]string{"--model", "org/m", "--host", "0.0.0.0", "--port", "8000", "--max-model-len", "8192", "--tensor-parallel-size", "2"}, 12, 0},
		{ServerTGI, "ghcr.io/huggingface/text-generation-inference:3.0.1", 8080, "/health", "/health",
			[]string{"--model-id", "org/m", "--hostname", "0.0.0.0", "--port", "8080", "--max-total-tokens", "8192", "--num-shard", "2"}, 12, 0},
		{ServerOllama, "ollama/ollama:0.17.4", 11434, "/", "/api/version", []string{"serve"}, 0, 100},
		{ServerCustom, "", 8000, "/health", "/ready", nil, 0, 100},
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			t.Parallel()
			doc := "apiVersion: aideploy.dev/v1\nname: chat\nserver: " + tt.server + "\nmodel:\n  name: org/m\nresources:\n  gpus: 2\n"
			if tt.server == ServerCustom {
				doc += "image: r.example.com/chat:1.0.0\n"
				tt.image = "r.example.com/chat:1.0.0"
			}
			cfg, err := Parse("aideploy.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Image != tt.image || cfg.Port != tt.port || cfg.Health.Path != tt.live || cfg.Health.ReadyPath != tt.ready {
				t.Errorf("image %s port %d probes %s %s; want %s %d %s %s", cfg.Image, cfg.Port, cfg.Health.Path, cfg.Health.ReadyPath, tt.image, tt.port, tt.live, tt.ready)
			}
			if !slices.Equal(cfg.Args, tt.args) {
				t.Errorf("args %q, want %q", cfg.Args, tt.args)
			}
			if cfg.Rollout.HealthCheck.Path != tt.ready || cfg.Rollout.StartupBudget != cfg.Startup.Budget || cfg.Startup.Budget != cfg.Preset().Budget {
				t.Errorf("rollout health gate %s budget %s, startup budget %s", cfg.Rollout.HealthCheck.Path, cfg.Rollout.StartupBudget, cfg.Startup.Budget)
			}
			if cfg.Model.Volume != VolumePVC || cfg.Model.Size <= 0 || cfg.Resources.SharedMemory <= 0 {
				t.Errorf("model volume %s size %s, shared memory %s", cfg.Model.Volume, cfg.Model.Size, cfg.Resources.SharedMemory)
			}
			// The rollout's warm-up asks the stock server for the model it serves.
			if wantModel := tt.server != ServerCustom; strings.Contains(cfg.Rollout.Warmup.Body, `"model":"org/m"`) != wantModel {
				t.Errorf("warm-up body %s: names the served model %v, want %v", cfg.Rollout.Warmup.Body, !wantModel, wantModel)
			}
			if a := cfg.Autoscaling; a.RequestsInFlight != tt.inFlight || a.RequestsPerSecond != tt.rps {
				t.Errorf("in flight %d rps %d, want %d %d", a.RequestsInFlight, a.RequestsPerSecond, tt.inFlight, tt.rps)
			}
		})
	}
}

// TestPresetProblems: each mistake is refused with the field and what to do.
func TestPresetProblems(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: aideploy.dev/v1\nname: chat\n"
	tests := []struct{ name, yaml, want string }{
		{"unknown server", head + "server: triton\n", `server ("triton") must be one of vllm, tgi, ollama, custom`},
		{"api key without a reader", head + "server: ollama\napiKey:\n  fromEnv: KEY\n", "apiKey is set, but the ollama server reads no API key"},
		{"api key without a source", head + "server: vllm\napiKey: {}\n", "apiKey needs secretRef (Kubernetes) or fromEnv (Docker)"},
		{"old volume name", head + "server: vllm\nmodel:\n  volume: llama-weights\n", "an existing claim or Docker volume goes in model.claimName"},
		{"hostPath without a folder", head + "server: vllm\nmodel:\n  volume: hostPath\n", "model.hostPath (\"\") must be an absolute folder"},
		{"claim on scratch", head + "server: vllm\nmodel:\n  volume: emptyDir\n  claimName: w\n", "model.claimName is set but model.volume is emptyDir"},
		{"bad access mode", head + "server: vllm\nmodel:\n  accessMode: Shared\n", `model.accessMode ("Shared") must be one of`},
		{"in flight without a gauge", head + "server: ollama\nautoscaling:\n  requestsInFlight: 4\n", "needs a server that counts its running requests"},
		{"every target off", head + "server: vllm\nautoscaling:\n  cpuTarget: 0\n  memoryTarget: 0\n  requestsPerSecond: 0\n  requestsInFlight: 0\n", "set at least one target or disable autoscaling"},
		{"port 0 written", head + "server: vllm\nport: 0\n", "port (0) must be between 1 and 65535"},
		{"custom needs an image", head + "server: custom\n", "image is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("aideploy.yaml", []byte(tt.yaml))
			var cfgErr *Error
			if !errors.As(err, &cfgErr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
