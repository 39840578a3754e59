//go:build linux && cgo

package preflight

import (
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// deviceChecks run once per GPU, in this order.
var deviceChecks = []struct {
	id  string
	run func(d nvml.Device, sub string, env *gpuEnv) Result
}{
	{"gpu.compute-capability", checkComputeCapability},
	{"gpu.memory", checkMemory},
	{"gpu.processes", checkProcesses},
	{"gpu.ecc-mode", checkECCMode},
	{"gpu.ecc-errors", checkECCErrors},
	{"gpu.memory-health", checkMemoryHealth},
	{"gpu.inforom", checkInforom},
	{"gpu.persistence", checkPersistence},
	{"gpu.temperature", checkTemperature},
	{"gpu.throttle", checkThrottle},
	{"gpu.mig", checkMIG},
	{"gpu.compute-mode", checkComputeMode},
	{"gpu.pcie", checkPCIe},
	{"gpu.nvlink", checkNVLink},
}

// minComputeCapability is the compute capability a dtype needs in hardware.
func minComputeCapability(dtype string) (major, minor int) {
	switch strings.ToLower(dtype) {
	case "bf16", "bfloat16":
		return 8, 0
	case "fp8":
		return 8, 9
	}
	return 0, 0
}

func checkComputeCapability(d nvml.Device, sub string, env *gpuEnv) Result {
	const id = "gpu.compute-capability"
	major, minor, ret := d.GetCudaComputeCapability()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "compute capability", ret)
	}
	measured := fmt.Sprintf("%d.%d", major, minor)
	needMajor, needMinor := 0, 0
	for _, dt := range []string{env.req.Model.DType, env.req.Model.KVCacheDType} {
		ma, mi := minComputeCapability(dt)
		if ma > needMajor || (ma == needMajor && mi > needMinor) {
			needMajor, needMinor = ma, mi
		}
	}
	if needMajor == 0 {
		return pass(id, sub, measured, "")
	}
	threshold := fmt.Sprintf(">= %d.%d (%s)", needMajor, needMinor, env.req.Model.DType)
	if major > needMajor || (major == needMajor && minor >= needMinor) {
		return pass(id, sub, measured, threshold)
	}
	return fail(id, sub, measured, threshold, "use a GPU that supports "+env.req.Model.DType+" or a dtype this GPU runs (fp16, int8)")
}

func checkMemory(d nvml.Device, sub string, env *gpuEnv) Result {
	const id = "gpu.memory"
	mem, ret := d.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "memory info", ret)
	}
	measured := fmt.Sprintf("%s free of %s", formatBytes(mem.Free), formatBytes(mem.Total))
	if env.estimateErr != nil {
		return warn(id, sub, measured, "", "fix the model description: "+env.estimateErr.Error())
	}
	if env.estimate == nil {
		return pass(id, sub, measured, "")
	}
	need := env.estimate.PerGPU
	threshold := fmt.Sprintf(">= %s per GPU (model estimate)", formatBytes(need))
	switch {
	case mem.Total < need:
		return fail(id, sub, measured, threshold,
			"the model does not fit: raise tensorParallel, use a smaller dtype, or lower contextLength/concurrency")
	case mem.Free < need:
		return warn(id, sub, measured, threshold, "other processes hold GPU memory; stop them before deploying")
	}
	return pass(id, sub, measured, threshold)
}

func checkProcesses(d nvml.Device, sub string, _ *gpuEnv) Result {
	const id = "gpu.processes"
	procs, ret := d.GetComputeRunningProcesses()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "running processes", ret)
	}
	if len(procs) == 0 {
		return pass(id, sub, "no compute processes", "none")
	}
	parts := make([]string, 0, len(procs))
	for _, p := range procs {
		parts = append(parts, fmt.Sprintf("pid %d (%s)", p.Pid, formatBytes(p.UsedGpuMemory)))
	}
	return warn(id, sub, fmt.Sprintf("%d compute process(es): %s", len(procs), strings.Join(parts, ", ")), "none",
		"stop the processes (nvidia-smi shows them) or pick other GPUs")
}

