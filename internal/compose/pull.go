package compose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/cli/cli/config"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/jsonmessage"
)

// dockerHubAuthKey is where the Docker config keeps Docker Hub's credentials:
// `docker login` writes them under the old index URL, not under docker.io.
const dockerHubAuthKey = "https://index.docker.io/v1/"

// ensureImage pulls image when this Docker host does not have it, so that a
// rollout to registry.example.com/chat:1.1.0 works as `docker run` would.
func (p *Platform) ensureImage(ctx context.Context, img string) error {
	_, err := p.docker.ImageInspect(ctx, img)
	if err == nil {
		return nil
	}
	if !errdefs.IsNotFound(err) {
		return fmt.Errorf("inspecting image %s: %w", img, err)
	}
	return p.pull(ctx, img)
}

// pull asks the engine for img with the credentials the Docker config holds
// for its registry, printing the engine's progress as `docker pull` does.
func (p *Platform) pull(ctx context.Context, img string) error {
	named, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		return fmt.Errorf("image %q is not a valid image reference (%v); write it as [registry/]name[:tag]", img, err)
	}
	named = reference.TagNameOnly(named)
	host := reference.Domain(named)
	if p.opts.Registries != nil {
		if err := p.opts.Registries(host); err != nil {
			return fmt.Errorf("image %s is not on this Docker host and is not pulled from %s: %w", img, host, err)
		}
	}
	auth, err := p.opts.RegistryAuth(host)
	if err != nil {
		return fmt.Errorf("reading the credentials for %s from the Docker config: %w; fix them with docker login %s", host, err, host)
	}
	encoded, err := registry.EncodeAuthConfig(auth)
	if err != nil {
		return fmt.Errorf("encoding the credentials for %s: %w", host, err)
	}
	p.logf("pulling %s: it is not present on this Docker host", img)
	rc, err := p.docker.ImagePull(ctx, named.String(), image.PullOptions{RegistryAuth: encoded})
	if err != nil {
		return pullError(img, host, err)
	}
	defer rc.Close()
	out, fd, tty := p.progress()
	if err := jsonmessage.DisplayJSONMessagesStream(rc, out, fd, tty, nil); err != nil {
		if ctx.Err() != nil {
			// Interrupted or out of time: the registry said nothing wrong.
			return fmt.Errorf("pulling image %s from %s: %w; run the rollout again to resume the pull", img, host, ctx.Err())
		}
		return pullError(img, host, err)
	}
	// A stream cut before its end reads as success to the decoder: ask again.
	if _, err := p.docker.ImageInspect(ctx, img); err != nil {
		return fmt.Errorf("pulling image %s from %s: the engine reported no error, but the image is still missing (%v); retry, or run docker pull %s", img, host, err, img)
	}
	return nil
}

// progress is where pull progress goes: live redraws only on a terminal.
func (p *Platform) progress() (io.Writer, uintptr, bool) {
	if p.opts.Progress == nil {
		return io.Discard, 0, false
	}
	var fd uintptr
	if f, ok := p.opts.Progress.(interface{ Fd() uintptr }); ok {
		fd = f.Fd()
	}
	return p.opts.Progress, fd, p.opts.ProgressTTY
}

// pullError names the image, the registry and what the registry answered,
// with the step that usually fixes it.
func pullError(img, host string, err error) error {
	var next string
	var jerr *jsonmessage.JSONError
	msg := err.Error()
	if errors.As(err, &jerr) {
		msg = jerr.Message
	}
	msg = strings.TrimPrefix(msg, "Error response from daemon: ")
	low := strings.ToLower(msg)
	switch {
	case errdefs.IsUnauthorized(err) || strings.Contains(low, "unauthorized") || strings.Contains(low, "authentication required") ||
		strings.Contains(low, "no basic auth credentials") || strings.Contains(low, "denied"):
		next = fmt.Sprintf("log in with docker login %s (the credentials come from the Docker config), or check that the repository exists", host)
	case errdefs.IsNotFound(err) || strings.Contains(low, "not found") || strings.Contains(low, "manifest unknown"):
		next = "check the image name and tag, or push the image to the registry first"
	default:
		next = fmt.Sprintf("check that %s is reachable from the Docker host and serves the registry API, then retry", host)
	}
	return fmt.Errorf("pulling image %s from %s: the registry answered: %s; %s", img, host, msg, next)
}

// dockerConfigAuth reads the credentials for a registry host from the Docker
// config (DOCKER_CONFIG or ~/.docker/config.json), through its credential
// helpers when it names any, as the docker CLI does.
func dockerConfigAuth(host string) (registry.AuthConfig, error) {
	return authFromConfigDir(config.Dir(), host)
}

// authFromConfigDir reads the credentials for host from the Docker config in dir.
func authFromConfigDir(dir, host string) (registry.AuthConfig, error) {
	key := host
	if host == "docker.io" {
		key = dockerHubAuthKey
	}
	cf, err := config.Load(dir)
	if err != nil {
		return registry.AuthConfig{}, err
	}
	a, err := cf.GetAuthConfig(key)
	if err != nil {
		return registry.AuthConfig{}, err
	}
	return registry.AuthConfig{
		Username: a.Username, Password: a.Password, Auth: a.Auth,
		ServerAddress: key, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
	}, nil
}
