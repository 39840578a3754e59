package compose

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"golang.org/x/sync/errgroup"
)

// Gateway is the part of the gateway's admin API a rollout drives.
type Gateway interface {
	Pool(ctx context.Context, pool string) (adminapi.Pool, error)
	ReplaceTargets(ctx context.Context, pool string, req adminapi.ReplaceTargets) (adminapi.Pool, error)
	Drain(ctx context.Context, pool string, req adminapi.Drain) (adminapi.DrainResult, error)
	Stats(ctx context.Context, pool string, window time.Duration) (adminapi.Stats, error)
}

// Options configure the Docker platform of one service.
type Options struct {
	Project  string                         // compose project name
	Service  string                         // service name in the compose file
	Spec     types.ServiceConfig            // the service as the compose file defines it
	Volumes  map[string]types.VolumeConfig  // the project's volumes, for their Docker names
	Networks map[string]types.NetworkConfig // the project's networks, for their Docker names
	Rollout  rollout.Config                 // health check, warm-up and drain settings
	Port     int                            // model port inside the container; 0 reads it from the service, else 8000
	Gateway  Gateway                        // traffic switch; nil refuses Switch
	Pool     string                         // gateway pool of the service; empty means the default pool
	// GatewayInNetwork says the gateway runs as a container on the service's
	// network (compose.yaml's layout), reaching each replica by its container
	// name; otherwise it runs on this host and reaches each on its loopback
	// port. Replicas publish a loopback port either way, for the probes and
	// warm-up requests this host sends. A service without a network of its
	// own joins the project's default network, as compose would put it.
	GatewayInNetwork bool
	// PortTimeout is how long a running container may take to open its port at all.
	PortTimeout time.Duration
	// HostGPUs counts the host's GPUs; nil counts /dev/nvidiaN devices.
	HostGPUs func() int
	// GPUs, when set, replaces the GPU accounting of the pre-check: GPUs one replica
	// takes, GPUs of the host, and GPUs in use by containers other than revision except.
	GPUs func(ctx context.Context, except int) (perReplica, total, used int, err error)
	// Logf receives notes worth a line of progress; nil drops them.
	Logf func(format string, args ...any)
	// Progress receives the engine's pull progress when an image is missing;
	// nil drops it. ProgressTTY redraws it live, for a terminal only.
	Progress    io.Writer
	ProgressTTY bool
	// RegistryAuth gives the credentials for a registry host; nil reads the
	// Docker config (DOCKER_CONFIG or ~/.docker/config.json) and its helpers.
	RegistryAuth func(host string) (registry.AuthConfig, error)
	// Registries, when set, says whether a missing image may be pulled from
	// a registry host; nil allows every registry. Tests allow only loopback
	// registries, so a test image that is missing is an error, never a pull
	// from the internet.
	Registries func(host string) error
}

// Platform runs a service's colours as containers on one Docker engine.
type Platform struct {
	docker client.APIClient
	opts   Options
	http   *http.Client
}

var (
	_ rollout.Platform = (*Platform)(nil)
	_ rollout.Surger   = (*Platform)(nil)
)

// NewDockerClient connects to the engine named by DOCKER_HOST (or the local socket),
// speaking the engine's API version. It asks the engine once, so that a
// command finds a stopped engine before it starts, with what to do about it.
func NewDockerClient() (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("connecting to Docker: %w (is the Docker engine running and DOCKER_HOST right?)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, engineUnreachable(c.DaemonHost(), err)
	}
	return c, nil
}

// engineUnreachable says which engine did not answer and what to do next.
func engineUnreachable(host string, err error) error {
	return fmt.Errorf("the Docker engine at %s is not reachable: %w\n  → start it (systemctl start docker), point DOCKER_HOST at a running engine, or deploy to Kubernetes with rollout.target: k8s in aideploy.yaml", host, err)
}

// New returns the platform of one service.
func New(docker client.APIClient, opts Options) *Platform {
	if opts.Pool == "" {
		opts.Pool = adminapi.DefaultPool
	}
	if opts.PortTimeout == 0 {
		opts.PortTimeout = 30 * time.Second
	}
	if opts.HostGPUs == nil {
		opts.HostGPUs = countHostGPUs
	}
	if opts.RegistryAuth == nil {
		opts.RegistryAuth = dockerConfigAuth
	}
	if opts.GatewayInNetwork && opts.Spec.NetworkMode == "" && len(opts.Spec.Networks) == 0 {
		opts.Spec.Networks = map[string]*types.ServiceNetworkConfig{"default": nil}
		nets := map[string]types.NetworkConfig{"default": {Name: opts.Project + "_default"}}
		for k, v := range opts.Networks {
			nets[k] = v
		}
		opts.Networks = nets
	}
	return &Platform{docker: docker, opts: opts, http: &http.Client{}}
}

func (p *Platform) logf(format string, args ...any) {
	if p.opts.Logf != nil {
		p.opts.Logf(format, args...)
	}
}

// replicas lists the containers of revision rev (all revisions when rev is 0).
func (p *Platform) replicas(ctx context.Context, rev int) ([]container.Summary, error) {
	var extra []string
	if rev > 0 {
		extra = append(extra, LabelRevision+"="+strconv.Itoa(rev))
	}
	cs, err := p.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: p.filter(kindReplica, extra...)})
	if err != nil {
		return nil, fmt.Errorf("listing containers of %s: %w", p.opts.Service, err)
	}
	return cs, nil
}