func checkECCMode(d nvml.Device, sub string, _ *gpuEnv) Result {
	const id = "gpu.ecc-mode"
	current, pending, ret := d.GetEccMode()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "ECC mode", ret)
	}
	switch {
	case current != pending:
		return warn(id, sub, fmt.Sprintf("%s, pending %s", enabled(current), enabled(pending)), "current = pending",
			"reset the GPU (nvidia-smi -r) or reboot to apply the pending ECC mode")
	case current != nvml.FEATURE_ENABLED:
		return warn(id, sub, "disabled", "enabled", "enable ECC (nvidia-smi -e 1) and reset the GPU; without it memory errors go unnoticed")
	}
	return pass(id, sub, "enabled", "enabled")
}

func checkECCErrors(d nvml.Device, sub string, _ *gpuEnv) Result {
	const id = "gpu.ecc-errors"
	n, ret := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "ECC error counts", ret)
	}
	measured := fmt.Sprintf("%d volatile uncorrected", n)
	if n > 0 {
		return fail(id, sub, measured, "0", "drain the GPU and reset it; if errors come back, replace it")
	}
	return pass(id, sub, measured, "0")
}

// retiredPagesLimit is where DCGM fails a pre-Ampere GPU for retired pages.
const retiredPagesLimit = 63

// checkMemoryHealth reads row remapping (Ampere and later) or retired pages (before).
func checkMemoryHealth(d nvml.Device, sub string, _ *gpuEnv) Result {
	arch, ret := d.GetArchitecture()
	if ret == nvml.SUCCESS && arch < nvml.DEVICE_ARCH_AMPERE {
		return checkRetiredPages(d, sub)
	}
	r := checkRowRemap(d, sub)
	if r.Status == Skip && ret != nvml.SUCCESS {
		return checkRetiredPages(d, sub)
	}
	return r
}

func checkRowRemap(d nvml.Device, sub string) Result {
	const id = "gpu.memory-health"
	corr, unc, pending, failure, ret := d.GetRemappedRows()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "row remapping", ret)
	}
	measured := fmt.Sprintf("%d rows remapped (%d correctable, %d uncorrectable)", corr+unc, corr, unc)
	switch {
	case failure:
		return fail(id, sub, measured+", remapping failed", "no failure, none pending", "the GPU ran out of spare rows: take it out of service and replace it")
	case pending:
		return warn(id, sub, measured+", remap pending", "no failure, none pending", "reset the GPU (nvidia-smi -r) or reboot to apply the pending remap")
	}
	return pass(id, sub, measured, "no failure, none pending")
}

func checkRetiredPages(d nvml.Device, sub string) Result {
	const id = "gpu.memory-health"
	total := 0
	for _, cause := range []nvml.PageRetirementCause{nvml.PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS, nvml.PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR} {
		pages, ret := d.GetRetiredPages(cause)
		if ret != nvml.SUCCESS {
			return readFailure(id, sub, "retired pages", ret)
		}
		total += len(pages)
	}
	measured := fmt.Sprintf("%d retired pages", total)
	threshold := fmt.Sprintf("< %d, none pending", retiredPagesLimit)
	if total >= retiredPagesLimit {
		return fail(id, sub, measured, threshold, "the GPU has retired too many pages: replace it")
	}
	pending, ret := d.GetRetiredPagesPendingStatus()
	if ret == nvml.SUCCESS && pending == nvml.FEATURE_ENABLED {
		return warn(id, sub, measured+", retirement pending", threshold, "reset the GPU (nvidia-smi -r) or reboot to retire the pending pages")
	}
	return pass(id, sub, measured, threshold)
}

func checkInforom(d nvml.Device, sub string, _ *gpuEnv) Result {
	const id = "gpu.inforom"
	ret := d.ValidateInforom()
	switch {
	case ret == nvml.SUCCESS:
		return pass(id, sub, "valid", "valid")
	case ret == nvml.ERROR_CORRUPTED_INFOROM:
		return fail(id, sub, "corrupted", "valid", "the InfoROM is corrupt: flash it with NVIDIA's tools or replace the GPU")
	}
	return readFailure(id, sub, "InfoROM validation", ret)
}

