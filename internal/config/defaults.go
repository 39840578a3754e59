package config

import (
	"time"

	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// Default returns a configuration with every default filled in, as a file
// that sets only name and image would give.
func Default() *Config {
	c := base()
	c.derive()
	return c
}

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
		Port:       8000,
		Health:     Health{Path: "/health", ReadyPath: "/ready"},
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
			MinReplicas: 2,
			MaxReplicas: 20,
			// Targets are derived from resources.gpus unless the file sets one.
			// The seed's behaviour: scale up at once, scale down slowly.
			ScaleUp:   ScalingRule{StabilizationWindow: 0, Percent: 100, Period: units.Duration(15 * time.Second)},
			ScaleDown: ScalingRule{StabilizationWindow: units.Duration(300 * time.Second), Percent: 10, Period: units.Duration(60 * time.Second)},
		},
		Startup: Startup{Budget: units.Duration(10 * time.Minute), ColdStart: units.Duration(8 * time.Minute)},
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

// derive fills settings that default to another field of the file, so a value
// is written once: the rollout's health gate uses the readiness path and the
// startup budget unless the rollout section sets its own.
func (c *Config) derive() {
	if c.Rollout.HealthCheck.Path == "" {
		c.Rollout.HealthCheck.Path = c.Health.ReadyPath
	}
	if c.Rollout.StartupBudget == 0 {
		c.Rollout.StartupBudget = c.Startup.Budget
	}
	if a := &c.Autoscaling; a.CPUTarget == 0 && a.MemoryTarget == 0 && a.RequestsPerSecond == 0 {
		if c.Resources.GPUs > 0 {
			// GPU-aware by default: CPU and memory say nothing about a GPU that
			// is saturated (the seed's HPA scaled CPU pods while the GPU choked).
			// The seed's per-pod rate; preflight checks the custom metrics API it needs.
			a.RequestsPerSecond = 100
		} else {
			a.CPUTarget, a.MemoryTarget = 70, 80
		}
	}
	c.Gateway.SetDefaults()
}
