package compose

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

// LoadService reads one service from the rendered compose file(s), with the
// project name compose itself would use.
func LoadService(ctx context.Context, files []string, project, service string) (*types.Project, types.ServiceConfig, error) {
	opts, err := cli.NewProjectOptions(files, cli.WithName(project), cli.WithOsEnv, cli.WithDotEnv, cli.WithResolvedPaths(true))
	if err != nil {
		return nil, types.ServiceConfig{}, fmt.Errorf("reading compose options: %w", err)
	}
	p, err := cli.ProjectFromOptions(ctx, opts)
	if err != nil {
		return nil, types.ServiceConfig{}, fmt.Errorf("loading %v: %w", files, err)
	}
	svc, err := p.GetService(service)
	if err != nil {
		return nil, types.ServiceConfig{}, fmt.Errorf("%w in %v; name the model service in aideploy.yaml", err, files)
	}
	return p, svc, nil
}

// ConfigHash is a short hash of the service definition; a change redeploys the same image.
func ConfigHash(svc types.ServiceConfig) string {
	svc.Image = "" // the image is tracked on its own
	b, _ := json.Marshal(svc)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

// containerPort is the port the model listens on inside the container.
func (p *Platform) containerPort() nat.Port {
	port := p.opts.Port
	if port == 0 && len(p.opts.Spec.Ports) > 0 {
		port = int(p.opts.Spec.Ports[0].Target)
	}
	if port == 0 && len(p.opts.Spec.Expose) > 0 {
		port, _ = strconv.Atoi(p.opts.Spec.Expose[0])
	}
	if port == 0 {
		port = 8000
	}
	return nat.Port(strconv.Itoa(port) + "/tcp")
}

// gpusPerReplica is how many GPUs one replica asks for; -1 means all of them.
func gpusPerReplica(svc types.ServiceConfig) int {
	n := 0
	for _, d := range deviceRequests(svc) {
		if !hasGPU(d.Capabilities) {
			continue
		}
		switch {
		case len(d.DeviceIDs) > 0:
			n += len(d.DeviceIDs)
		case d.Count < 0:
			return -1
		default:
			n += d.Count
		}
	}
	return n
}

func hasGPU(caps [][]string) bool {
	for _, set := range caps {
		for _, c := range set {
			if c == "gpu" {
				return true
			}
		}
	}
	return false
}

func deviceRequests(svc types.ServiceConfig) []container.DeviceRequest {
	var reqs []types.DeviceRequest
	reqs = append(reqs, svc.Gpus...)
	if svc.Deploy != nil && svc.Deploy.Resources.Reservations != nil {
		reqs = append(reqs, svc.Deploy.Resources.Reservations.Devices...)
	}
	var out []container.DeviceRequest
	for _, r := range reqs {
		caps := r.Capabilities
		if len(caps) == 0 {
			caps = []string{"gpu"} // `gpus: all` in compose means GPUs
		}
		out = append(out, container.DeviceRequest{
			Driver:       r.Driver,
			Count:        int(r.Count),
			DeviceIDs:    r.IDs,
			Capabilities: [][]string{caps},
			Options:      r.Options,
		})
	}
	return out
}

// containerSpec turns the compose service into the configs of replica i of d.
func (p *Platform) containerSpec(d rollout.Deployment, i int) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	svc := p.opts.Spec
	labels := map[string]string{}
	for k, v := range svc.Labels {
		labels[k] = v
	}
	for k, v := range p.baseLabels(kindReplica) {
		labels[k] = v
	}
	for k, v := range replicaLabels(d, i) {
		labels[k] = v
	}
	labels[composeProject] = p.opts.Project
	labels[composeService] = p.opts.Service
	labels[composeNumber] = strconv.Itoa(d.Revision*100 + i + 1)
	labels[composeOneoff] = "False"
	labels[composeConfigHash] = d.ConfigHash
	labels[composeVersion] = "2"

	var env []string
	for k, v := range svc.Environment {
		if v != nil {
			env = append(env, k+"="+*v)
		}
	}
	sort.Strings(env)
	port := p.containerPort()
	cfg := &container.Config{
		Image:        d.Image,
		Env:          env,
		Labels:       labels,
		ExposedPorts: nat.PortSet{port: {}},
		User:         svc.User,
		WorkingDir:   svc.WorkingDir,
		Hostname:     svc.Hostname,
		StopSignal:   svc.StopSignal,
	}
	if len(svc.Command) > 0 {
		cfg.Cmd = []string(svc.Command)
	}
	if len(svc.Entrypoint) > 0 {
		cfg.Entrypoint = []string(svc.Entrypoint)
	}
	if svc.StopGracePeriod != nil {
		s := int(time.Duration(*svc.StopGracePeriod).Seconds())
		cfg.StopTimeout = &s
	}
	if hc := svc.HealthCheck; hc != nil {
		cfg.Healthcheck = healthConfig(hc)
	}

	host := &container.HostConfig{
		// The gateway runs on the host: it reaches each replica on a loopback port of its own.
		PortBindings:  nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: ""}}},
		Mounts:        p.mounts(),
		RestartPolicy: restartPolicy(svc.Restart),
		ShmSize:       int64(svc.ShmSize),
		Init:          svc.Init,
		Runtime:       svc.Runtime,
		ExtraHosts:    svc.ExtraHosts.AsList(":"),
	}
	host.DeviceRequests = deviceRequests(svc)
	if svc.MemLimit > 0 {
		host.Memory = int64(svc.MemLimit)
	}
	if svc.Deploy != nil {
		if l := svc.Deploy.Resources.Limits; l != nil {
			host.Memory = int64(l.MemoryBytes)
			host.NanoCPUs = int64(float64(l.NanoCPUs) * 1e9)
			host.PidsLimit = nonZero(l.Pids)
		}
		if r := svc.Deploy.Resources.Reservations; r != nil {
			host.MemoryReservation = int64(r.MemoryBytes)
		}
	}

	var netCfg *network.NetworkingConfig
	names := p.networkNames()
	if len(names) > 0 {
		host.NetworkMode = container.NetworkMode(names[0])
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}
		for _, n := range names {
			netCfg.EndpointsConfig[n] = &network.EndpointSettings{Aliases: []string{p.opts.Service}}
		}
	}
	return cfg, host, netCfg
}