func checkPersistence(d nvml.Device, sub string, _ *gpuEnv) Result {
	const id = "gpu.persistence"
	mode, ret := d.GetPersistenceMode()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "persistence mode", ret)
	}
	if mode != nvml.FEATURE_ENABLED {
		return warn(id, sub, "disabled", "enabled",
			"run nvidia-persistenced (or nvidia-smi -pm 1) so each container start does not pay the driver's initialisation")
	}
	return pass(id, sub, "enabled", "enabled")
}

// temperatureMargin is how close to the slowdown threshold counts as a warning.
const temperatureMargin = 5

func checkTemperature(d nvml.Device, sub string, _ *gpuEnv) Result {
	const id = "gpu.temperature"
	temp, ret := d.GetTemperature(nvml.TEMPERATURE_GPU)
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "temperature", ret)
	}
	measured := fmt.Sprintf("%d °C", temp)
	slow, ret := d.GetTemperatureThreshold(nvml.TEMPERATURE_THRESHOLD_SLOWDOWN)
	if ret != nvml.SUCCESS || slow == 0 {
		return pass(id, sub, measured, "slowdown threshold unknown")
	}
	threshold := fmt.Sprintf("< %d °C (slowdown)", slow)
	switch {
	case temp >= slow:
		return fail(id, sub, measured, threshold, "the GPU is slowing down from heat: check cooling and airflow before deploying")
	case temp+temperatureMargin >= slow:
		return warn(id, sub, measured, threshold, "the GPU is close to thermal slowdown: check cooling and airflow")
	}
	return pass(id, sub, measured, threshold)
}

// slowdownReasons are the clock event reasons that cost throughput; the others
// (idle, application clocks, software power cap, sync boost) are normal operation.
var slowdownReasons = []struct {
	bit  uint64
	name string
}{
	{nvml.ClocksEventReasonSwThermalSlowdown, "software thermal slowdown"},
	{nvml.ClocksThrottleReasonHwSlowdown, "hardware slowdown"},
	{nvml.ClocksThrottleReasonHwThermalSlowdown, "hardware thermal slowdown"},
	{nvml.ClocksThrottleReasonHwPowerBrakeSlowdown, "power brake slowdown"},
}

func checkThrottle(d nvml.Device, sub string, _ *gpuEnv) Result {
	const id = "gpu.throttle"
	reasons, ret := d.GetCurrentClocksEventReasons()
	if notSupported(ret) {
		reasons, ret = d.GetCurrentClocksThrottleReasons()
	}
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "clock throttle reasons", ret)
	}
	var active []string
	for _, r := range slowdownReasons {
		if reasons&r.bit != 0 {
			active = append(active, r.name)
		}
	}
	if len(active) > 0 {
		return warn(id, sub, strings.Join(active, ", "), "no slowdown",
			"check power supply, cooling and nvidia-smi -q -d PERFORMANCE; the GPU runs below its clocks")
	}
	measured := "none"
	if reasons&nvml.ClocksEventReasonGpuIdle != 0 {
		measured = "none (idle)"
	}
	return pass(id, sub, measured, "no slowdown")
}

func checkMIG(d nvml.Device, sub string, env *gpuEnv) Result {
	const id = "gpu.mig"
	want := "disabled"
	if env.req.MIG {
		want = "enabled"
	}
	current, pending, ret := d.GetMigMode()
	if notSupported(ret) {
		if env.req.MIG {
			return fail(id, sub, "MIG not supported", want, "run on MIG-capable GPUs (A100, H100, H200) or set mig: false")
		}
		return skip(id, sub, "MIG not supported on this GPU")
	}
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "MIG mode", ret)
	}
	have := enabled(nvml.EnableState(current))
	switch {
	case (current == nvml.DEVICE_MIG_ENABLE) != env.req.MIG:
		remedy := "disable MIG (nvidia-smi -i N -mig 0) and reset the GPU, or request MIG devices"
		if env.req.MIG {
			remedy = "enable MIG (nvidia-smi -i N -mig 1), create the instances and reset the GPU"
		}
		return fail(id, sub, have, want, remedy)
	case current != pending:
		return warn(id, sub, have+", pending "+enabled(nvml.EnableState(pending)), want, "reset the GPU to apply the pending MIG mode")
	}
	return pass(id, sub, have, want)
}

