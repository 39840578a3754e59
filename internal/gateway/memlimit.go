package gateway

import (
	"math"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// MemoryLimit sets GOMEMLIMIT to ratio of the limit provider reports
// (memlimit.FromCgroup: the container's cgroup v1 or v2 memory limit), so
// that the collector works harder as the heap nears it instead of the
// kernel's OOM killer ending the process at the peak. GOMEMLIMIT in the
// environment, or AUTOMEMLIMIT=off, wins: then nothing changes.
//
// It returns the limit in force afterwards (0: none) and a function that
// puts back the limit from before.
//
// Why automemlimit: it reads the limit through /proc/self/mountinfo and
// /proc/self/cgroup for both cgroup versions and nested hierarchies, which
// is most of the work, and Prometheus and Thanos use it for the same purpose.
func MemoryLimit(provider memlimit.Provider, ratio float64) (int64, func(), error) {
	prev := debug.SetMemoryLimit(-1)
	limit, err := memlimit.Set(memlimit.WithProvider(provider), memlimit.WithRatio(ratio))
	if limit == math.MaxInt64 {
		limit = 0
	}
	return limit, func() { debug.SetMemoryLimit(prev) }, err
}