func nonZero(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}

func healthConfig(hc *types.HealthCheckConfig) *container.HealthConfig {
	if hc.Disable {
		return &container.HealthConfig{Test: []string{"NONE"}}
	}
	out := &container.HealthConfig{Test: []string(hc.Test)}
	if hc.Interval != nil {
		out.Interval = time.Duration(*hc.Interval)
	}
	if hc.Timeout != nil {
		out.Timeout = time.Duration(*hc.Timeout)
	}
	if hc.StartPeriod != nil {
		out.StartPeriod = time.Duration(*hc.StartPeriod)
	}
	if hc.Retries != nil {
		out.Retries = int(*hc.Retries)
	}
	return out
}

func restartPolicy(s string) container.RestartPolicy {
	switch s {
	case "always":
		return container.RestartPolicy{Name: container.RestartPolicyAlways}
	case "unless-stopped":
		return container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	case "on-failure":
		return container.RestartPolicy{Name: container.RestartPolicyOnFailure}
	}
	return container.RestartPolicy{Name: container.RestartPolicyDisabled}
}

// mounts turns compose volumes into Docker mounts; named volumes get the project prefix compose gives them.
func (p *Platform) mounts() []mount.Mount {
	var out []mount.Mount
	for _, v := range p.opts.Spec.Volumes {
		m := mount.Mount{Type: mount.Type(v.Type), Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
		if v.Type == types.VolumeTypeVolume && p.opts.Project != "" {
			if pv, ok := p.opts.Volumes[v.Source]; ok && pv.Name != "" {
				m.Source = pv.Name
			}
		}
		out = append(out, m)
	}
	return out
}

// networkNames are the Docker names of the service's networks, sorted for a stable primary.
func (p *Platform) networkNames() []string {
	if p.opts.Spec.NetworkMode != "" {
		return []string{p.opts.Spec.NetworkMode}
	}
	var out []string
	for key := range p.opts.Spec.Networks {
		name := key
		if n, ok := p.opts.Networks[key]; ok && n.Name != "" {
			name = n.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
