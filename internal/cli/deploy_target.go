package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/user"
	"time"

	composetypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/compose"
	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
)

// Environment variables read by the deploy commands.
const (
	envGatewayAdmin = "AIDEPLOY_GATEWAY_ADMIN" // admin API base URL of the gateway
	envGatewayOn    = "AIDEPLOY_GATEWAY_ON"    // where the Docker gateway runs: compose or host
)

// Where the gateway runs on Docker (--gateway-on).
const (
	// gatewayOnCompose: compose.yaml's gateway container, on the project
	// network; it reaches each replica by its container name.
	gatewayOnCompose = "compose"
	// gatewayOnHost: `aideploy gateway serve` on this host; it reaches each
	// replica on a loopback port.
	gatewayOnHost = "host"
)

// targetFlags are the flags every deploy command shares.
type targetFlags struct {
	Target       string // empty keeps rollout.target of aideploy.yaml
	ComposeFile  string
	GatewayAdmin string
	GatewayOn    string
	Pool         string
}

func (t *targetFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	if fs.Lookup("target") == nil {
		fs.StringVar(&t.Target, "target", "", "platform: docker or k8s (default: rollout.target of aideploy.yaml)")
	}
	fs.StringVar(&t.ComposeFile, "compose-file", "", "rendered compose file defining the service; empty builds it from aideploy.yaml")
	admin := os.Getenv(envGatewayAdmin)
	if admin == "" {
		admin = "http://127.0.0.1:8081"
	}
	fs.StringVar(&t.GatewayAdmin, "gateway-admin", admin, "admin API of the gateway that switches traffic (also "+envGatewayAdmin+")")
	on := os.Getenv(envGatewayOn)
	if on == "" {
		on = gatewayOnCompose
	}
	fs.StringVar(&t.GatewayOn, "gateway-on", on, "Docker only: where the gateway runs, compose (compose.yaml's container, reaching replicas on the project network) or host (aideploy gateway serve here, reaching them on loopback) (also "+envGatewayOn+")")
	fs.StringVar(&t.Pool, "pool", adminapi.DefaultPool, "gateway pool that serves the service")
}

// resolveTarget is the platform a command works on: --target when given,
// else rollout.target of aideploy.yaml, the same rule for every command.
func resolveTarget(f *Factory, flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	cfg, err := f.Config()
	if err != nil {
		return "", fmt.Errorf("%w (or name the platform with --target docker or --target k8s)", err)
	}
	return cfg.Rollout.Target, nil
}

// deployTarget is what a deploy command works on.
type deployTarget struct {
	cfg      *config.Config
	settings rollout.Config
	platform *compose.Platform // Docker
	kube     *k8s.Platform     // Kubernetes
	gateway  *adminapi.Client
	hash     string
}

// rolloutSettings are the rollout settings of cfg; the config loader has
// already derived the health path and startup budget from the service's own.
func rolloutSettings(cfg *config.Config) rollout.Config {
	return cfg.Rollout
}

// newDeployTarget loads aideploy.yaml and the service, and connects to Docker.
func newDeployTarget(ctx context.Context, f *Factory, t targetFlags, tweak func(*rollout.Config)) (*deployTarget, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	settings := rolloutSettings(cfg)
	if t.Target != "" {
		settings.Target = t.Target
	}
	if tweak != nil {
		tweak(&settings)
	}
	switch settings.Target {
	case rollout.TargetK8s:
		kc, err := f.Kube()
		if err != nil {
			return nil, err
		}
		// The platform reads the rollout settings too (warm-up): give it the
		// ones the flags changed, as the Docker platform gets.
		kcfg := *cfg
		kcfg.Rollout = settings
		p := k8s.NewPlatform(kc, k8s.Options{Config: &kcfg, Source: sourceName(f.ConfigPath, "."),
			Logf: func(format string, args ...any) { fmt.Fprintf(f.IO.ErrOut, format+"\n", args...) }})
		return &deployTarget{cfg: cfg, settings: settings, kube: p}, nil
	case rollout.TargetDocker:
	default:
		return nil, UsageErrorf("--target %q is not supported; use docker or k8s", settings.Target)
	}
	if t.GatewayOn != gatewayOnCompose && t.GatewayOn != gatewayOnHost {
		return nil, UsageErrorf("--gateway-on %q is not supported; use compose (the gateway container of compose.yaml) or host (aideploy gateway serve on this host)", t.GatewayOn)
	}
	spec, volumes, networks, err := serviceSpec(ctx, cfg, t.ComposeFile)
	if err != nil {
		return nil, err
	}
	docker, err := compose.NewDockerClient()
	if err != nil {
		return nil, err
	}
	gw := &adminapi.Client{BaseURL: t.GatewayAdmin, Token: os.Getenv(adminapi.TokenEnv),
		HTTP: &http.Client{Timeout: settings.DrainTimeout.D() + time.Minute}}
	p := compose.New(docker, compose.Options{
		Project: cfg.Name, Service: cfg.Name, Spec: spec, Volumes: volumes, Networks: networks,
		Rollout: settings, Port: cfg.Port, Gateway: gw, Pool: t.Pool, GatewayInNetwork: t.GatewayOn == gatewayOnCompose,
		Logf:     func(format string, args ...any) { fmt.Fprintf(f.IO.ErrOut, format+"\n", args...) },
		Progress: f.IO.ErrOut, ProgressTTY: f.IO.IsTerminal(),
	})
	return &deployTarget{cfg: cfg, settings: settings, platform: p, gateway: gw, hash: compose.ConfigHash(spec)}, nil
}

