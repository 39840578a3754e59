//go:build linux && cgo

package preflight

import (
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestGPUCollector(t *testing.T) {
	t.Parallel()
	s := healthyMachine(dgxh100.NewWithGPUs(dgxh100.NewDevice(0).Config, dgxh100.NewDevice(1).Config))
	healthy(s.Devices[0].(*server.Device)).MemoryInfo = nvml.Memory{Total: 80 << 30, Used: 20 << 30, Free: 60 << 30}
	second := healthy(s.Devices[1].(*server.Device))
	second.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
	second.MemoryInfo = nvml.Memory{Total: 80 << 30, Used: 0, Free: 80 << 30}

	c, err := NewGPUCollector(s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := `
# HELP ai_gpu_memory_total_bytes GPU memory installed, in bytes.
# TYPE ai_gpu_memory_total_bytes gauge
ai_gpu_memory_total_bytes{gpu_id="0"} 8.589934592e+10
ai_gpu_memory_total_bytes{gpu_id="1"} 8.589934592e+10
# HELP ai_gpu_memory_used_bytes GPU memory in use, in bytes.
# TYPE ai_gpu_memory_used_bytes gauge
ai_gpu_memory_used_bytes{gpu_id="0"} 2.147483648e+10
ai_gpu_memory_used_bytes{gpu_id="1"} 0
# HELP ai_gpu_utilization_percent GPU busy time over the last sample period, in percent.
# TYPE ai_gpu_utilization_percent gauge
ai_gpu_utilization_percent{gpu_id="0"} 37
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestGPUCollectorInitFailure(t *testing.T) {
	t.Parallel()
	_, err := NewGPUCollector(&mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }})
	if err == nil || !strings.Contains(err.Error(), "kernel driver not loaded") {
		t.Errorf("got %v", err)
	}
}
