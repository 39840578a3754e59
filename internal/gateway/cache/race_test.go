//go:build race

package cache

// raceBuild: the race detector's instrumentation allocates on its own, so
// tests that count allocations have nothing to measure.
const raceBuild = true
