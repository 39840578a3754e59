package gateway

import (
	"math"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/aideploy/aideploy/internal/gateway/cache"
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

// The collector's headroom: how much garbage the gateway may hold between
// two collections, and what its heap holds besides the L1.
const (
	gcHeadroom = 32 << 20
	gcBaseHeap = 16 << 20
)

// GCPercent sets GOGC so that a collection runs after about gcHeadroom of
// new allocation, whatever the L1's size, and returns the value in force and
// a function that puts back the one from before. The L1's ring buffers are
// allocated whole at start and count as live heap: with Go's default of 100
// the next collection would wait for as much garbage as the L1 is large (256
// MiB by default), and the pages that garbage touches stay resident — the
// peak replay grew the gateway's RSS by 94 MiB so. The buffers hold no
// pointers, so marking them costs nothing and collecting more often is
// cheap. GOGC in the environment wins.
func GCPercent(c cache.Config, getenv func(string) string) (int, func()) {
	if getenv("GOGC") != "" {
		return -2, func() {}
	}
	live := int64(gcBaseHeap)
	if c.Enabled {
		live += int64(c.L1MaxBytes)
	}
	pct := int(min(100, max(10, 100*gcHeadroom/live)))
	prev := debug.SetGCPercent(pct)
	return pct, func() { debug.SetGCPercent(prev) }
}
