// Package gctune makes the gateway collect garbage less often while its heap
// is small, trading memory it is allowed to use for CPU and tail latency.
//
// With the runtime's default GOGC=100 a collection starts whenever the heap
// has doubled since the last one. A gateway's live heap is small (its L1
// cache and the requests in flight) and its garbage rate high (every
// request), so it collects many times a second, and each collection's mark
// phase takes CPU from requests in flight: on a busy machine that is a
// visible share of the slowest requests. A Tuner raises GOGC after each
// collection so that the next one starts near a heap target instead (GOGC at
// most 500).
//
// Past the target, the garbage allowed between collections follows what a
// collection has to mark: the scannable part of the live heap, at least
// 64 MiB. With a pointerful heap that is Go's default. A full L1 cache is a
// few pointer-free buffers, marked in no time; the default would let as much
// garbage pile up as the cache holds, doubling the gateway's memory, and
// fault fresh pages in for it while the cache fills.
//
// An operator's own GOGC or GOMEMLIMIT in the environment wins: then Start
// changes nothing.
//
// MemoryLimit sets GOMEMLIMIT to 90% of the container's memory limit (through
// automemlimit), so that near the limit the collector works harder instead
// of the kernel's OOM killer ending the process; GOMEMLIMIT or
// AUTOMEMLIMIT=off in the environment turn it off.
//
// Why not a library: bytedance/gopkg's gctuner does the same with
// runtime.ReadMemStats, which stops the world on every collection, as
// package-level state that reads GOGC at init; runtime/metrics gives the live
// heap without a stop, and a Tuner is a value with its own Stop.
package gctune
