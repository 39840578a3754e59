package render

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/aideploy/aideploy/internal/config"
)

func fileData(t *testing.T, files []File, path string) []byte {
	t.Helper()
	for _, f := range files {
		if f.Path == path {
			return f.Data
		}
	}
	t.Fatalf("%s was not rendered", path)
	return nil
}

// loadCompose loads compose.yaml the way docker compose does: schema
// validation, interpolation from env, normalisation and consistency checks.
func loadCompose(t *testing.T, data []byte, env map[string]string) (*types.Project, error) {
	t.Helper()
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  t.TempDir(),
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: data}},
		Environment: env,
	})
}

// secretEnv is what the deploying shell must export for cfg's secrets.
func secretEnv(cfg *config.Config) map[string]string {
	env := map[string]string{"AIDEPLOY_ADMIN_TOKEN": "from-the-shell"}
	if k := cfg.APIKey; k != nil && k.FromEnv != "" {
		env[k.FromEnv] = "from-the-shell"
	}
	for _, e := range cfg.Env {
		switch {
		case e.FromEnv != "":
			env[e.FromEnv] = "from-the-shell"
		case e.SecretRef != nil:
			env[e.Name] = "from-the-shell"
		}
	}
	return env
}

func TestComposeLoads(t *testing.T) {
	t.Parallel()
	for _, name := range goldenConfigs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := loadTestConfig(t, name)
			data := fileData(t, renderTest(t, name, Compose), "compose.yaml")
			p, err := loadCompose(t, data, secretEnv(cfg))
			if err != nil {
				t.Fatalf("compose.yaml does not load: %v\n%s", err, data)
			}
			if p.Name != cfg.Name {
				t.Errorf("project %q, want %q", p.Name, cfg.Name)
			}
			svc, err := p.GetService(cfg.Name)
			if err != nil {
				t.Fatal(err)
			}
			if svc.Image != cfg.Image || len(svc.Ports) != 0 {
				t.Errorf("model service image %q ports %v: want %q and no published port", svc.Image, svc.Ports, cfg.Image)
			}
			res := svc.Deploy.Resources
			devs := res.Reservations.Devices
			if cfg.Resources.GPUs > 0 {
				if len(devs) != 1 || devs[0].Driver != "nvidia" || int(devs[0].Count) != cfg.Resources.GPUs || !slices.Equal(devs[0].Capabilities, []string{"gpu"}) {
					t.Errorf("GPU reservation %+v, want %d nvidia gpu", devs, cfg.Resources.GPUs)
				}
			} else if len(devs) != 0 {
				t.Errorf("CPU-only service reserves devices %+v", devs)
			}
			if int64(res.Reservations.MemoryBytes) != int64(cfg.Resources.Memory) || res.Limits.MemoryBytes < res.Reservations.MemoryBytes {
				t.Errorf("memory reservation %d limit %d, want reservation %d", res.Reservations.MemoryBytes, res.Limits.MemoryBytes, cfg.Resources.Memory)
			}
			// Weights are read-only for custom; a preset writes its download cache.
			readOnly := cfg.Preset().Dockerfile
			if cfg.Model.Volume == config.VolumeNone {
				if len(svc.Volumes) != 0 {
					t.Errorf("model.volume none, but volumes %+v", svc.Volumes)
				}
			} else if len(svc.Volumes) != 1 || svc.Volumes[0].ReadOnly != readOnly || svc.Volumes[0].Target != cfg.Model.Path {
				t.Errorf("model volume %+v, want read-only %v at %s", svc.Volumes, readOnly, cfg.Model.Path)
			}
			if !slices.Equal(svc.Command, cfg.Args) {
				t.Errorf("command %q, want the args %q", svc.Command, cfg.Args)
			}
			if want := int64(cfg.Resources.SharedMemory); int64(svc.ShmSize) != want {
				t.Errorf("shm_size %d, want %d", svc.ShmSize, want)
			}
			// Ollama's image has no HTTP client: `ollama list` asks the server itself.
			probe := cfg.Health.Path
			if cfg.Server == config.ServerOllama {
				probe = "ollama list"
			}
			hc := svc.HealthCheck
			if hc == nil || hc.StartPeriod == nil || time.Duration(*hc.StartPeriod) != cfg.Startup.Budget.D() || !strings.Contains(strings.Join(hc.Test, " "), probe) {
				t.Errorf("healthcheck %+v, want %s with start_period %s", hc, cfg.Health.Path, cfg.Startup.Budget)
			}
			if svc.Restart != "unless-stopped" {
				t.Errorf("restart %q", svc.Restart)
			}
			for k, v := range svc.Environment {
				apiKey := cfg.APIKey != nil && k == cfg.Preset().APIKeyEnv
				if v != nil && *v == "from-the-shell" && !apiKey && !slices.ContainsFunc(cfg.Env, func(e config.EnvVar) bool { return e.Name == k && (e.SecretRef != nil || e.FromEnv != "") }) {
					t.Errorf("%s took a shell value but is not a secret", k)
				}
			}
			for _, e := range cfg.Env {
				if e.Value != "" && (svc.Environment[e.Name] == nil || *svc.Environment[e.Name] != e.Value) {
					t.Errorf("env %s = %v, want %q", e.Name, svc.Environment[e.Name], e.Value)
				}
			}

			gw, err := p.GetService("gateway")
			if err != nil {
				t.Fatal(err)
			}
			wantCmd := types.ShellCommand{"gateway", "serve", "--config", "/etc/aideploy/aideploy.yaml",
				"--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:8081",
				"--upstream", fmt.Sprintf("http://%s:%d", cfg.Name, cfg.Port), "--redis", "redis://redis:6379/0"}
			if !strings.HasPrefix(gw.Image, "aideploy:") || !slices.Equal(gw.Command, wantCmd) {
				t.Errorf("gateway image %q command %v", gw.Image, gw.Command)
			}
			wantMem := int64(512 << 20)
			if cfg.Gateway.Cache.Enabled {
				wantMem += int64(cfg.Gateway.Cache.L1MaxBytes)
			}
			if gw.Deploy == nil || gw.Deploy.Resources.Limits == nil || int64(gw.Deploy.Resources.Limits.MemoryBytes) != wantMem {
				t.Errorf("gateway deploy %+v: want a memory limit of l1MaxBytes + 512Mi = %d", gw.Deploy, wantMem)
			}
			if len(gw.Ports) != 2 || gw.Ports[0].Published != "8080" || gw.Ports[1].HostIP != "127.0.0.1" {
				t.Errorf("gateway ports %+v: want 8080 public and the admin port on loopback", gw.Ports)
			}
			if gw.DependsOn["redis"].Condition != types.ServiceConditionHealthy {
				t.Errorf("gateway does not wait for a healthy redis: %+v", gw.DependsOn)
			}
			// One Docker layout: aideploy rollout starts the replicas, each a
			// gateway target of its own; compose starts none the pool misses.
			if svc.Deploy == nil || svc.Deploy.Replicas == nil || *svc.Deploy.Replicas != 0 {
				t.Errorf("model service deploy %+v: want replicas: 0, aideploy rollout starts them", svc.Deploy)
			}
			if _, ok := gw.DependsOn[cfg.Name]; ok {
				t.Errorf("gateway depends on %s, which compose no longer starts", cfg.Name)
			}
			redis, err := p.GetService("redis")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(redis.Command, " "), "--appendonly yes") || redis.HealthCheck == nil || !slices.Contains(redis.HealthCheck.Test, "ping") {
				t.Errorf("redis command %v healthcheck %+v: want AOF and redis-cli ping", redis.Command, redis.HealthCheck)
			}
		})
	}
}

// TestComposeNeedsSecretsFromTheShell: compose.yaml holds no secret values; a
// missing one stops docker compose with a message naming it.
func TestComposeNeedsSecretsFromTheShell(t *testing.T) {
	t.Parallel()
	data := fileData(t, renderTest(t, "gpu1", Compose), "compose.yaml")
	_, err := loadCompose(t, data, map[string]string{})
	if err == nil || !strings.Contains(err.Error(), "set OPENAI_API_KEY in the shell") {
		t.Errorf("loading without OPENAI_API_KEY: err = %v, want a required-variable error", err)
	}
}

// TestComposeSchemaValidationIsOn proves the loader rejects what the schema forbids.
func TestComposeSchemaValidationIsOn(t *testing.T) {
	t.Parallel()
	if _, err := loadCompose(t, []byte("name: x\nservices:\n  a:\n    image: busybox:1\n    restrat: always\n"), nil); err == nil {
		t.Error("compose-go accepted an unknown service field")
	}
}
