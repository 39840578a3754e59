//go:build !linux || !cgo

package preflight

import "github.com/prometheus/client_golang/prometheus"

// GPUCollector exports GPU gauges; this build cannot load NVML, so it is never created.
type GPUCollector struct{}

var _ prometheus.Collector = (*GPUCollector)(nil)

// NewGPUCollector reports that this build cannot read GPUs.
func NewGPUCollector(NVML) (*GPUCollector, error) { return nil, errNVMLUnavailable }

// Close does nothing.
func (*GPUCollector) Close() error { return nil }

// Describe sends nothing.
func (*GPUCollector) Describe(chan<- *prometheus.Desc) {}

// Collect sends nothing.
func (*GPUCollector) Collect(chan<- prometheus.Metric) {}
