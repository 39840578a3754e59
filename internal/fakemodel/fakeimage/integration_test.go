package fakeimage

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

func TestIntegrationBuildImage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Docker engine; runs without -short")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("connecting to Docker: %v", err)
	}
	defer docker.Close()
	if _, err := docker.Ping(ctx); err != nil {
		t.Fatalf("the Docker engine does not answer (%v): install docker.io and start dockerd", err)
	}
	const tag = "aideploy-fakemodel:test"
	if err := BuildImage(ctx, docker, tag, "it-7"); err != nil {
		t.Fatal(err)
	}
	port := nat.Port(fmt.Sprintf("%d/tcp", Port))
	created, err := docker.ContainerCreate(ctx, &container.Config{
		Image: tag, Env: []string{"FAKEMODEL_STARTUP_DELAY=1s"}, ExposedPorts: nat.PortSet{port: {}},
	}, &container.HostConfig{
		PortBindings: nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: "0"}}},
	}, nil, nil, "")
	if err != nil {
		t.Fatalf("creating a container from %s: %v", tag, err)
	}
	t.Cleanup(func() {
		err := docker.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
		if err != nil {
			t.Errorf("removing container %s: %v", created.ID, err)
		}
	})
	if err := docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting the container: %v", err)
	}
	info, err := docker.ContainerInspect(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.User != "1000:1000" {
		t.Errorf("container user %q, want 1000:1000", info.Config.User)
	}
	bindings := info.NetworkSettings.Ports[port]
	if len(bindings) == 0 {
		t.Fatalf("port %s is not published: %v", port, info.NetworkSettings.Ports)
	}
	url := fmt.Sprintf("http://127.0.0.1:%s/health", bindings[0].HostPort)

	// the server answers 200 once its startup delay is over, with the image's version
	var last string
	for ctx.Err() == nil {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("X-Model-Version"))
			if resp.StatusCode == 200 {
				break
			}
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last != "200 it-7" {
		t.Fatalf("GET %s: %s, want 200 with version it-7", url, last)
	}
	// the engine's own health check, run by the binary inside the scratch image, turns healthy
	for ctx.Err() == nil {
		info, err := docker.ContainerInspect(ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Health != nil && info.State.Health.Status == "healthy" {
			return
		}
		if !info.State.Running {
			t.Fatalf("container stopped: %+v", info.State)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the container never turned healthy")
}
