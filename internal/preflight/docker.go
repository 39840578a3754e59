package preflight

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
)

// DockerAPI is the part of the Engine API client the checks use.
type DockerAPI interface {
	Ping(ctx context.Context) (types.Ping, error)
	ServerVersion(ctx context.Context) (types.Version, error)
	Info(ctx context.Context) (system.Info, error)
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	DaemonHost() string
	Close() error
}

// NewDockerClient connects like the docker CLI does (DOCKER_HOST, DOCKER_CERT_PATH) and
// negotiates the API version, so older engines (20.10, API 1.41) work.
func NewDockerClient() (DockerAPI, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("configuring the docker client (check DOCKER_HOST): %w", err)
	}
	return c, nil
}

// Sizes the disk check assumes when it cannot measure.
const (
	assumedImageSize = 10 << 30 // a CUDA runtime image with a Python serving stack
	diskHeadroom     = 2 << 30  // container layers and logs
	// gpuDeviceRequestsAPI is the first Engine API with device requests (docker run --gpus).
	gpuDeviceRequestsAPI = "1.40"
)

func (r *runner) dockerGroup(ctx context.Context) []Result {
	const id, sub = "docker.engine", "docker"
	required := r.opts.Require.Docker
	factory := r.opts.Docker
	if factory == nil {
		factory = NewDockerClient
	}
	cli, err := factory()
	if err != nil {
		return []Result{skipOrFail(required, id, sub, err.Error(), "set DOCKER_HOST to a running engine")}
	}
	defer cli.Close()

	pingCtx, cancel := context.WithTimeout(ctx, r.opts.CheckTimeout)
	defer cancel()
	if _, err := cli.Ping(pingCtx); err != nil {
		return []Result{skipOrFail(required, id, sub, "engine not reachable at "+cli.DaemonHost()+": "+firstLine(err),
			"start the engine (systemctl start docker) or point DOCKER_HOST at it")}
	}
	v, err := cli.ServerVersion(pingCtx)
	if err != nil {
		return []Result{fail(id, sub, "reading the engine version: "+firstLine(err), "", "check the engine's log (journalctl -u docker)")}
	}
	info, err := cli.Info(pingCtx)
	if err != nil {
		return []Result{fail(id, sub, "reading the engine info: "+firstLine(err), "", "check the engine's log (journalctl -u docker)")}
	}
	results := []Result{r.checkEngineVersion(v)}

	local := strings.HasPrefix(cli.DaemonHost(), "unix://")
	checks := []check{
		{id: "docker.gpu-runtime", subject: sub, run: func(context.Context) []Result {
			return []Result{r.checkGPURuntime(info, local)}
		}},
		{id: "docker.image-cuda", subject: sub, run: func(ctx context.Context) []Result {
			return []Result{r.checkImageCUDA(ctx, cli)}
		}},
		{id: "docker.disk-image", subject: sub, run: func(ctx context.Context) []Result {
			return []Result{r.checkImageDisk(ctx, cli, info, local)}
		}},
		{id: "docker.disk-model", subject: "host", run: func(context.Context) []Result {
			return []Result{r.checkModelDisk()}
		}},
	}
	for _, p := range r.opts.Req.Ports {
		checks = append(checks, check{id: "docker.port", subject: fmt.Sprintf("port/%d", p), run: func(context.Context) []Result {
			return []Result{checkPort(p)}
		}})
	}
	return append(results, runChecks(ctx, r.opts.CheckTimeout, checks)...)
}

func (r *runner) checkEngineVersion(v types.Version) Result {
	const id, sub = "docker.engine", "docker"
	measured := fmt.Sprintf("Docker %s (API %s)", v.Version, v.APIVersion)
	if !r.opts.Req.wantsGPU() {
		return pass(id, sub, measured, "reachable")
	}
	threshold := "API >= " + gpuDeviceRequestsAPI + " (GPU device requests)"
	have, err := parseVersion(v.APIVersion)
	need, _ := parseVersion(gpuDeviceRequestsAPI)
	if err != nil || have.compare(need) < 0 {
		return fail(id, sub, measured, threshold, "upgrade Docker to 19.03 or later to run containers with GPUs")
	}
	return pass(id, sub, measured, threshold)
}

func (r *runner) checkGPURuntime(info system.Info, local bool) Result {
	const id, sub = "docker.gpu-runtime", "docker"
	if !r.opts.Req.wantsGPU() {
		return skip(id, sub, "no GPUs requested")
	}
	threshold := "nvidia runtime, CDI spec or nvidia-container-runtime-hook"
	if _, ok := info.Runtimes["nvidia"]; ok {
		return pass(id, sub, "nvidia runtime registered", threshold)
	}
	if dir := nvidiaCDISpec(info.CDISpecDirs); dir != "" {
		return pass(id, sub, "NVIDIA CDI spec in "+dir, threshold)
	}
	if local {
		if path, err := exec.LookPath("nvidia-container-runtime-hook"); err == nil {
			return pass(id, sub, "GPU hook at "+path, threshold)
		}
	}
	if _, err := r.hostDriver(); err != nil && !r.opts.Require.GPU {
		// Without a GPU here the deployment targets another host; a runtime here would not help.
		return skip(id, sub, "no GPU runtime, and no usable GPU on this host ("+err.Error()+")")
	}
	runtimes := make([]string, 0, len(info.Runtimes))
	for name := range info.Runtimes {
		runtimes = append(runtimes, name)
	}
	return fail(id, sub, "no GPU runtime (runtimes: "+strings.Join(sortedCopy(runtimes), ", ")+")", threshold,
		"install the NVIDIA Container Toolkit, then: nvidia-ctk runtime configure --runtime=docker && systemctl restart docker")
}

