package config

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// Default returns a configuration with every default filled in, as a file
// that sets only name and image would give.
func Default() *Config {
	c := base()
	c.derive(nil)
	return c
}

// New returns a configuration for server before its derived fields are
// filled: a program that builds a file (init) sets what it was told, then
// calls Derive, exactly as reading a file that sets those fields would.
func New(server string) *Config {
	c := base()
	c.Server = server
	return c
}

// Derive fills every field the configuration leaves to its preset or to
// another field; written says which field paths were set on purpose (nil: none).
func (c *Config) Derive(written func(path string) bool) { c.derive(written) }

// base is Default before derived fields are filled; decoding a file overlays
// it, so a field left out keeps its default and derived ones follow the file.
func base() *Config {
	ro := rollout.Default()
	ro.HealthCheck.Path = "" // derived from health.readyPath unless set
	ro.StartupBudget = 0     // derived from startup.budget unless set
	return &Config{
		Gateway:    gateway.Default(),
		Rollout:    ro,
		APIVersion: APIVersion,
		// Port, health paths, image, args and the startup budget follow the server's preset.
		Server: ServerCustom,
		Model: Model{
			Path:          "/models",
			Params:        "8B",
			DType:         "bf16",
			ContextLength: 8192,
			Concurrency:   16,
		},
		Resources: Resources{CPU: "1", Memory: 4 * units.ByteSize(1<<30), GPUs: 1},
		Replicas:  3,
		Autoscaling: Autoscaling{
			Enabled:     true,
			Engine:      EngineHPA,
			MinReplicas: 2,
			MaxReplicas: 20,
			// Targets are derived from resources.gpus unless the file sets one.
			// The seed's behaviour: scale up at once, scale down slowly.
			ScaleUp:   ScalingRule{StabilizationWindow: 0, Percent: 100, Period: units.Duration(15 * time.Second)},
			ScaleDown: ScalingRule{StabilizationWindow: units.Duration(300 * time.Second), Percent: 10, Period: units.Duration(60 * time.Second)},
		},
		Build: Build{
			CUDAVersion:   "12.4.1",
			PythonVersion: "3.11",
			Command:       []string{"python3", "-m", "uvicorn", "server:app", "--host", "0.0.0.0", "--port", "8000"},
		},
	}
}

const (
	units1s  = units.Duration(time.Second)
	units30m = units.Duration(30 * time.Minute)
	units1h  = units.Duration(time.Hour)
)

// defaultModelSize is the rendered claim's size when the file names none: an
// 8B model in bf16 with room for a second version during an update.
const defaultModelSize = units.ByteSize(100 << 30)

// derive fills settings that default to another field of the file, so a value
// is written once: the preset gives image, port, probes, args and startup
// budget; the rollout's health gate uses the readiness path and the startup
// budget unless the rollout section sets its own. written says whether the
// file set a field path; nil means it set nothing.
func (c *Config) derive(written func(path string) bool) {
	if written == nil {
		written = func(string) bool { return false }
	}
	p := c.Preset()
	if c.Image == "" && !written("image") {
		c.Image = p.Image
	}
	if c.Port == 0 && !written("port") {
		c.Port = p.Port
	}
	if c.Health.Path == "" {
		c.Health.Path = p.Health.Path
	}
	if c.Health.ReadyPath == "" {
		c.Health.ReadyPath = p.Health.ReadyPath
	}
	if len(c.Args) == 0 {
		c.Args = c.PresetArgs()
	}
	if c.Startup.Budget == 0 {
		c.Startup.Budget = p.Budget
	}
	if c.Startup.ColdStart == 0 {
		c.Startup.ColdStart = c.Startup.Budget * 4 / 5
	}
	if c.Model.Volume == "" {
		c.Model.Volume = VolumePVC
		if c.Model.HostPath != "" {
			c.Model.Volume = VolumeHostPath
		}
	}
	if c.Model.Volume == VolumePVC && c.Model.ClaimName == "" {
		if c.Model.Size == 0 {
			c.Model.Size = defaultModelSize
		}
		if c.Model.AccessMode == "" {
			c.Model.AccessMode = "ReadWriteMany"
		}
	}
	if c.Resources.SharedMemory == 0 && c.Resources.GPUs > 0 {
		c.Resources.SharedMemory = units.ByteSize(1 << 30)
	}
	if !p.Dockerfile && c.Rollout.Warmup.Body == rollout.DefaultWarmupBody {
		// A stock server answers only for the model it serves: vLLM names it
		// by --model, Ollama by the model pulled; "default" would be a 404.
		model := c.Model.Name
		if model == "" {
			model = c.Model.Path
		}
		name, _ := json.Marshal(model)
		c.Rollout.Warmup.Body = strings.Replace(rollout.DefaultWarmupBody, `"model":"default"`, `"model":`+string(name), 1)
	}
	if c.Rollout.HealthCheck.Path == "" {
		c.Rollout.HealthCheck.Path = c.Health.ReadyPath
	}
	if c.Rollout.StartupBudget == 0 {
		c.Rollout.StartupBudget = c.Startup.Budget
	}
	// Targets the file wrote stay as written, zeros included: what is off in
	// the file is off in the output (validation refuses an HPA with none).
	c.Autoscaling.derive(c, written)
	c.Gateway.SetDefaults()
}

// derive fills the autoscaling targets the file leaves to the preset, the
// GPUs and the engine.
func (a *Autoscaling) derive(c *Config, written func(path string) bool) {
	p := c.Preset()
	if a.Engine == EngineKEDA && a.PrometheusURL == "" {
		a.PrometheusURL = DefaultPrometheusURL
	}
	for _, f := range []string{"cpuTarget", "memoryTarget", "requestsPerSecond", "requestsInFlight", "queueDepth", "timeToFirstToken"} {
		if written("autoscaling." + f) {
			return
		}
	}
	if a.CPUTarget != 0 || a.MemoryTarget != 0 || a.RequestsPerSecond != 0 || a.RequestsInFlight != 0 || a.QueueDepth != 0 || a.TimeToFirstToken != 0 {
		return
	}
	switch {
	case a.Engine == EngineKEDA:
		// What a replica feels, as the gateway sees it for any server: its
		// requests in flight with a quarter of headroom, and a queue of a
		// quarter batch per replica when the gateway's limit holds requests back.
		a.RequestsInFlight = max(1, c.Model.Concurrency*3/4)
		a.QueueDepth = max(1, c.Model.Concurrency/4)
	case c.Resources.GPUs > 0 && p.BusyMetric != "":
		// The server's own count of running requests says when its batch is
		// full; a quarter of headroom scales out before requests queue.
		a.RequestsInFlight = max(1, c.Model.Concurrency*3/4)
	case c.Resources.GPUs > 0:
		// GPU-aware by default: CPU and memory say nothing about a GPU that
		// is saturated (the seed's HPA scaled CPU pods while the GPU choked).
		// The seed's per-pod rate; preflight checks the custom metrics API it needs.
		a.RequestsPerSecond = 100
	default:
		a.CPUTarget, a.MemoryTarget = 70, 80
	}
}