// runner is the platform the rollout state machine drives.
func (t *deployTarget) runner() rollout.Platform {
	if t.kube != nil {
		return t.kube
	}
	return t.platform
}

// serviceSpec reads the service from a compose file, or builds it from aideploy.yaml.
func serviceSpec(ctx context.Context, cfg *config.Config, file string) (composetypes.ServiceConfig, map[string]composetypes.VolumeConfig, map[string]composetypes.NetworkConfig, error) {
	if file != "" {
		proj, svc, err := compose.LoadService(ctx, []string{file}, cfg.Name, cfg.Name)
		if err != nil {
			return svc, nil, nil, err
		}
		vols := map[string]composetypes.VolumeConfig{}
		for k, v := range proj.Volumes {
			vols[k] = v
		}
		nets := map[string]composetypes.NetworkConfig{}
		for k, v := range proj.Networks {
			nets[k] = v
		}
		return svc, vols, nets, nil
	}
	var svc composetypes.ServiceConfig
	svc.Name = cfg.Name
	svc.Image = cfg.Image
	svc.Command = cfg.Args // a preset's arguments; custom's image has its CMD
	svc.Environment = composetypes.MappingWithEquals{}
	for _, e := range cfg.ServerEnv() {
		v := e.Value
		if e.FromEnv != "" {
			v = os.Getenv(e.FromEnv)
		}
		svc.Environment[e.Name] = &v
	}
	if cfg.Resources.MemoryLimit > 0 {
		svc.MemLimit = composetypes.UnitBytes(cfg.Resources.MemoryLimit)
	}
	if cfg.Resources.GPUs > 0 {
		svc.Deploy = &composetypes.DeployConfig{Resources: composetypes.Resources{Reservations: &composetypes.Resource{
			Devices: []composetypes.DeviceRequest{{Capabilities: []string{"gpu"}, Driver: "nvidia", Count: composetypes.DeviceCount(cfg.Resources.GPUs)}},
		}}}
	}
	svc.ShmSize = composetypes.UnitBytes(cfg.Resources.SharedMemory)
	// A preset's server downloads into its model storage; custom reads weights.
	readOnly := cfg.Preset().Dockerfile
	if cfg.Model.HostPath != "" {
		svc.Volumes = append(svc.Volumes, composetypes.ServiceVolumeConfig{Type: "bind", Source: cfg.Model.HostPath, Target: cfg.Model.Path, ReadOnly: readOnly})
	} else if cfg.Model.ClaimName != "" {
		svc.Volumes = append(svc.Volumes, composetypes.ServiceVolumeConfig{Type: "volume", Source: cfg.Model.ClaimName, Target: cfg.Model.Path, ReadOnly: readOnly})
	} else if !readOnly && cfg.Model.Volume == config.VolumePVC {
		// compose.yaml's volume: every replica and version reuses one
		// download. Its Docker name is the one `docker compose` gives it
		// (project_volume), so that what a user pulls into it, as the
		// README shows, is what the replicas find.
		key := cfg.Name + "-models"
		svc.Volumes = append(svc.Volumes, composetypes.ServiceVolumeConfig{Type: "volume", Source: key, Target: cfg.Model.Path})
		return svc, map[string]composetypes.VolumeConfig{key: {Name: cfg.Name + "_" + key}}, nil, nil
	}
	return svc, nil, nil, nil
}

// holder says who runs this command, for the lock.
func holder() rollout.Holder {
	host, _ := os.Hostname()
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return rollout.Holder{Owner: name + "@" + host, Host: host, PID: os.Getpid()}
}
