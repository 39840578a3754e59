package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"golang.org/x/sync/errgroup"
)

// logLines is how many of a failed container's last log lines go into the error.
const logLines = 50

// StartupError says why a new replica never became healthy, with its last log lines.
type StartupError struct {
	Container string
	Reason    string
	Logs      string
}

func (e *StartupError) Error() string {
	if e.Logs == "" {
		return fmt.Sprintf("%s %s", e.Container, e.Reason)
	}
	return fmt.Sprintf("%s %s\nlast %d log lines of %s:\n%s", e.Container, e.Reason, logLines, e.Container, indent(e.Logs))
}

// WaitHealthy waits until every replica of d answers its health check. It keeps
// waiting while a replica is alive and loading, up to budget, and fails within
// a probe interval when one exits, restarts or is OOM-killed, or within
// PortTimeout when one never opens its port.
func (p *Platform) WaitHealthy(ctx context.Context, d rollout.Deployment, budget time.Duration) error {
	cs, err := p.replicas(ctx, d.Revision)
	if err != nil {
		return err
	}
	if len(cs) < d.Replicas {
		return fmt.Errorf("only %d of %d replicas of %s exist", len(cs), d.Replicas, d)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range cs {
		g.Go(func() error { return p.waitReplica(gctx, c.ID, c.Names[0][1:], budget) })
	}
	return g.Wait()
}

func (p *Platform) waitReplica(ctx context.Context, id, name string, budget time.Duration) error {
	hc := p.opts.Rollout.HealthCheck
	start := time.Now()
	deadline := start.Add(budget)
	restarts := -1
	opened := false
	last := "no answer yet"
	tick := time.NewTicker(hc.Interval.D())
	defer tick.Stop()
	for {
		in, err := p.docker.ContainerInspect(ctx, id)
		if err != nil {
			return fmt.Errorf("inspecting %s: %w", name, err)
		}
		if restarts < 0 {
			restarts = in.RestartCount
		}
		if why := death(in, restarts); why != "" {
			return p.startupError(ctx, id, name, why)
		}
		url, err := hostURL(in, p.containerPort())
		if err == nil {
			code, body, perr := p.probe(ctx, url+hc.Path, hc.Timeout.D())
			switch {
			case perr != nil && ctx.Err() != nil:
				return ctx.Err()
			case perr != nil:
				last = perr.Error()
				if !opened && time.Since(start) > p.opts.PortTimeout {
					return p.startupError(ctx, id, name, fmt.Sprintf("is running but never opened port %s within %s (last: %s)",
						p.containerPort().Port(), p.opts.PortTimeout, last))
				}
			case code/100 == 2:
				return nil
			case code == http.StatusServiceUnavailable:
				opened, last = true, fmt.Sprintf("503 %s (still loading)", body)
			default:
				opened, last = true, fmt.Sprintf("%d %s", code, body)
			}
		}
		if time.Now().After(deadline) {
			return p.startupError(ctx, id, name, fmt.Sprintf("did not pass its health check GET %s within the startup budget (rollout.startupBudget %s); last answer: %s",
				hc.Path, budget, last))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// death says why a container is no longer starting up, or returns "".
func death(in container.InspectResponse, restarts int) string {
	s := in.State
	switch {
	case s == nil:
		return ""
	case s.OOMKilled:
		return fmt.Sprintf("was OOM-killed (memory limit %d MiB); raise its memory limit", in.HostConfig.Memory>>20)
	case in.RestartCount > restarts || s.Restarting:
		return fmt.Sprintf("restarted after exiting with code %d", s.ExitCode)
	case s.Status == "exited" || s.Status == "dead":
		return fmt.Sprintf("exited with code %d %s", s.ExitCode, s.Error)
	}
	return ""
}

func (p *Platform) startupError(ctx context.Context, id, name, reason string) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return &StartupError{Container: name, Reason: strings.TrimSpace(reason), Logs: p.tail(lctx, id)}
}

// tail returns the last log lines of a container, stdout and stderr interleaved.
func (p *Platform) tail(ctx context.Context, id string) string {
	rc, err := p.docker.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(logLines)})
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil && !errors.Is(err, io.EOF) {
		buf.WriteString("(reading logs: " + err.Error() + ")")
	}
	return strings.TrimRight(buf.String(), "\n")
}

func (p *Platform) probe(ctx context.Context, url string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// hostURL is where the host reaches a replica: its port published on loopback.
func hostURL(in container.InspectResponse, port interface{ Port() string }) (string, error) {
	if in.NetworkSettings == nil {
		return "", errors.New("no network settings yet")
	}
	for p, bs := range in.NetworkSettings.Ports {
		if p.Port() != port.Port() {
			continue
		}
		for _, b := range bs {
			if b.HostPort != "" {
				return "http://127.0.0.1:" + b.HostPort, nil
			}
		}
	}
	return "", fmt.Errorf("port %s is not published yet", port.Port())
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }
