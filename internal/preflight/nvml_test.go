//go:build linux && cgo

package preflight

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

func gpuOnly(lib NVML, req Requirements) Options {
	return Options{Req: req, Run: Groups{GPU: true}, NVML: lib, XIDWindow: 20 * time.Millisecond}
}

func find(t *testing.T, rep Report, id, subject string) Result {
	t.Helper()
	for _, r := range rep.Results {
		if r.ID == id && r.Subject == subject {
			return r
		}
	}
	t.Fatalf("no result %s %s in %+v", id, subject, rep.Results)
	return Result{}
}

func TestNVMLInitFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ret      nvml.Return
		required bool
		want     Status
		measured string
	}{
		{nvml.ERROR_LIBRARY_NOT_FOUND, false, Skip, "NVML library not found"},
		{nvml.ERROR_LIBRARY_NOT_FOUND, true, Fail, "NVML library not found"},
		{nvml.ERROR_DRIVER_NOT_LOADED, false, Warn, "kernel driver not loaded"},
		{nvml.ERROR_DRIVER_NOT_LOADED, true, Fail, "kernel driver not loaded"},
		{nvml.ERROR_NO_PERMISSION, true, Fail, "no permission"},
		{nvml.ERROR_LIB_RM_VERSION_MISMATCH, true, Fail, "versions differ"},
		{nvml.ERROR_UNKNOWN, true, Fail, "NVML init: ERROR_UNKNOWN"},
	}
	remedies := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.ret.String(), func(t *testing.T) {
			t.Parallel()
			lib := &mock.Interface{InitFunc: func() nvml.Return { return tt.ret }}
			opts := gpuOnly(lib, Requirements{})
			opts.Require.GPU = tt.required
			rep, err := Run(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Results) != 1 {
				t.Fatalf("want one line, got %+v", rep.Results)
			}
			got := rep.Results[0]
			if got.ID != "nvml.init" || got.Status != tt.want || !strings.Contains(got.Measured, tt.measured) || got.Remedy == "" {
				t.Errorf("got %+v, want %s %q with a remedy", got, tt.want, tt.measured)
			}
			if rep.Failed(false) != (tt.want == Fail) {
				t.Errorf("Failed = %v for %s", rep.Failed(false), tt.want)
			}
		})
		r := initFailure(tt.ret, true)
		remedies[r.Remedy] = true
	}
	if len(remedies) != 5 {
		t.Errorf("each init failure needs its own remedy, got %d distinct", len(remedies))
	}
}

func TestDriverAndCUDAChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, driver string
		cudaInt      int
		cuda         string
		wantDriver   Status
		wantCUDA     Status
	}{
		{"no need stated", "550.54.15", 12040, "", Pass, Pass},
		{"new enough", "550.54.15", 12040, "12.1", Pass, Pass},
		{"minor compat", "535.54.03", 12020, "12.4", Warn, Warn},
		{"too old", "470.57.02", 11040, "12.1", Fail, Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := dgxh100.New()
			s.DriverVersion, s.CudaDriverVersion = tt.driver, tt.cudaInt
			if got := checkDriver(s, tt.cuda); got.Status != tt.wantDriver || !strings.Contains(got.Measured, tt.driver) {
				t.Errorf("driver: %+v, want %s", got, tt.wantDriver)
			}
			if got := checkCUDADriver(s, tt.cuda); got.Status != tt.wantCUDA {
				t.Errorf("cuda: %+v, want %s", got, tt.wantCUDA)
			}
		})
	}
	t.Run("not supported", func(t *testing.T) {
		t.Parallel()
		lib := &mock.Interface{
			SystemGetDriverVersionFunc:     func() (string, nvml.Return) { return "", nvml.ERROR_NOT_SUPPORTED },
			SystemGetCudaDriverVersionFunc: func() (int, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED },
		}
		if got := checkDriver(lib, "12.1"); got.Status != Skip {
			t.Errorf("driver: %+v", got)
		}
		if got := checkCUDADriver(lib, "12.1"); got.Status != Skip {
			t.Errorf("cuda: %+v", got)
		}
	})
}

func TestGPUCount(t *testing.T) {
	t.Parallel()
	eight := make([]string, 8)
	for i := range eight {
		eight[i] = "NVIDIA H100 80GB HBM3"
	}
	tests := []struct {
		name  string
		names []string
		req   Requirements
		want  Status
	}{
		{"enough", eight, Requirements{GPUsPerReplica: 2, Replicas: 2, BlueGreen: true}, Pass},
		{"prewarm outgrows host", eight, Requirements{GPUsPerReplica: 2, Replicas: 2, PrewarmReplicas: 6}, Warn},
		{"too big for host", eight[:2], Requirements{GPUsPerReplica: 4, Replicas: 1}, Fail},
		{"wrong product", eight, Requirements{GPUsPerReplica: 1, Replicas: 1, GPUProduct: "B200"}, Fail},
		{"right product", eight, Requirements{GPUsPerReplica: 1, Replicas: 1, GPUProduct: "h100"}, Pass},
		{"cpu only service", nil, Requirements{}, Skip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := checkCount(tt.names, tt.req, false); got.Status != tt.want {
				t.Errorf("got %+v, want %s", got, tt.want)
			}
		})
	}
}

