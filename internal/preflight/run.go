package preflight

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
)

// Default limits of a run.
const (
	DefaultCheckTimeout = 5 * time.Second
	DefaultXIDWindow    = 500 * time.Millisecond
	checkConcurrency    = 8
)

// Groups selects check groups.
type Groups struct {
	// GPU is the NVML checks of this host's GPUs.
	GPU bool
	// Docker is the Docker engine checks.
	Docker bool
	// Kubernetes is the cluster checks.
	Kubernetes bool
}

// Options say what a run checks and with which clients.
type Options struct {
	// Req is what the deployment needs.
	Req Requirements
	// Run selects the groups to run.
	Run Groups
	// Require makes an absent subject (no NVML, no engine, no cluster) fail instead of skip.
	Require Groups
	// ManifestsDir, when set, is linted for the known pitfalls.
	ManifestsDir string
	// AvailableGPUs is how many GPUs the lint may assume (0: unknown, those rules skip).
	AvailableGPUs int
	// CheckTimeout bounds each check (DefaultCheckTimeout when zero).
	CheckTimeout time.Duration
	// XIDWindow is how long to listen for XID events (DefaultXIDWindow when zero).
	XIDWindow time.Duration
	// NVML is the NVML library; nil loads the system's libnvidia-ml.
	NVML NVML
	// Docker returns the engine client; nil uses the environment (DOCKER_HOST) like the docker CLI.
	Docker func() (DockerAPI, error)
	// Kubernetes returns the cluster client; nil means no cluster is configured.
	Kubernetes func() (kubernetes.Interface, error)
	// Service is the service of aideploy.yaml, and PendingPods lists its pods
	// the scheduler cannot place, with the reason; nil skips that check.
	Service     string
	PendingPods func(ctx context.Context) ([]PendingPod, error)
}

// runner carries what the groups share during one run.
type runner struct {
	opts Options
	// estimate is the model memory estimate; nil when no model is described.
	estimate    *MemoryEstimate
	estimateErr error
	// hostDriver reads the host's NVIDIA driver version once, for the Docker image check.
	hostDriver func() (string, error)
}

// Run runs the selected check groups concurrently, each check under its own timeout,
// and returns the results in a stable order. It returns an error only when ctx ends.
func Run(ctx context.Context, opts Options) (Report, error) {
	start := time.Now()
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = DefaultCheckTimeout
	}
	if opts.XIDWindow <= 0 {
		opts.XIDWindow = DefaultXIDWindow
	}
	r := &runner{opts: opts}
	if opts.Req.Model.Params > 0 {
		est, err := EstimateMemory(opts.Req.Model)
		if err != nil {
			r.estimateErr = fmt.Errorf("estimating model memory: %w", err)
		} else {
			r.estimate = &est
		}
	}
	r.hostDriver = sync.OnceValues(func() (string, error) { return hostDriverVersion(opts.NVML) })

	type group struct {
		on  bool
		run func(context.Context) []Result
	}
	groups := []group{
		{opts.Run.GPU, r.gpuGroup},
		{opts.Run.Docker, r.dockerGroup},
		{opts.Run.Kubernetes, r.kubernetesGroup},
		{opts.ManifestsDir != "", r.lintGroup},
	}
	out := make([][]Result, len(groups))
	var g errgroup.Group
	for i, gr := range groups {
		if !gr.on {
			continue
		}
		g.Go(func() error {
			out[i] = gr.run(ctx)
			return nil
		})
	}
	_ = g.Wait()
	var results []Result
	for _, rs := range out {
		results = append(results, rs...)
	}
	if res, ok := gpuCoverage(opts.Req, results); !ok && (opts.Run.GPU || opts.Run.Docker || opts.Run.Kubernetes) {
		results = append(results, res)
	}
	rep := newReport(results, time.Since(start))
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("preflight interrupted: %w", err)
	}
	return rep, nil
}

func (r *runner) lintGroup(context.Context) []Result {
	return LintDir(r.opts.ManifestsDir, LintOptions{Req: r.opts.Req, AvailableGPUs: r.opts.AvailableGPUs})
}

// check is one unit of work; it may report several results (one per link, per node).
type check struct {
	id, subject string
	timeout     time.Duration // zero: the run's CheckTimeout
	run         func(ctx context.Context) []Result
}

// runChecks runs checks concurrently, each under its timeout, and keeps their order.
func runChecks(ctx context.Context, timeout time.Duration, checks []check) []Result {
	out := make([][]Result, len(checks))
	var g errgroup.Group
	g.SetLimit(checkConcurrency)
	for i, c := range checks {
		g.Go(func() error {
			out[i] = runOne(ctx, cmpOrDuration(c.timeout, timeout), c)
			return nil
		})
	}
	_ = g.Wait()
	var results []Result
	for _, rs := range out {
		results = append(results, rs...)
	}
	return results
}

// runOne runs a check and gives up on it at the timeout. NVML calls cannot be
// cancelled, so a hung call leaves its goroutine behind until the process exits.
func runOne(ctx context.Context, timeout time.Duration, c check) []Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan []Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- []Result{fail(c.id, c.subject, fmt.Sprintf("check crashed: %v", p), "", "report this as a bug, with the output of nvidia-smi -q")}
			}
		}()
		done <- c.run(ctx)
	}()
	select {
	case rs := <-done:
		return rs
	case <-ctx.Done():
		if ctx.Err() == context.DeadlineExceeded {
			return []Result{fail(c.id, c.subject, fmt.Sprintf("no answer within %s", timeout), "", "the subject hangs: check it by hand (nvidia-smi, docker info, kubectl get nodes)")}
		}
		return []Result{skip(c.id, c.subject, "interrupted")}
	}
}

func cmpOrDuration(v, fallback time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return fallback
}

// gpuCoverage warns when aideploy.yaml asks for GPUs and no check of this
// run looked at one: a green report would otherwise say nothing about the
// part most likely to fail. It is a warning, a failure under --strict.
func gpuCoverage(req Requirements, results []Result) (Result, bool) {
	if req.GPUsPerReplica == 0 {
		return Result{}, true
	}
	for _, r := range results {
		if r.Status == Skip || r.ID == "nvml.init" {
			continue
		}
		if strings.HasPrefix(r.ID, "gpu.") || r.ID == "k8s.gpu-capacity" || (r.ID == "docker.gpu-runtime" && r.Status == Pass) {
			return Result{}, true
		}
	}
	return warn("gpu.coverage", "config",
		fmt.Sprintf("aideploy.yaml asks for %d GPU(s) per replica; no check here could see a GPU", req.GPUsPerReplica), "",
		"run preflight on the GPU host (--gpu --require-gpu) or against the cluster (--k8s)"), false
}
