//go:build !linux || !cgo

package preflight

import (
	"context"
	"errors"
)

// NVML stands in for go-nvml's library where this build cannot load it (no cgo,
// or not linux); setting it has no effect.
type NVML interface{}

// NVMLAvailable is true when this build can load NVML (linux with cgo).
const NVMLAvailable = false

const nvmlUnavailable = "NVML unavailable: this build has no cgo (CGO_ENABLED=0) or is not for linux"

var errNVMLUnavailable = errors.New(nvmlUnavailable)

func hostDriverVersion(NVML) (string, error) { return "", errNVMLUnavailable }

func (r *runner) gpuGroup(context.Context) []Result {
	const remedy = "use a linux build of aideploy made with cgo to check GPUs"
	if r.opts.Require.GPU {
		return []Result{fail("nvml.init", "host", "no GPU check can run: "+nvmlUnavailable, "", remedy)}
	}
	return []Result{skip("nvml.init", "host", nvmlUnavailable+": GPU checks skipped")}
}
