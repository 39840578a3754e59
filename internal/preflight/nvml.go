//go:build linux && cgo

package preflight

import (
	"context"
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NVML is the part of go-nvml the checks use; nvml.New() and go-nvml's mocks
// (pkg/nvml/mock, and full machines such as mock/dgxh100) satisfy it.
type NVML interface {
	Init() nvml.Return
	Shutdown() nvml.Return
	SystemGetDriverVersion() (string, nvml.Return)
	SystemGetCudaDriverVersion() (int, nvml.Return)
	DeviceGetCount() (int, nvml.Return)
	DeviceGetHandleByIndex(int) (nvml.Device, nvml.Return)
	EventSetCreate() (nvml.EventSet, nvml.Return)
}

var _ NVML = nvml.Interface(nil)

// NVMLAvailable is true when this build can load NVML (linux with cgo).
const NVMLAvailable = true

func orSystemNVML(lib NVML) NVML {
	if lib == nil {
		return nvml.New()
	}
	return lib
}

// hostDriverVersion loads NVML just long enough to read the driver version.
func hostDriverVersion(lib NVML) (string, error) {
	lib = orSystemNVML(lib)
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return "", fmt.Errorf("loading NVML: %s", initProblem(ret))
	}
	defer lib.Shutdown()
	v, ret := lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		return "", fmt.Errorf("reading the driver version: %s", ret.Error())
	}
	return v, nil
}

// initProblem names an NVML Init failure in words.
func initProblem(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "NVML library not found (libnvidia-ml.so.1)"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "NVIDIA kernel driver not loaded"
	case nvml.ERROR_NO_PERMISSION:
		return "no permission to open the NVIDIA devices (/dev/nvidia*)"
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "NVML library and kernel driver versions differ"
	}
	return "NVML init: " + ret.Error()
}

// initFailure is the one line that explains why NVML did not load.
func initFailure(ret nvml.Return, required bool) Result {
	const id, sub = "nvml.init", "host"
	what := initProblem(ret)
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		const remedy = "install the NVIDIA driver on a GPU host; in a container, run it with the NVIDIA container toolkit"
		if required {
			return fail(id, sub, "no usable GPU on this host: "+what, "", remedy)
		}
		return skipOrFail(false, id, sub, what+": GPU checks skipped", remedy)
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return failOrWarn(required, id, sub, what, "",
			"load the driver (modprobe nvidia; see dmesg for why it failed) or reboot after installing it")
	case nvml.ERROR_NO_PERMISSION:
		return failOrWarn(required, id, sub, what, "",
			"run as root or as a user in the group that owns /dev/nvidia*")
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return failOrWarn(required, id, sub, what, "",
			"reboot, or unload and reload the nvidia kernel modules, after a driver upgrade")
	}
	return failOrWarn(required, id, sub, what, "", "run nvidia-smi to see what the driver reports")
}

// gpuEnv is what the per-device checks share.
type gpuEnv struct {
	req         Requirements
	estimate    *MemoryEstimate
	estimateErr error
}

func (r *runner) gpuGroup(ctx context.Context) []Result {
	lib := orSystemNVML(r.opts.NVML)
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return []Result{initFailure(ret, r.opts.Require.GPU)}
	}
	defer lib.Shutdown()
	env := &gpuEnv{req: r.opts.Req, estimate: r.estimate, estimateErr: r.estimateErr}
	results := []Result{pass("nvml.init", "host", "NVML loaded", "")}
	results = append(results, checkDriver(lib, env.req.CUDAVersion), checkCUDADriver(lib, env.req.CUDAVersion))

	count, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return append(results, fail("gpu.count", "host", "counting GPUs: "+ret.Error(), "", "run nvidia-smi -L to see what the driver reports"))
	}
	devices := make([]nvml.Device, 0, count)
	names := make([]string, 0, count)
	for i := range count {
		d, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			results = append(results, fail("gpu.handle", gpuSubject(i), "opening the GPU: "+ret.Error(), "", "run nvidia-smi -q -i "+fmt.Sprint(i)))
			continue
		}
		name, _ := d.GetName()
		devices, names = append(devices, d), append(names, name)
	}
	results = append(results, checkCount(names, env.req, r.opts.Require.GPU))

	var checks []check
	for i, d := range devices {
		sub := gpuSubject(i)
		for _, dc := range deviceChecks {
			checks = append(checks, check{id: dc.id, subject: sub, run: func(context.Context) []Result {
				return []Result{dc.run(d, sub, env)}
			}})
		}
	}
	if len(devices) > 0 {
		window := r.opts.XIDWindow
		checks = append(checks, check{id: "gpu.xid", subject: "host", timeout: window + r.opts.CheckTimeout,
			run: func(ctx context.Context) []Result { return []Result{checkXID(ctx, lib, devices, window)} }})
	}
	return append(results, runChecks(ctx, r.opts.CheckTimeout, checks)...)
}

