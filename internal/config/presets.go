package config

import (
	"slices"
	"strconv"
	"time"

	"github.com/aideploy/aideploy/internal/units"
)

// The model servers aideploy knows how to run; custom is a server built from
// the rendered Dockerfile.
const (
	ServerVLLM   = "vllm"
	ServerTGI    = "tgi"
	ServerOllama = "ollama"
	ServerCustom = "custom"
)

// Servers lists the values of the server field.
var Servers = []string{ServerVLLM, ServerTGI, ServerOllama, ServerCustom}

// Preset is what one model server needs to run: its stock image, where it
// listens and answers probes, how long it loads, and where it keeps weights.
// The flags and paths come from each server's documentation, cited at each
// entry and in the rendered templates.
type Preset struct {
	// Image is the stock image, pinned.
	Image string
	// Port is the port the args make the server listen on.
	Port int
	// Health holds probe paths the server really serves.
	Health Health
	// Budget is the startup budget: downloading and loading weights.
	Budget units.Duration
	// CacheEnv points the server's model storage at model.path.
	CacheEnv string
	// TokenEnv is the variable holding a Hugging Face token for gated models.
	TokenEnv string
	// APIKeyEnv is the variable the server reads its API key from; empty when it has none.
	APIKeyEnv string
	// Metrics is true when the server serves Prometheus metrics on /metrics.
	Metrics bool
	// BusyMetric is the server's gauge of requests it is running, for the HPA.
	BusyMetric string
	// Dockerfile is true when the image is built from the rendered Dockerfile.
	Dockerfile bool
}

// PresetFor returns the preset of server; ok is false for an unknown name.
func PresetFor(server string) (Preset, bool) {
	const budget = units.Duration(20 * time.Minute) // a 70B download plus load fits; an 8B takes a few minutes
	switch server {
	case ServerVLLM:
		// https://docs.vllm.ai/en/v0.8.5/serving/openai_compatible_server.html
		// https://docs.vllm.ai/en/v0.8.5/serving/metrics.html
		return Preset{
			Image: "vllm/vllm-openai:v0.8.5", Port: 8000,
			// /health answers 200 once the engine runs; /v1/* needs the API key when one is set.
			Health: Health{Path: "/health", ReadyPath: "/health"},
			Budget: budget, CacheEnv: "HF_HOME", TokenEnv: "HF_TOKEN", APIKeyEnv: "VLLM_API_KEY", Metrics: true,
			BusyMetric: "vllm:num_requests_running",
		}, true
	case ServerTGI:
		// https://huggingface.co/docs/text-generation-inference/reference/launcher
		// https://huggingface.co/docs/text-generation-inference/reference/metrics
		return Preset{
			Image: "ghcr.io/huggingface/text-generation-inference:3.0.1", Port: 8080,
			Health: Health{Path: "/health", ReadyPath: "/health"},
			Budget: budget, CacheEnv: "HF_HOME", TokenEnv: "HF_TOKEN", Metrics: true,
			BusyMetric: "tgi_batch_current_size",
		}, true
	case ServerOllama:
		// https://github.com/ollama/ollama/blob/main/docs/faq.md (OLLAMA_HOST, OLLAMA_MODELS)
		// https://github.com/ollama/ollama/blob/main/docs/api.md (GET /api/version)
		return Preset{
			Image: "ollama/ollama:0.17.4", Port: 11434,
			// GET / answers "Ollama is running"; models load on the first request.
			Health: Health{Path: "/", ReadyPath: "/api/version"},
			Budget: units.Duration(5 * time.Minute), CacheEnv: "OLLAMA_MODELS",
		}, true
	case ServerCustom:
		return Preset{
			Port: 8000, Health: Health{Path: "/health", ReadyPath: "/ready"},
			Budget: units.Duration(10 * time.Minute), Dockerfile: true, Metrics: true,
		}, true
	}
	return Preset{}, false
}

// Preset returns the preset of c.Server (custom's when the name is unknown;
// Validate reports it).
func (c *Config) Preset() Preset {
	if p, ok := PresetFor(c.Server); ok {
		return p
	}
	p, _ := PresetFor(ServerCustom)
	return p
}

// TensorParallel is the number of GPUs one copy of the model spans.
func (c *Config) TensorParallel() int {
	if c.Model.TensorParallel > 0 {
		return c.Model.TensorParallel
	}
	return max(1, c.Resources.GPUs)
}

// PresetArgs are the container arguments a preset derives from the file:
// the model, the port, the context length and the tensor-parallel size.
// custom has none: its Dockerfile's CMD starts the server.
func (c *Config) PresetArgs() []string {
	model := c.Model.Name
	if model == "" {
		model = c.Model.Path
	}
	port, ctxLen := strconv.Itoa(c.Port), strconv.Itoa(c.Model.ContextLength)
	switch c.Server {
	case ServerVLLM:
		// The image's entrypoint is the OpenAI-compatible server; --model works
		// both for `vllm serve` and the older api_server module.
		args := []string{"--model", model, "--host", "0.0.0.0", "--port", port, "--max-model-len", ctxLen}
		if tp := c.TensorParallel(); tp > 1 {
			args = append(args, "--tensor-parallel-size", strconv.Itoa(tp))
		}
		return args
	case ServerTGI:
		// The image's entrypoint is text-generation-launcher.
		args := []string{"--model-id", model, "--hostname", "0.0.0.0", "--port", port, "--max-total-tokens", ctxLen}
		if tp := c.TensorParallel(); tp > 1 {
			args = append(args, "--num-shard", strconv.Itoa(tp))
		}
		return args
	case ServerOllama:
		// The image's entrypoint is /bin/ollama; the port comes from OLLAMA_HOST.
		return []string{"serve"}
	}
	return nil
}

// ArgsDerived reports whether Args are the preset's, so a written file can
// leave them out and let them follow model and port.
func (c *Config) ArgsDerived() bool { return slices.Equal(c.Args, c.PresetArgs()) }

// ServerEnv is the file's environment after what the preset needs and the
// file does not set itself: a writable HOME for the stock images, the model
// storage variable on model.path, Ollama's listen address and limits, and the
// API key by reference. Every target (compose, Kubernetes, a Docker rollout)
// gives the server this environment.
func (c *Config) ServerEnv() []EnvVar {
	p := c.Preset()
	set := map[string]bool{}
	for _, e := range c.Env {
		set[e.Name] = true
	}
	var add []EnvVar
	plain := func(name, value string) {
		if !set[name] {
			add = append(add, EnvVar{Name: name, Value: value})
		}
	}
	if !p.Dockerfile {
		// Stock images expect root; as user 1000 their HOME is /, which is not
		// writable, and vLLM, PyTorch and Ollama keep caches and keys under it.
		plain("HOME", "/tmp")
	}
	if p.CacheEnv != "" {
		plain(p.CacheEnv, c.Model.Path)
	}
	if c.Server == ServerOllama {
		plain("OLLAMA_HOST", "0.0.0.0:"+strconv.Itoa(c.Port))
		plain("OLLAMA_CONTEXT_LENGTH", strconv.Itoa(c.Model.ContextLength))
		plain("OLLAMA_NUM_PARALLEL", strconv.Itoa(c.Model.Concurrency))
	}
	if k := c.APIKey; k != nil && p.APIKeyEnv != "" && !set[p.APIKeyEnv] {
		add = append(add, EnvVar{Name: p.APIKeyEnv, SecretRef: k.SecretRef, FromEnv: k.FromEnv})
	}
	return append(add, c.Env...)
}
