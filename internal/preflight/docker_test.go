package preflight

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// fakeDocker answers like an engine with the given state.
type fakeDocker struct {
	pingErr error
	version types.Version
	info    system.Info
	images  map[string][]string // ref → env
	host    string
}

func (f *fakeDocker) Ping(context.Context) (types.Ping, error) { return types.Ping{}, f.pingErr }
func (f *fakeDocker) ServerVersion(context.Context) (types.Version, error) {
	return f.version, nil
}
func (f *fakeDocker) Info(context.Context) (system.Info, error) { return f.info, nil }
func (f *fakeDocker) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	env, ok := f.images[ref]
	if !ok {
		return image.InspectResponse{}, fmt.Errorf("no such image %s: %w", ref, cerrdefs.ErrNotFound)
	}
	cfg := &dockerspec.DockerOCIImageConfig{}
	cfg.Env = env
	return image.InspectResponse{Config: cfg}, nil
}
func (f *fakeDocker) DaemonHost() string { return cmpOrString(f.host, "tcp://remote:2376") }
func (f *fakeDocker) Close() error       { return nil }

func engine2010() *fakeDocker {
	return &fakeDocker{
		version: types.Version{Version: "20.10.24", APIVersion: "1.41"},
		info:    system.Info{Runtimes: map[string]system.RuntimeWithStatus{"runc": {}}},
	}
}

func TestDockerGroup(t *testing.T) {
	t.Parallel()
	gpu := Requirements{GPUsPerReplica: 1, Replicas: 1}
	withNvidia := engine2010()
	withNvidia.info.Runtimes["nvidia"] = system.RuntimeWithStatus{}
	oldAPI := engine2010()
	oldAPI.version.APIVersion = "1.39"
	cdiDir := t.TempDir()
	writeFile(t, filepath.Join(cdiDir, "nvidia.yaml"), "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n")
	withCDI := engine2010()
	withCDI.info.CDISpecDirs = []string{filepath.Join(cdiDir, "missing"), cdiDir}

	tests := []struct {
		name     string
		engine   *fakeDocker
		factory  error
		req      Requirements
		required bool
		want     map[string]Status
	}{
		{"unreachable, auto", &fakeDocker{pingErr: errors.New("dial unix /var/run/docker.sock: connect: no such file")}, nil, gpu, false,
			map[string]Status{"docker.engine": Skip}},
		{"unreachable, required", &fakeDocker{pingErr: errors.New("connection refused")}, nil, gpu, true,
			map[string]Status{"docker.engine": Fail}},
		{"bad DOCKER_HOST", nil, errors.New("unable to parse docker host"), gpu, true,
			map[string]Status{"docker.engine": Fail}},
		{"cpu service", engine2010(), nil, Requirements{}, false,
			map[string]Status{"docker.engine": Pass, "docker.gpu-runtime": Skip, "docker.image-cuda": Skip}},
		{"gpus required without runtime", engine2010(), nil, gpu, true,
			map[string]Status{"docker.engine": Pass, "docker.gpu-runtime": Fail}},
		{"nvidia runtime", withNvidia, nil, gpu, false,
			map[string]Status{"docker.gpu-runtime": Pass}},
		{"cdi spec", withCDI, nil, gpu, false,
			map[string]Status{"docker.gpu-runtime": Pass}},
		{"engine too old for --gpus", oldAPI, nil, gpu, false,
			map[string]Status{"docker.engine": Fail}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := Options{Req: tt.req, Run: Groups{Docker: true}, Require: Groups{Docker: tt.required, GPU: tt.required},
				Docker: func() (DockerAPI, error) {
					if tt.factory != nil {
						return nil, tt.factory
					}
					return tt.engine, nil
				}}
			rep, err := Run(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			for id, want := range tt.want {
				got := findID(rep, id)
				if got.Status != want {
					t.Errorf("%s: got %+v, want %s", id, got, want)
				}
			}
		})
	}
}