func gpuSubject(i int) string { return fmt.Sprintf("gpu%d", i) }

func notSupported(ret nvml.Return) bool {
	return ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_FUNCTION_NOT_FOUND
}

// readFailure turns an unexpected NVML error into a result: a lost GPU fails, the rest warn.
func readFailure(id, sub, what string, ret nvml.Return) Result {
	if notSupported(ret) {
		return skip(id, sub, what+" not supported on this GPU")
	}
	if ret == nvml.ERROR_GPU_IS_LOST {
		return fail(id, sub, "GPU is lost (fell off the bus)", "", "drain the node and reset or reboot; check dmesg for XID 79")
	}
	return warn(id, sub, "reading "+what+": "+ret.Error(), "", "run nvidia-smi -q to inspect the GPU")
}

func checkDriver(lib NVML, cuda string) Result {
	const id, sub = "gpu.driver", "host"
	driver, ret := lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "driver version", ret)
	}
	if cuda == "" {
		return pass(id, sub, driver, "")
	}
	verdict, need, err := CheckDriver(driver, cuda)
	if err != nil {
		return warn(id, sub, driver, "CUDA "+cuda, err.Error())
	}
	threshold := fmt.Sprintf(">= %s (CUDA %s)", need.Minimum, cuda)
	if !need.Exact {
		threshold += ", nearest table entry"
	}
	switch verdict {
	case DriverOK:
		return pass(id, sub, driver, threshold)
	case DriverMinorCompat:
		return warn(id, sub, driver+" (minor-version compatibility)", threshold,
			"upgrade the driver to "+need.Minimum+" or later; until then CUDA "+cuda+" runs with limited features (no PTX JIT)")
	}
	return fail(id, sub, driver, threshold, "upgrade the NVIDIA driver to "+need.Minimum+" or later, or use an image built for an older CUDA")
}

func checkCUDADriver(lib NVML, cuda string) Result {
	const id, sub = "gpu.cuda-driver", "host"
	v, ret := lib.SystemGetCudaDriverVersion()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "CUDA driver version", ret)
	}
	have := cudaFromDriverInt(v)
	if cuda == "" {
		return pass(id, sub, "CUDA "+have, "")
	}
	hv, _ := parseVersion(have)
	want, err := parseVersion(cuda)
	if err != nil {
		return warn(id, sub, "CUDA "+have, cuda, "fix the image's CUDA version: "+err.Error())
	}
	threshold := ">= CUDA " + cuda
	switch {
	case hv.compare(want[:min(2, len(want))]) >= 0:
		return pass(id, sub, "CUDA "+have, threshold)
	case hv[0] == want[0]:
		return warn(id, sub, "CUDA "+have+" (minor-version compatibility)", threshold,
			"upgrade the driver so it supports CUDA "+cuda+"; newer features of the image may fail")
	}
	return fail(id, sub, "CUDA "+have, threshold, "upgrade the driver to one that supports CUDA "+cuda)
}

func checkCount(names []string, req Requirements, required bool) Result {
	const id, sub = "gpu.count", "host"
	matching := len(names)
	product := ""
	if req.GPUProduct != "" {
		product = " " + req.GPUProduct
		matching = 0
		for _, n := range names {
			if productMatches(n, req.GPUProduct) {
				matching++
			}
		}
	}
	measured := fmt.Sprintf("%d GPU(s)", len(names))
	if len(names) > 0 {
		measured += ": " + summarizeNames(names)
	}
	if !req.wantsGPU() {
		if len(names) == 0 {
			return skipOrFail(required, id, sub, "no GPUs", "run on a host with an NVIDIA GPU")
		}
		return pass(id, sub, measured, "")
	}
	need := req.NeededGPUs()
	threshold := fmt.Sprintf(">= %d%s (%d replica(s) × %d GPU(s))", need, product, req.NeededReplicas(), req.GPUsPerReplica)
	switch {
	case matching >= need:
		return pass(id, sub, measured, threshold)
	case matching >= req.GPUsPerReplica:
		return warn(id, sub, measured, threshold,
			fmt.Sprintf("this host fits %d replica(s); spread the rest over more hosts or lower replicas", matching/req.GPUsPerReplica))
	}
	return fail(id, sub, measured, threshold, "run on a host with more"+product+" GPUs, or lower gpusPerReplica / tensorParallel")
}

// summarizeNames writes "8× NVIDIA H100 80GB HBM3" or the distinct names.
func summarizeNames(names []string) string {
	counts := map[string]int{}
	var order []string
	for _, n := range names {
		if counts[n] == 0 {
			order = append(order, n)
		}
		counts[n]++
	}
	parts := make([]string, len(order))
	for i, n := range order {
		parts[i] = fmt.Sprintf("%d× %s", counts[n], n)
	}
	return strings.Join(parts, ", ")
}