func checkComputeMode(d nvml.Device, sub string, _ *gpuEnv) Result {
	const id = "gpu.compute-mode"
	mode, ret := d.GetComputeMode()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "compute mode", ret)
	}
	switch mode {
	case nvml.COMPUTEMODE_DEFAULT:
		return pass(id, sub, "default", "not prohibited")
	case nvml.COMPUTEMODE_EXCLUSIVE_PROCESS:
		return pass(id, sub, "exclusive process", "not prohibited")
	case nvml.COMPUTEMODE_PROHIBITED:
		return fail(id, sub, "prohibited", "not prohibited", "set the default compute mode (nvidia-smi -c 0); no process may use this GPU now")
	}
	return warn(id, sub, fmt.Sprintf("mode %d", mode), "not prohibited", "set the default compute mode (nvidia-smi -c 0)")
}

func checkPCIe(d nvml.Device, sub string, _ *gpuEnv) Result {
	const id = "gpu.pcie"
	gen, ret := d.GetCurrPcieLinkGeneration()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "PCIe link", ret)
	}
	width, ret := d.GetCurrPcieLinkWidth()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "PCIe link width", ret)
	}
	maxGen, ret1 := d.GetMaxPcieLinkGeneration()
	maxWidth, ret2 := d.GetMaxPcieLinkWidth()
	measured := fmt.Sprintf("gen%d x%d", gen, width)
	if ret1 != nvml.SUCCESS || ret2 != nvml.SUCCESS {
		return pass(id, sub, measured, "maximum unknown")
	}
	threshold := fmt.Sprintf("x%d (max gen%d x%d)", maxWidth, maxGen, maxWidth)
	if width < maxWidth {
		return warn(id, sub, measured, threshold, "the link runs narrower than the GPU supports: reseat the card or check the riser/slot")
	}
	if gen < maxGen {
		measured += " (an idle GPU lowers its link generation)"
	}
	return pass(id, sub, measured, threshold)
}

func checkNVLink(d nvml.Device, sub string, env *gpuEnv) Result {
	const id = "gpu.nvlink"
	tp := env.req.Model.tensorParallel()
	if tp <= 1 {
		return skip(id, sub, "tensor parallelism 1: NVLink not needed")
	}
	threshold := fmt.Sprintf("all links active (tensor parallel %d)", tp)
	active, total := 0, 0
	for link := range nvml.NVLINK_MAX_LINKS {
		state, ret := d.GetNvLinkState(link)
		if ret != nvml.SUCCESS {
			if notSupported(ret) || ret == nvml.ERROR_INVALID_ARGUMENT {
				break
			}
			return readFailure(id, sub, "NVLink state", ret)
		}
		total++
		if state == nvml.FEATURE_ENABLED {
			active++
		}
	}
	switch {
	case total == 0:
		return warn(id, sub, "no NVLink", threshold, "tensor-parallel traffic goes over PCIe: use NVLink-connected GPUs or lower tensorParallel")
	case active < total:
		return warn(id, sub, fmt.Sprintf("%d of %d links active", active, total), threshold,
			"check nvidia-smi nvlink -s and the fabric manager; reset the GPU")
	}
	return pass(id, sub, fmt.Sprintf("%d of %d links active", active, total), threshold)
}

func enabled(s nvml.EnableState) string {
	if s == nvml.FEATURE_ENABLED {
		return "enabled"
	}
	return "disabled"
}