// scriptedEvents returns the events in order, then times out.
func scriptedEvents(events ...nvml.EventData) *mock.EventSet {
	var next atomic.Int32
	return &mock.EventSet{
		WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
			i := int(next.Add(1)) - 1
			if i < len(events) {
				return events[i], nvml.SUCCESS
			}
			time.Sleep(time.Millisecond)
			return nvml.EventData{}, nvml.ERROR_TIMEOUT
		},
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
	}
}

func TestXID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		events   []nvml.EventData
		register nvml.Return
		want     Status
		measured string
	}{
		{"quiet", nil, nvml.SUCCESS, Pass, "none in"},
		{"fell off the bus", []nvml.EventData{{EventType: nvml.EventTypeXidCriticalError, EventData: 79}}, nvml.SUCCESS, Fail, "XID 79 on gpu1 (GPU fell off the bus)"},
		{"application fault only", []nvml.EventData{{EventType: nvml.EventTypeXidCriticalError, EventData: 13}}, nvml.SUCCESS, Pass, "none in"},
		{"not supported", nil, nvml.ERROR_NOT_SUPPORTED, Skip, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := healthyMachine(dgxh100.New())
			devices := s.Devices[:2]
			for i := range tt.events {
				tt.events[i].Device = devices[1]
			}
			for _, d := range devices {
				d.(*server.Device).RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return tt.register }
			}
			s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return scriptedEvents(tt.events...), nvml.SUCCESS }
			got := checkXID(context.Background(), s, devices, 30*time.Millisecond)
			if got.Status != tt.want || !strings.Contains(got.Measured, tt.measured) {
				t.Errorf("got %+v, want %s %q", got, tt.want, tt.measured)
			}
		})
	}
}

// TestRunFullMachines runs the whole GPU group over NVIDIA's full-machine mocks.
func TestRunFullMachines(t *testing.T) {
	t.Parallel()
	llama70B := Requirements{
		CUDAVersion: "12.1", GPUsPerReplica: 4, Replicas: 1, BlueGreen: true,
		Model: ModelSpec{Params: 70e9, DType: "bf16", ContextLength: 8192, Concurrency: 16, TensorParallel: 4},
	}
	tests := []struct {
		name    string
		machine *server.Server
		gpus    int
		fails   []string
	}{
		{"dgx h100", dgxh100.New(), 8, nil},
		{"dgx h200", dgxh200.New(), 8, nil},
		// A100 40GB: bf16 fits, but 70B over 4 GPUs needs more than 40 GB each.
		{"dgx a100", dgxa100.New(), 8, []string{"gpu.memory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			healthyMachine(tt.machine)
			rep, err := Run(context.Background(), gpuOnly(tt.machine, llama70B))
			if err != nil {
				t.Fatal(err)
			}
			// init, driver, cuda, count, 14 per GPU, xid
			if want := 4 + 14*tt.gpus + 1; len(rep.Results) != want {
				t.Fatalf("%d results, want %d", len(rep.Results), want)
			}
			var failed []string
			for _, r := range rep.Results {
				if r.Status == Fail && !contains(failed, r.ID) {
					failed = append(failed, r.ID)
				}
				if r.Status == Warn {
					t.Errorf("unexpected warning %+v", r)
				}
			}
			if strings.Join(failed, ",") != strings.Join(tt.fails, ",") {
				t.Errorf("failed checks %v, want %v", failed, tt.fails)
			}
			if got := find(t, rep, "gpu.count", "host"); got.Status != Pass {
				t.Errorf("count: %+v", got)
			}
			if rep.Results[4].Subject != "gpu0" || rep.Results[4+14].Subject != "gpu1" {
				t.Errorf("results not ordered by GPU: %+v", rep.Results[4:20])
			}
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestRunCheckTimeout(t *testing.T) {
	t.Parallel()
	s := healthyMachine(dgxh100.New())
	stuck := s.Devices[0].(*server.Device)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stuck.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) {
		<-release
		return 0, nvml.SUCCESS
	}
	opts := gpuOnly(s, Requirements{})
	opts.CheckTimeout = 50 * time.Millisecond
	start := time.Now()
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := find(t, rep, "gpu.temperature", "gpu0"); got.Status != Fail || !strings.Contains(got.Measured, "no answer within 50ms") {
		t.Errorf("stuck check: %+v", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a stuck check held the run for %s", d)
	}
}

func TestHostDriverVersion(t *testing.T) {
	t.Parallel()
	if v, err := hostDriverVersion(dgxh100.New()); err != nil || v != "550.54.15" {
		t.Errorf("got %q, %v", v, err)
	}
	_, err := hostDriverVersion(&mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }})
	if err == nil || !strings.Contains(err.Error(), "NVML library not found") {
		t.Errorf("got %v", err)
	}
}
