//go:build linux && cgo

package preflight

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// benignXIDs are the XIDs the Kubernetes device plugin does not treat as a GPU failure:
// they come from application faults (13, 31, 43, 45, 68) or a user-requested reset (109).
var benignXIDs = []uint64{13, 31, 43, 45, 68, 109}

// xidMeaning names the critical XIDs operators meet most.
var xidMeaning = map[uint64]string{
	48: "double-bit ECC error",
	63: "row remap / page retirement event",
	64: "row remap / page retirement failure",
	74: "NVLink error",
	79: "GPU fell off the bus",
	92: "high single-bit ECC error rate",
	94: "contained ECC error",
	95: "uncontained ECC error",
}

// checkXID listens for critical XID events on all GPUs for window.
func checkXID(ctx context.Context, lib NVML, devices []nvml.Device, window time.Duration) Result {
	const id, sub = "gpu.xid", "host"
	set, ret := lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		return readFailure(id, sub, "XID events", ret)
	}
	defer set.Free()
	registered := 0
	for _, d := range devices {
		if ret := d.RegisterEvents(nvml.EventTypeXidCriticalError, set); ret == nvml.SUCCESS {
			registered++
		} else if !notSupported(ret) {
			return readFailure(id, sub, "XID event registration", ret)
		}
	}
	if registered == 0 {
		return skip(id, sub, "XID events not supported on these GPUs")
	}
	threshold := "no critical XID"
	var seen []string
	deadline := time.Now().Add(window)
	for ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		data, ret := set.Wait(uint32(min(left, 100*time.Millisecond).Milliseconds()) + 1)
		if ret == nvml.ERROR_TIMEOUT {
			continue
		}
		if ret != nvml.SUCCESS {
			return readFailure(id, sub, "XID events", ret)
		}
		if data.EventType != nvml.EventTypeXidCriticalError || slices.Contains(benignXIDs, data.EventData) {
			continue
		}
		seen = append(seen, describeXID(data, devices))
	}
	measured := fmt.Sprintf("none in %s on %d GPU(s)", window, registered)
	if len(seen) > 0 {
		return fail(id, sub, strings.Join(seen, "; "), threshold,
			"drain the GPU, read dmesg and nvidia-smi -q, then reset it or take it out of service")
	}
	return pass(id, sub, measured, threshold)
}

func describeXID(data nvml.EventData, devices []nvml.Device) string {
	where := "a GPU"
	for i, d := range devices {
		if d == data.Device {
			where = gpuSubject(i)
		}
	}
	s := fmt.Sprintf("XID %d on %s", data.EventData, where)
	if m := xidMeaning[data.EventData]; m != "" {
		s += " (" + m + ")"
	}
	return s
}