// nvidiaCDISpec returns the first directory holding an NVIDIA CDI spec (nvidia-ctk cdi generate).
func nvidiaCDISpec(dirs []string) string {
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if strings.Contains(strings.ToLower(e.Name()), "nvidia") {
				return dir
			}
		}
	}
	return ""
}

func (r *runner) checkImageCUDA(ctx context.Context, cli DockerAPI) Result {
	const id, sub = "docker.image-cuda", "docker"
	ref := r.opts.Req.Image
	switch {
	case !r.opts.Req.wantsGPU():
		return skip(id, sub, "no GPUs requested")
	case ref == "":
		return skip(id, sub, "no image configured")
	}
	img, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		if client.IsErrNotFound(err) {
			return skip(id, sub, ref+" is not present locally; its CUDA need is checked once it is pulled or built")
		}
		return warn(id, sub, "inspecting "+ref+": "+firstLine(err), "", "check that the engine can read its images")
	}
	var require string
	if img.Config != nil {
		for _, e := range img.Config.Env {
			if v, ok := strings.CutPrefix(e, "NVIDIA_REQUIRE_CUDA="); ok {
				require = v
			}
		}
	}
	cuda := CUDAFromRequire(require)
	if cuda == "" {
		return skip(id, sub, ref+" states no NVIDIA_REQUIRE_CUDA")
	}
	driver, err := r.hostDriver()
	if err != nil {
		return skip(id, sub, "image needs CUDA "+cuda+"; host driver unknown: "+err.Error())
	}
	verdict, need, err := CheckDriver(driver, cuda)
	threshold := fmt.Sprintf("driver >= %s (image needs CUDA %s)", need.Minimum, cuda)
	switch {
	case err != nil:
		return warn(id, sub, "driver "+driver, "CUDA "+cuda, err.Error())
	case verdict == DriverOK:
		return pass(id, sub, "driver "+driver, threshold)
	case verdict == DriverMinorCompat:
		return warn(id, sub, "driver "+driver+" (minor-version compatibility)", threshold,
			"upgrade the driver to "+need.Minimum+"; the container starts but newer CUDA features may fail")
	}
	return fail(id, sub, "driver "+driver, threshold,
		"upgrade the NVIDIA driver to "+need.Minimum+" or later; the container toolkit refuses to start this image")
}

func (r *runner) checkImageDisk(ctx context.Context, cli DockerAPI, info system.Info, local bool) Result {
	const id, sub = "docker.disk-image", "docker"
	root := info.DockerRootDir
	if !local || root == "" {
		return skip(id, sub, "the engine is remote; its disk is not visible from here")
	}
	free, err := freeBytes(root)
	if err != nil {
		return skip(id, sub, "cannot read free space of "+root+": "+err.Error())
	}
	need, why := uint64(diskHeadroom), "headroom for layers and logs"
	if ref := r.opts.Req.Image; ref != "" {
		if _, err := cli.ImageInspect(ctx, ref); err != nil {
			need += assumedImageSize
			why = "a ~10 GiB CUDA image to pull, plus " + why
		}
	}
	measured := fmt.Sprintf("%s free in %s", formatBytes(free), root)
	threshold := fmt.Sprintf(">= %s (%s)", formatBytes(need), why)
	if free < need {
		return fail(id, sub, measured, threshold, "free disk space (docker system prune) or move the engine's data-root")
	}
	return pass(id, sub, measured, threshold)
}

func (r *runner) checkModelDisk() Result {
	const id, sub = "docker.disk-model", "host"
	path := r.opts.Req.ModelPath
	if path == "" {
		return skip(id, sub, "no model path configured")
	}
	if _, err := os.Stat(path); err == nil {
		free, ferr := freeBytes(path)
		if ferr != nil {
			return pass(id, sub, "model present at "+path, "")
		}
		return pass(id, sub, fmt.Sprintf("model present at %s (%s free)", path, formatBytes(free)), "")
	}
	dir := existingParent(path)
	free, err := freeBytes(dir)
	if err != nil {
		return skip(id, sub, "cannot read free space of "+dir+": "+err.Error())
	}
	measured := fmt.Sprintf("%s free in %s (model not downloaded yet)", formatBytes(free), dir)
	if r.estimate == nil {
		return skip(id, sub, measured+"; model size unknown")
	}
	need := r.estimate.Weights + diskHeadroom
	threshold := fmt.Sprintf(">= %s (weights + headroom)", formatBytes(need))
	if free < need {
		return fail(id, sub, measured, threshold, "free disk space there or point modelPath at a larger volume")
	}
	return pass(id, sub, measured, threshold)
}

func existingParent(path string) string {
	p := filepath.Clean(path)
	for {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// checkPort tries to listen on the port on all interfaces, where a published port binds.
func checkPort(port int) Result {
	const id = "docker.port"
	sub := fmt.Sprintf("port/%d", port)
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		measured := "in use"
		if !errors.Is(err, errAddrInUse) {
			measured = firstLine(err)
		}
		return fail(id, sub, measured, "free", fmt.Sprintf("stop what listens there (ss -ltnp 'sport = :%d') or publish another port", port))
	}
	_ = l.Close()
	return pass(id, sub, "free", "free")
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
