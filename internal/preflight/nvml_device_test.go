//go:build linux && cgo

package preflight

import (
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

func notSupportedDevice(d *server.Device) {
	d.GetCudaComputeCapabilityFunc = func() (int, int, nvml.Return) { return 0, 0, nvml.ERROR_NOT_SUPPORTED }
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_NOT_SUPPORTED }
}

// TestDeviceChecks drives every per-GPU check through a mocked H100 with one reading changed.
func TestDeviceChecks(t *testing.T) {
	t.Parallel()
	llama8B := Requirements{GPUsPerReplica: 1, Replicas: 1, Model: ModelSpec{Params: 8e9, DType: "bf16", ContextLength: 8192, Concurrency: 8}}
	llama70B := Requirements{GPUsPerReplica: 1, Replicas: 1, Model: ModelSpec{Params: 70e9, DType: "bf16", ContextLength: 8192, Concurrency: 8}}
	tp8 := llama70B
	tp8.Model.TensorParallel = 8
	fp8 := llama8B
	fp8.Model.DType = "fp8"
	withMIG := llama8B
	withMIG.MIG = true
	ns := nvml.ERROR_NOT_SUPPORTED

	tests := []struct {
		name     string
		check    string
		req      Requirements
		breakIt  func(d *server.Device)
		want     Status
		measured string
	}{
		{"cc bf16 on hopper", "gpu.compute-capability", llama8B, nil, Pass, "9.0"},
		{"cc fp8 on ampere", "gpu.compute-capability", fp8, func(d *server.Device) {
			d.GetCudaComputeCapabilityFunc = func() (int, int, nvml.Return) { return 8, 0, nvml.SUCCESS }
		}, Fail, "8.0"},
		{"cc bf16 on turing", "gpu.compute-capability", llama8B, func(d *server.Device) {
			d.GetCudaComputeCapabilityFunc = func() (int, int, nvml.Return) { return 7, 5, nvml.SUCCESS }
		}, Fail, "7.5"},
		{"cc not supported", "gpu.compute-capability", llama8B, notSupportedDevice, Skip, "not supported"},

		{"memory fits", "gpu.memory", llama8B, nil, Pass, "79.0 GiB free of 80.0 GiB"},
		{"memory 70B on one GPU", "gpu.memory", llama70B, nil, Fail, "80.0 GiB"},
		{"memory 70B tp8", "gpu.memory", tp8, nil, Pass, "free"},
		{"memory held by others", "gpu.memory", llama8B, func(d *server.Device) {
			d.MemoryInfo = nvml.Memory{Total: 80 << 30, Free: 10 << 30, Used: 70 << 30}
		}, Warn, "10.0 GiB free"},
		{"memory not supported", "gpu.memory", llama8B, notSupportedDevice, Skip, "not supported"},

		{"no processes", "gpu.processes", llama8B, nil, Pass, "no compute processes"},
		{"foreign process", "gpu.processes", llama8B, func(d *server.Device) {
			d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
				return []nvml.ProcessInfo{{Pid: 4242, UsedGpuMemory: 2 << 30}}, nvml.SUCCESS
			}
		}, Warn, "pid 4242 (2.0 GiB)"},
		{"processes not supported", "gpu.processes", llama8B, func(d *server.Device) {
			d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, ns }
		}, Skip, "not supported"},

		{"ecc enabled", "gpu.ecc-mode", llama8B, nil, Pass, "enabled"},
		{"ecc pending", "gpu.ecc-mode", llama8B, func(d *server.Device) {
			d.GetEccModeFunc = func() (nvml.EnableState, nvml.EnableState, nvml.Return) {
				return nvml.FEATURE_ENABLED, nvml.FEATURE_DISABLED, nvml.SUCCESS
			}
		}, Warn, "enabled, pending disabled"},
		{"ecc disabled", "gpu.ecc-mode", llama8B, func(d *server.Device) {
			d.GetEccModeFunc = func() (nvml.EnableState, nvml.EnableState, nvml.Return) {
				return nvml.FEATURE_DISABLED, nvml.FEATURE_DISABLED, nvml.SUCCESS
			}
		}, Warn, "disabled"},
		{"ecc not supported", "gpu.ecc-mode", llama8B, func(d *server.Device) {
			d.GetEccModeFunc = func() (nvml.EnableState, nvml.EnableState, nvml.Return) { return 0, 0, ns }
		}, Skip, "not supported"},

		{"no ecc errors", "gpu.ecc-errors", llama8B, nil, Pass, "0 volatile uncorrected"},
		{"ecc errors", "gpu.ecc-errors", llama8B, func(d *server.Device) {
			d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 2, nvml.SUCCESS }
		}, Fail, "2 volatile uncorrected"},
		{"ecc errors not supported", "gpu.ecc-errors", llama8B, func(d *server.Device) {
			d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 0, ns }
		}, Skip, "not supported"},

		{"rows remapped ok", "gpu.memory-health", llama8B, func(d *server.Device) {
			d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 2, 0, false, false, nvml.SUCCESS }
		}, Pass, "2 rows remapped"},
		{"remap pending", "gpu.memory-health", llama8B, func(d *server.Device) {
			d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 1, true, false, nvml.SUCCESS }
		}, Warn, "remap pending"},
		{"remap failure", "gpu.memory-health", llama8B, func(d *server.Device) {
			d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 8, false, true, nvml.SUCCESS }
		}, Fail, "remapping failed"},
		{"remap not supported", "gpu.memory-health", llama8B, func(d *server.Device) {
			d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, ns }
		}, Skip, "not supported"},
		{"volta retired pages", "gpu.memory-health", llama8B, func(d *server.Device) {
			d.Config.Architecture = nvml.DEVICE_ARCH_VOLTA
			d.GetRetiredPagesFunc = func(nvml.PageRetirementCause) ([]uint64, nvml.Return) { return make([]uint64, 40), nvml.SUCCESS }
		}, Fail, "80 retired pages"},
		{"volta retirement pending", "gpu.memory-health", llama8B, func(d *server.Device) {
			d.Config.Architecture = nvml.DEVICE_ARCH_VOLTA
			d.GetRetiredPagesPendingStatusFunc = func() (nvml.EnableState, nvml.Return) { return nvml.FEATURE_ENABLED, nvml.SUCCESS }
		}, Warn, "retirement pending"},
		{"volta healthy", "gpu.memory-health", llama8B, func(d *server.Device) { d.Config.Architecture = nvml.DEVICE_ARCH_VOLTA }, Pass, "0 retired pages"},

		{"inforom valid", "gpu.inforom", llama8B, nil, Pass, "valid"},
		{"inforom corrupt", "gpu.inforom", llama8B, func(d *server.Device) {
			d.ValidateInforomFunc = func() nvml.Return { return nvml.ERROR_CORRUPTED_INFOROM }
		}, Fail, "corrupted"},
		{"inforom not supported", "gpu.inforom", llama8B, func(d *server.Device) {
			d.ValidateInforomFunc = func() nvml.Return { return ns }
		}, Skip, "not supported"},

		{"persistence on", "gpu.persistence", llama8B, nil, Pass, "enabled"},
		{"persistence off", "gpu.persistence", llama8B, func(d *server.Device) {
			d.GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return nvml.FEATURE_DISABLED, nvml.SUCCESS }
		}, Warn, "disabled"},
		{"persistence not supported", "gpu.persistence", llama8B, func(d *server.Device) {
			d.GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return 0, ns }
		}, Skip, "not supported"},

		{"cool", "gpu.temperature", llama8B, nil, Pass, "40 °C"},
		{"near slowdown", "gpu.temperature", llama8B, func(d *server.Device) {
			d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 87, nvml.SUCCESS }
		}, Warn, "87 °C"},
		{"slowing down", "gpu.temperature", llama8B, func(d *server.Device) {
			d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 93, nvml.SUCCESS }
		}, Fail, "93 °C"},
		{"temperature not supported", "gpu.temperature", llama8B, func(d *server.Device) {
			d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, ns }
		}, Skip, "not supported"},

		{"idle clocks", "gpu.throttle", llama8B, nil, Pass, "none (idle)"},
		{"thermal slowdown", "gpu.throttle", llama8B, func(d *server.Device) {
			d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) {
				return nvml.ClocksThrottleReasonHwThermalSlowdown | nvml.ClocksEventReasonSwPowerCap, nvml.SUCCESS
			}
		}, Warn, "hardware thermal slowdown"},
		{"old driver throttle reasons", "gpu.throttle", llama8B, func(d *server.Device) {
			d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_FUNCTION_NOT_FOUND }
			d.GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) { return nvml.ClocksThrottleReasonHwPowerBrakeSlowdown, nvml.SUCCESS }
		}, Warn, "power brake"},
		{"throttle not supported", "gpu.throttle", llama8B, func(d *server.Device) {
			d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0, ns }
			d.GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) { return 0, ns }
		}, Skip, "not supported"},

		{"mig off as wanted", "gpu.mig", llama8B, nil, Pass, "disabled"},
		{"mig on unexpectedly", "gpu.mig", llama8B, func(d *server.Device) { d.MigMode = nvml.DEVICE_MIG_ENABLE }, Fail, "enabled"},
		{"mig wanted but off", "gpu.mig", withMIG, nil, Fail, "disabled"},
		{"mig pending", "gpu.mig", llama8B, func(d *server.Device) {
			d.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS }
		}, Warn, "pending enabled"},
		{"mig not supported", "gpu.mig", llama8B, func(d *server.Device) {
			d.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, ns }
		}, Skip, "not supported"},
		{"mig wanted, not supported", "gpu.mig", withMIG, func(d *server.Device) {
			d.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, ns }
		}, Fail, "MIG not supported"},

		{"compute mode default", "gpu.compute-mode", llama8B, nil, Pass, "default"},
		{"compute prohibited", "gpu.compute-mode", llama8B, func(d *server.Device) {
			d.GetComputeModeFunc = func() (nvml.ComputeMode, nvml.Return) { return nvml.COMPUTEMODE_PROHIBITED, nvml.SUCCESS }
		}, Fail, "prohibited"},
		{"compute mode not supported", "gpu.compute-mode", llama8B, func(d *server.Device) {
			d.GetComputeModeFunc = func() (nvml.ComputeMode, nvml.Return) { return 0, ns }
		}, Skip, "not supported"},

		{"pcie full", "gpu.pcie", llama8B, nil, Pass, "gen5 x16"},
		{"pcie idle gen", "gpu.pcie", llama8B, func(d *server.Device) {
			d.GetCurrPcieLinkGenerationFunc = func() (int, nvml.Return) { return 1, nvml.SUCCESS }
		}, Pass, "idle GPU lowers"},
		{"pcie narrow", "gpu.pcie", llama8B, func(d *server.Device) {
			d.GetCurrPcieLinkWidthFunc = func() (int, nvml.Return) { return 8, nvml.SUCCESS }
		}, Warn, "gen5 x8"},
		{"pcie not supported", "gpu.pcie", llama8B, func(d *server.Device) {
			d.GetCurrPcieLinkGenerationFunc = func() (int, nvml.Return) { return 0, ns }
		}, Skip, "not supported"},

		{"nvlink not needed", "gpu.nvlink", llama8B, nil, Skip, "tensor parallelism 1"},
		{"nvlink all up", "gpu.nvlink", tp8, nil, Pass, "18 of 18 links active"},
		{"nvlink down", "gpu.nvlink", tp8, func(d *server.Device) {
			d.GetNvLinkStateFunc = func(link int) (nvml.EnableState, nvml.Return) {
				switch {
				case link == 3:
					return nvml.FEATURE_DISABLED, nvml.SUCCESS
				case link < 18:
					return nvml.FEATURE_ENABLED, nvml.SUCCESS
				}
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
		}, Warn, "17 of 18 links active"},
		{"nvlink not supported", "gpu.nvlink", tp8, func(d *server.Device) {
			d.GetNvLinkStateFunc = func(int) (nvml.EnableState, nvml.Return) { return 0, ns }
		}, Warn, "no NVLink"},
	}
	checks := map[string]func(nvml.Device, string, *gpuEnv) Result{}
	for _, dc := range deviceChecks {
		checks[dc.id] = dc.run
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := h100(t)
			if tt.breakIt != nil {
				tt.breakIt(d)
			}
			est, err := EstimateMemory(tt.req.Model)
			if err != nil {
				t.Fatal(err)
			}
			run, ok := checks[tt.check]
			if !ok {
				t.Fatalf("no check %s", tt.check)
			}
			got := run(d, "gpu0", &gpuEnv{req: tt.req, estimate: &est})
			if got.ID != tt.check || got.Subject != "gpu0" {
				t.Errorf("id/subject = %s/%s, want %s/gpu0", got.ID, got.Subject, tt.check)
			}
			if got.Status != tt.want || !strings.Contains(got.Measured, tt.measured) {
				t.Errorf("got %s %q, want %s containing %q", got.Status, got.Measured, tt.want, tt.measured)
			}
			if (got.Status == Warn || got.Status == Fail) && got.Remedy == "" {
				t.Errorf("%s without a remedy", got.Status)
			}
		})
	}
}

// TestDeviceChecksCovered fails when a check is added without a pass, a warn or fail, and a not-supported case above.
func TestDeviceChecksCovered(t *testing.T) {
	t.Parallel()
	if len(deviceChecks) != 14 {
		t.Errorf("%d device checks; give the new one cases in TestDeviceChecks and update this count", len(deviceChecks))
	}
}