func TestGPURuntimeOnHostWithoutGPU(t *testing.T) {
	t.Parallel()
	info := engine2010().info
	tests := []struct {
		name     string
		driver   error
		required bool
		want     Status
	}{
		{"gpu host", nil, false, Fail},
		{"no gpu here", errors.New("NVML library not found"), false, Skip},
		{"no gpu here, gpu required", errors.New("NVML library not found"), true, Fail},
	}
	for _, tt := range tests {
		r := &runner{opts: Options{Req: Requirements{GPUsPerReplica: 1}, Require: Groups{GPU: tt.required}},
			hostDriver: func() (string, error) { return "550.54.15", tt.driver }}
		if got := r.checkGPURuntime(info, false); got.Status != tt.want {
			t.Errorf("%s: got %+v, want %s", tt.name, got, tt.want)
		}
	}
}

func findID(rep Report, id string) Result {
	for _, r := range rep.Results {
		if r.ID == id {
			return r
		}
	}
	return Result{ID: id, Status: "missing"}
}

func TestImageCUDA(t *testing.T) {
	t.Parallel()
	const ref = "registry.local/llm:1.0"
	tests := []struct {
		name   string
		env    []string
		driver string
		want   Status
	}{
		{"driver new enough", []string{"NVIDIA_REQUIRE_CUDA=cuda>=12.4 brand=tesla,driver>=470,driver<471"}, "550.54.15", Pass},
		{"minor compatibility", []string{"NVIDIA_REQUIRE_CUDA=cuda>=12.4"}, "535.54.03", Warn},
		{"driver too old", []string{"NVIDIA_REQUIRE_CUDA=cuda>=12.1"}, "470.57.02", Fail},
		{"image states nothing", []string{"PATH=/usr/bin"}, "550.54.15", Skip},
		{"driver unknown", []string{"NVIDIA_REQUIRE_CUDA=cuda>=12.1"}, "", Skip},
		{"image absent", nil, "550.54.15", Skip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			engine := engine2010()
			if tt.env != nil {
				engine.images = map[string][]string{ref: tt.env}
			}
			r := &runner{opts: Options{Req: Requirements{Image: ref, GPUsPerReplica: 1}}, hostDriver: func() (string, error) {
				if tt.driver == "" {
					return "", errors.New("NVML library not found")
				}
				return tt.driver, nil
			}}
			got := r.checkImageCUDA(context.Background(), engine)
			if got.Status != tt.want {
				t.Errorf("got %+v, want %s", got, tt.want)
			}
		})
	}
}

func TestCheckPort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if got := checkPort(port); got.Status != Fail || got.Measured != "in use" || got.Subject != fmt.Sprintf("port/%d", port) {
		t.Errorf("held port: %+v", got)
	}
	l.Close()
	if got := checkPort(port); got.Status != Pass {
		t.Errorf("released port: %+v", got)
	}
}

func TestModelDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	small := &MemoryEstimate{Weights: 1 << 20}
	huge := &MemoryEstimate{Weights: 1 << 62}
	tests := []struct {
		name     string
		path     string
		est      *MemoryEstimate
		want     Status
		measured string
	}{
		{"present", dir, huge, Pass, "model present"},
		{"room to download", filepath.Join(dir, "models", "llama"), small, Pass, "not downloaded yet"},
		{"no room", filepath.Join(dir, "models", "llama"), huge, Fail, "not downloaded yet"},
		{"size unknown", filepath.Join(dir, "x"), nil, Skip, "size unknown"},
		{"no path", "", small, Skip, "no model path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &runner{opts: Options{Req: Requirements{ModelPath: tt.path}}, estimate: tt.est}
			got := r.checkModelDisk()
			if got.Status != tt.want || !strings.Contains(got.Measured, tt.measured) {
				t.Errorf("got %+v, want %s %q", got, tt.want, tt.measured)
			}
		})
	}
}
