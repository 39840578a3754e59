//go:build linux && cgo

package preflight

import (
	"fmt"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// GPUCollector exports the GPU gauges the seed's dashboard reads, from NVML at scrape time.
type GPUCollector struct {
	lib                     NVML
	util, memUsed, memTotal *prometheus.Desc
}

var _ prometheus.Collector = (*GPUCollector)(nil)

// NewGPUCollector loads NVML (nil: the system library); Close releases it.
func NewGPUCollector(lib NVML) (*GPUCollector, error) {
	lib = orSystemNVML(lib)
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("loading NVML for GPU metrics: %s", initProblem(ret))
	}
	labels := []string{"gpu_id"}
	return &GPUCollector{
		lib:      lib,
		util:     prometheus.NewDesc("ai_gpu_utilization_percent", "GPU busy time over the last sample period, in percent.", labels, nil),
		memUsed:  prometheus.NewDesc("ai_gpu_memory_used_bytes", "GPU memory in use, in bytes.", labels, nil),
		memTotal: prometheus.NewDesc("ai_gpu_memory_total_bytes", "GPU memory installed, in bytes.", labels, nil),
	}, nil
}

// Close releases NVML.
func (c *GPUCollector) Close() error {
	if ret := c.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("releasing NVML: %s", ret.Error())
	}
	return nil
}

// Describe sends the three metric descriptions.
func (c *GPUCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.util
	ch <- c.memUsed
	ch <- c.memTotal
}

// Collect reads each GPU; a value the GPU cannot report is left out rather than failing the scrape.
func (c *GPUCollector) Collect(ch chan<- prometheus.Metric) {
	count, ret := c.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return
	}
	for i := range count {
		d, ret := c.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		id := strconv.Itoa(i)
		if u, ret := d.GetUtilizationRates(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, float64(u.Gpu), id)
		}
		if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(c.memUsed, prometheus.GaugeValue, float64(m.Used), id)
			ch <- prometheus.MustNewConstMetric(c.memTotal, prometheus.GaugeValue, float64(m.Total), id)
		}
	}
}