// Current reads the journals and every revision that has containers.
func (p *Platform) Current(ctx context.Context) (rollout.State, error) {
	var st rollout.State
	js, err := p.journals(ctx)
	if err != nil {
		return st, err
	}
	st.Journals = js
	cs, err := p.replicas(ctx, 0)
	if err != nil {
		return st, err
	}
	byRev := map[int]*rollout.Instance{}
	for _, c := range cs {
		d, _, ok := deploymentOf(c.Labels)
		if !ok {
			continue
		}
		in := byRev[d.Revision]
		if in == nil {
			in = &rollout.Instance{Deployment: d, Created: time.Unix(c.Created, 0)}
			byRev[d.Revision] = in
		}
		in.Total++
		if c.State == "running" || c.State == "restarting" {
			in.Running++
		}
	}
	for _, in := range byRev {
		st.Instances = append(st.Instances, *in)
	}
	sort.Slice(st.Instances, func(i, j int) bool { return st.Instances[i].Revision > st.Instances[j].Revision })
	return st, nil
}

// Create starts d's replicas; existing ones are reused, stopped ones started.
func (p *Platform) Create(ctx context.Context, d rollout.Deployment) error {
	if err := p.ensureNetworks(ctx); err != nil {
		return err
	}
	existing, err := p.replicas(ctx, d.Revision)
	if err != nil {
		return err
	}
	have := map[string]container.Summary{}
	for _, c := range existing {
		for _, n := range c.Names {
			have[n[1:]] = c
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range d.Replicas {
		name := p.replicaName(d, i)
		g.Go(func() error {
			id := ""
			if c, ok := have[name]; ok {
				switch c.State {
				case "running", "restarting":
					return nil
				case "paused":
					if err := p.docker.ContainerUnpause(gctx, c.ID); err != nil {
						return fmt.Errorf("unpausing container %s: %w", name, err)
					}
					return nil
				}
				id = c.ID
			} else {
				cfg, host, netCfg := p.containerSpec(d, i)
				resp, err := p.docker.ContainerCreate(gctx, cfg, host, netCfg, nil, name)
				if err != nil {
					return fmt.Errorf("creating container %s from %s: %w", name, d.Image, err)
				}
				id = resp.ID
			}
			if err := p.docker.ContainerStart(gctx, id, container.StartOptions{}); err != nil {
				return fmt.Errorf("starting container %s: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// Stop retires d's replicas and keeps them for a rollback: paused (a rollback
// needs no restart) or stopped (memory and GPUs are freed), per rollout.retireMode.
func (p *Platform) Stop(ctx context.Context, d rollout.Deployment) error {
	cs, err := p.replicas(ctx, d.Revision)
	if err != nil {
		return err
	}
	pause := p.pauseOnRetire()
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range cs {
		if c.State != "running" && c.State != "restarting" {
			continue
		}
		g.Go(func() error {
			var err error
			if pause && c.State == "running" {
				err = p.docker.ContainerPause(gctx, c.ID)
				if err != nil && !errdefs.IsNotFound(err) {
					// The engine could not freeze it (the cgroup freezer
					// can fail on a busy host): stopped, it is still kept
					// for a rollback, which then restarts the model.
					p.logf("pausing %s failed (%v); stopping it instead", c.Names[0][1:], err)
					err = p.docker.ContainerStop(gctx, c.ID, container.StopOptions{})
				}
			} else {
				err = p.docker.ContainerStop(gctx, c.ID, container.StopOptions{})
			}
			if err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("retiring %s: %w", c.Names[0][1:], err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (p *Platform) pauseOnRetire() bool {
	switch p.opts.Rollout.RetireMode {
	case rollout.RetirePause:
		return true
	case rollout.RetireStop:
		return false
	}
	return gpusPerReplica(p.opts.Spec) == 0
}

// Remove deletes every replica of d, running or not.
func (p *Platform) Remove(ctx context.Context, d rollout.Deployment) error {
	cs, err := p.replicas(ctx, d.Revision)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range cs {
		g.Go(func() error {
			err := p.docker.ContainerRemove(gctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
			if err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("removing %s: %w", c.Names[0][1:], err)
			}
			return nil
		})
	}
	return g.Wait()
}

// Down removes every container of the service: replicas, journals and the lock.
func (p *Platform) Down(ctx context.Context) (int, error) {
	cs, err := p.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: p.filter("")})
	if err != nil {
		return 0, fmt.Errorf("listing containers of %s: %w", p.opts.Service, err)
	}
	for _, c := range cs {
		if err := p.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errdefs.IsNotFound(err) {
			return 0, fmt.Errorf("removing %s: %w", c.Names[0][1:], err)
		}
	}
	return len(cs), nil
}

// ensureNetworks creates the service's project networks that do not exist yet, as compose would.
func (p *Platform) ensureNetworks(ctx context.Context) error {
	if p.opts.Spec.NetworkMode != "" {
		return nil
	}
	for key := range p.opts.Spec.Networks {
		n, ok := p.opts.Networks[key]
		if !ok || bool(n.External) {
			continue
		}
		if err := p.ensureNetwork(ctx, key, n); err != nil {
			return err
		}
	}
	return nil
}
