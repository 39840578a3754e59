package compose

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
)

const testCompose = `
name: shop
services:
  llm:
    image: llm:v1
    environment:
      MODEL_PATH: /models/llama
      WORKERS: "4"
    ports: ["8001:9000"]
    volumes:
      - models:/models:ro
      - ./logs:/logs
    healthcheck:
      test: ["CMD", "/server", "-healthcheck"]
      interval: 30s
      timeout: 10s
      retries: 3
      start_period: 2m
    restart: unless-stopped
    shm_size: 1gb
    deploy:
      resources:
        limits: {cpus: "4", memory: 16G}
        reservations:
          memory: 8G
          devices:
            - driver: nvidia
              count: 2
              capabilities: [gpu]
    networks: [back]
volumes:
  models: {}
networks:
  back: {}
`

func TestContainerSpecFromComposeFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(testCompose), 0o644); err != nil {
		t.Fatal(err)
	}
	proj, svc, err := LoadService(context.Background(), []string{file}, "shop", "llm")
	if err != nil {
		t.Fatal(err)
	}
	p := New(nil, Options{Project: "shop", Service: "llm", Spec: svc, Volumes: proj.Volumes, Networks: proj.Networks, Rollout: rollout.Default()})
	d := rollout.Deployment{Color: rollout.Green, Revision: 7, Image: "llm:v2", Replicas: 2, ConfigHash: ConfigHash(svc)}
	cfg, host, net := p.containerSpec(d, 1)

	if cfg.Image != "llm:v2" {
		t.Errorf("image %s, want the deployment's", cfg.Image)
	}
	if want := []string{"MODEL_PATH=/models/llama", "WORKERS=4"}; !reflect.DeepEqual(cfg.Env, want) {
		t.Errorf("env %v, want %v", cfg.Env, want)
	}
	for k, v := range map[string]string{LabelColor: "green", LabelRevision: "7", LabelIndex: "1", LabelImage: "llm:v2",
		"com.docker.compose.project": "shop", "com.docker.compose.service": "llm", "com.docker.compose.oneoff": "False"} {
		if cfg.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cfg.Labels[k], v)
		}
	}
	if hc := cfg.Healthcheck; hc == nil || hc.Interval != 30*time.Second || hc.StartPeriod != 2*time.Minute || hc.Retries != 3 {
		t.Errorf("healthcheck %+v", cfg.Healthcheck)
	}
	if _, ok := cfg.ExposedPorts["9000/tcp"]; !ok {
		t.Errorf("exposed %v, want the service's container port 9000", cfg.ExposedPorts)
	}
	if b := host.PortBindings["9000/tcp"]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != "" {
		t.Errorf("port bindings %v, want a random loopback port", host.PortBindings)
	}
	if host.Memory != 16<<30 || host.MemoryReservation != 8<<30 || host.NanoCPUs != 4e9 || host.ShmSize != 1<<30 {
		t.Errorf("resources memory %d reservation %d cpus %d shm %d", host.Memory, host.MemoryReservation, host.NanoCPUs, host.ShmSize)
	}
	wantDev := []container.DeviceRequest{{Driver: "nvidia", Count: 2, Capabilities: [][]string{{"gpu"}}}}
	if !reflect.DeepEqual(host.DeviceRequests, wantDev) {
		t.Errorf("device requests %+v, want %+v", host.DeviceRequests, wantDev)
	}
	if host.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
		t.Errorf("restart %v", host.RestartPolicy)
	}
	wantMounts := []mount.Mount{
		{Type: mount.TypeVolume, Source: "shop_models", Target: "/models", ReadOnly: true},
		{Type: mount.TypeBind, Source: filepath.Join(dir, "logs"), Target: "/logs"},
	}
	if !reflect.DeepEqual(host.Mounts, wantMounts) {
		t.Errorf("mounts %+v, want %+v", host.Mounts, wantMounts)
	}
	if string(host.NetworkMode) != "shop_back" || net == nil || net.EndpointsConfig["shop_back"] == nil {
		t.Errorf("network mode %s, endpoints %+v", host.NetworkMode, net)
	}
	if gpusPerReplica(svc) != 2 {
		t.Errorf("GPUs per replica %d, want 2", gpusPerReplica(svc))
	}
	if p.pauseOnRetire() {
		t.Error("a GPU service is paused on retire; its GPUs must be freed")
	}
	if p.replicaName(d, 1) != "shop-llm-green-r7-2" {
		t.Errorf("name %s", p.replicaName(d, 1))
	}
}
