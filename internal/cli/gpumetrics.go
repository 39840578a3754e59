package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/preflight"
)

type gpuMetricsServeOptions struct {
	f      *Factory
	Listen string
	// NVML is the library to read; nil loads the system's. Tests set a mock.
	NVML preflight.NVML
	// ready, when set, receives the bound address once the server listens.
	ready func(addr string)
}

func newCmdGPUMetrics(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gpu-metrics",
		Short: "Export this host's GPU utilisation and memory for Prometheus",
	}
	cmd.AddCommand(newCmdGPUMetricsServe(f, nil))
	return cmd
}

func newCmdGPUMetricsServe(f *Factory, runF func(context.Context, *gpuMetricsServeOptions) error) *cobra.Command {
	opts := &gpuMetricsServeOptions{f: f}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve /metrics with ai_gpu_utilization_percent and GPU memory used and total, per gpu_id",
		Long: `Serve /metrics with the GPU gauges the rendered Grafana dashboard reads:
ai_gpu_utilization_percent, ai_gpu_memory_used_bytes and ai_gpu_memory_total_bytes,
labelled gpu_id and read from NVML at each scrape. It needs the NVIDIA driver;
on a host without one it exits 1 and says why.`,
		Example: `  aideploy gpu-metrics serve --listen 0.0.0.0:9400`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runGPUMetricsServe(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Listen, "listen", "127.0.0.1:9400", "address to serve /metrics on")
	return cmd
}

func runGPUMetricsServe(ctx context.Context, opts *gpuMetricsServeOptions) error {
	if _, _, err := net.SplitHostPort(opts.Listen); err != nil {
		return UsageErrorf("--listen %q is not HOST:PORT: %v", opts.Listen, err)
	}
	collector, err := preflight.NewGPUCollector(opts.NVML)
	if err != nil {
		return fmt.Errorf("%w; GPU metrics need the NVIDIA driver on this host", err)
	}
	defer collector.Close()
	reg := prometheus.NewRegistry()
	if err := reg.Register(collector); err != nil {
		return fmt.Errorf("registering the GPU collector: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	l, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w; pick a free address with --listen", opts.Listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(opts.f.IO.ErrOut, "Serving GPU metrics on http://%s/metrics\n", l.Addr())
	if opts.ready != nil {
		opts.ready(l.Addr().String())
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving GPU metrics: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stopping the GPU metrics server: %w", err)
	}
	return nil
}
