package preflight

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
	"gopkg.in/yaml.v3"
)

// composeService is the part of a compose service the rules read.
type composeService struct {
	Image       string    `yaml:"image"`
	Build       yaml.Node `yaml:"build"`
	Runtime     string    `yaml:"runtime"`
	GPUs        yaml.Node `yaml:"gpus"`
	Environment yaml.Node `yaml:"environment"`
	Deploy      struct {
		Replicas  *int `yaml:"replicas"`
		Resources struct {
			Limits struct {
				Memory string `yaml:"memory"`
			} `yaml:"limits"`
			Reservations struct {
				Devices []composeDevice `yaml:"devices"`
			} `yaml:"reservations"`
		} `yaml:"resources"`
	} `yaml:"deploy"`
}

type composeDevice struct {
	Driver       string    `yaml:"driver"`
	Count        yaml.Node `yaml:"count"`
	DeviceIDs    []string  `yaml:"device_ids"`
	Capabilities []string  `yaml:"capabilities"`
}

func (l *linter) compose(f Manifest) {
	var file struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(f.Data, &file); err != nil {
		l.add(fail("lint.parse", f.Name, firstLine(err), "", "fix the compose file so docker compose config accepts it"))
		return
	}
	names := make([]string, 0, len(file.Services))
	for name := range file.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		l.composeService(f, f.Name+":service/"+name, file.Services[name])
	}
}

func (l *linter) composeService(f Manifest, sub string, s composeService) {
	l.latestTag(sub, s.Image)
	gpuDevices := slices.DeleteFunc(slices.Clone(s.Deploy.Resources.Reservations.Devices), func(d composeDevice) bool {
		return !slices.Contains(d.Capabilities, "gpu") && d.Driver != "nvidia"
	})
	reserved := len(gpuDevices) > 0 || s.Runtime == "nvidia" || !s.GPUs.IsZero()
	if !reserved && !l.composeGPUIntent(f, s) {
		return
	}
	if !reserved {
		l.add(fail("lint.compose-gpu-reservation", sub, "GPU service without a device reservation", "deploy.resources.reservations.devices with capabilities: [gpu]",
			"add deploy.resources.reservations.devices: [{driver: nvidia, count: 1, capabilities: [gpu]}]; without it the container sees no GPU"))
	}
	replicas := 1
	if s.Deploy.Replicas != nil {
		replicas = *s.Deploy.Replicas
	}
	perReplica, all, pinned := composeGPUCount(gpuDevices)
	switch {
	case replicas > 1 && (all || pinned):
		l.add(warn("lint.replicas-gpus", sub, fmt.Sprintf("%d replicas share the same GPU(s)", replicas), "one GPU set per replica",
			"run one replica per GPU set (separate services with their own device_ids), or one replica"))
	case l.opts.AvailableGPUs > 0 && replicas*perReplica > l.opts.AvailableGPUs:
		l.add(fail("lint.replicas-gpus", sub, fmt.Sprintf("%d replicas need %d GPUs", replicas, replicas*perReplica),
			fmt.Sprintf("<= %d GPUs available", l.opts.AvailableGPUs), "lower deploy.replicas to what the host's GPUs hold"))
	}
	if mem := s.Deploy.Resources.Limits.Memory; mem != "" && l.estimate != nil {
		limit, err := units.RAMInBytes(mem)
		if err == nil && limit < int64(l.estimate.Weights) {
			l.add(fail("lint.memory-limit", sub, "memory limit "+mem,
				fmt.Sprintf(">= %s (model weights pass through host memory while loading)", formatBytes(l.estimate.Weights)),
				"raise deploy.resources.limits.memory above the model's size, or the container is OOM-killed while loading"))
		}
	}
}

// composeGPUIntent says whether a service runs the GPU model without reserving a GPU:
// the configured image, a CUDA image, NVIDIA_VISIBLE_DEVICES, or a build FROM a CUDA base.
func (l *linter) composeGPUIntent(f Manifest, s composeService) bool {
	if l.wantsGPUImage(s.Image) || envHas(s.Environment, "NVIDIA_VISIBLE_DEVICES") {
		return true
	}
	if f.Dir == "" || s.Build.IsZero() {
		return false
	}
	buildDir, dockerfile := ".", "Dockerfile"
	switch s.Build.Kind {
	case yaml.ScalarNode:
		buildDir = s.Build.Value
	case yaml.MappingNode:
		var b struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		}
		if err := s.Build.Decode(&b); err == nil {
			buildDir, dockerfile = cmpOrString(b.Context, buildDir), cmpOrString(b.Dockerfile, dockerfile)
		}
	}
	return dockerfileFromCUDA(filepath.Join(f.Dir, buildDir, dockerfile))
}

// composeGPUCount is the GPUs one replica reserves, whether it takes all of them, and
// whether it pins device IDs.
func composeGPUCount(devices []composeDevice) (n int, all, pinned bool) {
	for _, d := range devices {
		switch {
		case len(d.DeviceIDs) > 0:
			n += len(d.DeviceIDs)
			pinned = true
		case d.Count.Value == "all" || d.Count.IsZero():
			all = true
		default:
			c, _ := strconv.Atoi(d.Count.Value)
			n += c
		}
	}
	return n, all, pinned
}

// envHas says whether a compose environment (list or map) sets name.
func envHas(env yaml.Node, name string) bool {
	switch env.Kind {
	case yaml.SequenceNode:
		for _, item := range env.Content {
			if k, _, _ := strings.Cut(item.Value, "="); k == name {
				return true
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(env.Content); i += 2 {
			if env.Content[i].Value == name {
				return true
			}
		}
	}
	return false
}
