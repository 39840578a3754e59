package compose

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/errdefs"
)

// Check asks the gateway's admin API for the pool it will switch, pulls the
// deployment's image when this host lacks it, and refuses a deployment whose
// image cannot be pulled or whose GPUs do not fit next to the colour that
// keeps serving during the rollout: in seconds, before anything is created,
// not at the switch after minutes of model loading.
func (p *Platform) Check(ctx context.Context, to rollout.Deployment, from *rollout.Deployment) error {
	if err := p.checkGateway(ctx); err != nil {
		return err
	}
	if err := p.ensureImage(ctx, to.Image); err != nil {
		return err
	}
	per, host, used, err := p.gpus(ctx, to.Revision)
	if err != nil || per == 0 {
		return err
	}
	free := host - used
	if s := p.opts.Rollout.Surge; s > 0 && from != nil && s < to.Replicas {
		if need := per * s; need > free {
			return fmt.Errorf("not enough free GPUs for --surge %d: each batch of %s needs %d (%d replica(s) × %d) next to %s; "+
				"the host has %d, %d in use, %d free. Free GPUs or lower --surge",
				s, to, need, s, per, from, host, used, max(free, 0))
		}
		return nil
	}
	need := per * to.Replicas
	if need > free {
		keeps := ""
		if from != nil {
			keeps = fmt.Sprintf(" while %s keeps its GPUs until the switch: both colours at once need %d", from, per*from.Replicas+need)
		}
		return fmt.Errorf("not enough free GPUs: %s needs %d (%d replica(s) × %d)%s; the host has %d, %d in use, %d free. "+
			"Free GPUs, lower --replicas, or replace one replica at a time with --surge 1",
			to, need, to.Replicas, per, keeps, host, used, max(free, 0))
	}
	return nil
}

// gpus returns the GPUs one replica takes, the host's GPUs, and those in use
// by containers other than revision except.
func (p *Platform) gpus(ctx context.Context, except int) (per, host, used int, err error) {
	if p.opts.GPUs != nil {
		return p.opts.GPUs(ctx, except)
	}
	per = gpusPerReplica(p.opts.Spec)
	if per == 0 {
		return 0, 0, 0, nil
	}
	host = p.opts.HostGPUs()
	if per < 0 {
		per = max(host, 1) // "all" takes every GPU of the host
	}
	used, err = p.gpusInUse(ctx, except)
	return per, host, used, err
}

// gpusInUse counts GPUs requested by running containers other than revision rev of this service.
func (p *Platform) gpusInUse(ctx context.Context, rev int) (int, error) {
	cs, err := p.docker.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("listing running containers: %w", err)
	}
	used := 0
	for _, c := range cs {
		if c.Labels[LabelService] == p.opts.Service && c.Labels[LabelProject] == p.opts.Project && c.Labels[LabelRevision] == fmt.Sprint(rev) {
			continue
		}
		in, err := p.docker.ContainerInspect(ctx, c.ID)
		if err != nil {
			continue // gone meanwhile
		}
		for _, d := range in.HostConfig.DeviceRequests {
			if !hasGPU(d.Capabilities) {
				continue
			}
			switch {
			case len(d.DeviceIDs) > 0:
				used += len(d.DeviceIDs)
			case d.Count < 0:
				used += p.opts.HostGPUs()
			default:
				used += d.Count
			}
		}
	}
	return used, nil
}

// countHostGPUs counts NVIDIA GPU device nodes; 0 on a host without GPUs.
func countHostGPUs() int {
	re := regexp.MustCompile(`^nvidia[0-9]+$`)
	matches, _ := filepath.Glob("/dev/nvidia*")
	n := 0
	for _, m := range matches {
		if re.MatchString(filepath.Base(m)) {
			if _, err := os.Stat(m); err == nil {
				n++
			}
		}
	}
	return n
}

func (p *Platform) ensureNetwork(ctx context.Context, key string, n types.NetworkConfig) error {
	name := n.Name
	if name == "" {
		name = p.opts.Project + "_" + key
	}
	if _, err := p.docker.NetworkInspect(ctx, name, network.InspectOptions{}); err == nil {
		return nil
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("inspecting network %s: %w", name, err)
	}
	labels := map[string]string{"com.docker.compose.project": p.opts.Project, "com.docker.compose.network": key, LabelManaged: "true"}
	for k, v := range n.Labels {
		labels[k] = v
	}
	_, err := p.docker.NetworkCreate(ctx, name, network.CreateOptions{Driver: n.Driver, Internal: n.Internal, Labels: labels})
	if err != nil && !errdefs.IsConflict(err) {
		return fmt.Errorf("creating network %s: %w", name, err)
	}
	return nil
}

// checkGateway reads the pool the switch will change, with the token the
// switch will send.
func (p *Platform) checkGateway(ctx context.Context) error {
	if p.opts.Gateway == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := p.opts.Gateway.Pool(ctx, p.opts.Pool)
	var se *adminapi.StatusError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && se.Code == http.StatusForbidden:
		return fmt.Errorf("the gateway cannot switch traffic: %w\n  → start it with an admin token (gateway.adminTokenFile, or %s in its environment) and give rollout the same token in %s",
			err, adminapi.TokenEnv, adminapi.TokenEnv)
	case errors.As(err, &se) && se.Code == http.StatusUnauthorized:
		return fmt.Errorf("the gateway refused the admin token: %w\n  → set %s to the token the gateway reads (gateway.adminTokenFile)",
			err, adminapi.TokenEnv)
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
		return fmt.Errorf("the gateway has no pool %q: %w\n  → pass --pool with one of its pools, or add it to gateway.pools", p.opts.Pool, err)
	}
	return fmt.Errorf("checking the gateway before creating anything: %w\n  → start it (aideploy gateway serve) or point --gateway-admin / AIDEPLOY_GATEWAY_ADMIN at its admin listener", err)
}
