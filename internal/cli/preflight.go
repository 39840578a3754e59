package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/preflight"
	"github.com/aideploy/aideploy/internal/render"
	"github.com/aideploy/aideploy/internal/rollout"
)

type preflightOptions struct {
	f *Factory
	// explicitConfig is true when --config was given: a missing file is then an error.
	explicitConfig bool

	GPU, Docker, Kubernetes bool
	Manifests               string
	RequireGPU              bool
	Strict                  bool

	// service is the name in aideploy.yaml, once read: preflight names why its pods are Pending.
	service string
}

func newCmdPreflight(f *Factory, runF func(context.Context, *preflightOptions) error) *cobra.Command {
	opts := &preflightOptions{f: f}
	cmd := &cobra.Command{
		Use:   "preflight",
		Short: "Check GPUs, Docker, the cluster and manifests before a deploy or a peak",
		Long: `Check that the model of aideploy.yaml will run here: the GPUs through NVML
(driver, CUDA, compute capability, memory against the model estimate, ECC, XID
events...), the Docker engine (GPU runtime, the image's CUDA, disk, ports), the
Kubernetes cluster (free GPUs for every replica, both colours and the prewarm
target; the metrics APIs the HPA reads) and, with --manifests, rendered or
hand-written manifests for known pitfalls.

Without --gpu, --docker or --k8s every group runs and an absent subject (no
GPU, no engine, no cluster) is skipped; a group named by a flag must be present.
Without aideploy.yaml the checks run with no model requirements.

Exit 0 when nothing fails (warnings allowed unless --strict), 1 when a check
fails, 2 on bad flags or an invalid aideploy.yaml.`,
		Example: `  aideploy preflight
  aideploy preflight --gpu --require-gpu --strict
  aideploy render all --output-dir out && aideploy preflight --manifests out
  aideploy preflight --output json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.explicitConfig = cmd.Flags().Changed("config")
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runPreflight(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.GPU, "gpu", false, "check this host's GPUs through NVML (required to be present)")
	fl.BoolVar(&opts.Docker, "docker", false, "check the Docker engine (required to be reachable)")
	fl.BoolVar(&opts.Kubernetes, "k8s", false, "check the Kubernetes cluster of the kubeconfig (required to be reachable)")
	fl.StringVar(&opts.Manifests, "manifests", "", "lint the Kubernetes and compose files under `DIR` for known pitfalls")
	fl.BoolVar(&opts.RequireGPU, "require-gpu", false, "fail, rather than skip, when this host has no usable GPU")
	fl.BoolVar(&opts.Strict, "strict", false, "exit 1 on warnings too")
	return cmd
}

// groups turns the flags into what runs and what must be present.
func (opts *preflightOptions) groups() (run, require preflight.Groups) {
	named := preflight.Groups{GPU: opts.GPU, Docker: opts.Docker, Kubernetes: opts.Kubernetes}
	run = named
	if named == (preflight.Groups{}) {
		run = preflight.Groups{GPU: true, Docker: true, Kubernetes: true}
	}
	require = named
	if opts.RequireGPU {
		run.GPU, require.GPU = true, true
	}
	return run, require
}

func runPreflight(ctx context.Context, opts *preflightOptions) error {
	f := opts.f
	req, err := opts.requirements()
	if err != nil {
		return err
	}
	if opts.Manifests != "" {
		if st, err := os.Stat(opts.Manifests); err != nil || !st.IsDir() {
			return UsageErrorf("--manifests %s is not a directory; pass the folder of rendered or hand-written manifests", opts.Manifests)
		}
	}
	run, require := opts.groups()
	if req.ModelClaim != nil && run.Kubernetes {
		if kc, err := f.Kube(); err == nil {
			req.ModelClaim.Namespace = kc.Namespace // a claim applied and bound passes
		}
	}
	rep, err := preflight.Run(ctx, preflight.Options{
		Req:          req,
		Run:          run,
		Require:      require,
		ManifestsDir: opts.Manifests,
		Kubernetes:   opts.kubeClient,
		Service:      opts.service,
		PendingPods:  opts.pendingPods(),
	})
	if err != nil {
		return err
	}
	if f.Output == "json" {
		err = preflight.WriteJSON(f.IO.Out, rep)
	} else {
		width := preflight.TableWidth
		if f.Wide {
			width = 0
		}
		err = printOutput(f.IO.Out, f.Output, rep, func(w io.Writer) error {
			return preflight.WriteTable(w, rep, f.IO.ColorEnabled(), width)
		})
	}
	if err != nil {
		return err
	}
	if rep.Failed(opts.Strict) {
		return &SilentError{Code: ExitFailed}
	}
	return nil
}

// kubeClient connects as --kubeconfig, --context and KUBECONFIG say; without any
// kubeconfig the cluster checks skip with one short line.
func (opts *preflightOptions) kubeClient() (kubernetes.Interface, error) {
	c, err := opts.f.Kube()
	var none *noKubeconfigError
	if errors.As(err, &none) {
		return nil, errors.New("no cluster configured (no --kubeconfig, KUBECONFIG or ~/.kube/config)")
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if clientcmd.IsEmptyConfig(e) {
			return nil, errors.New("no cluster configured (no --kubeconfig, KUBECONFIG or ~/.kube/config)")
		}
	}
	if err != nil {
		return nil, err
	}
	return c.Clientset, nil
}

// requirements reads aideploy.yaml; without one (and no --config) the checks run
// with no model requirements, which the user is told in one line.
func (opts *preflightOptions) requirements() (preflight.Requirements, error) {
	f := opts.f
	if !opts.explicitConfig {
		if _, err := os.Stat(f.ConfigPath); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(f.IO.ErrOut, "No %s here: checking without model requirements (aideploy init describes the model).\n", f.ConfigPath)
			return preflight.Requirements{}, nil
		}
	}
	cfg, err := f.Config()
	if err != nil {
		return preflight.Requirements{}, err
	}
	opts.service = cfg.Name
	return requirementsFromConfig(cfg)
}

// pendingPods lists the service's pods that the scheduler cannot place, with
// the reason aideploy status shows (internal/k8s); nil without a service.
func (opts *preflightOptions) pendingPods() func(context.Context) ([]preflight.PendingPod, error) {
	if opts.service == "" {
		return nil
	}
	return func(ctx context.Context) ([]preflight.PendingPod, error) {
		kc, err := opts.f.Kube()
		if err != nil {
			return nil, err
		}
		pods, err := kc.PendingPods(ctx, opts.service)
		out := make([]preflight.PendingPod, len(pods))
		for i, p := range pods {
			out[i] = preflight.PendingPod{Name: p.Name, Reason: p.Reason}
		}
		return out, err
	}
}

// requirementsFromConfig is what the deployment of cfg needs, as the rendered
// compose file and manifests ask for it.
func requirementsFromConfig(cfg *config.Config) (preflight.Requirements, error) {
	req := preflight.Requirements{
		Image:          cfg.Image,
		CUDAVersion:    cudaVersion(cfg.Build),
		GPUsPerReplica: cfg.Resources.GPUs,
		Replicas:       cfg.Replicas,
		BlueGreen:      cfg.Rollout.Strategy == rollout.StrategyBlueGreen,
		GPUProduct:     cfg.Resources.GPUProduct,
		ModelPath:      cfg.Model.HostPath,
		StartupBudget:  cfg.Startup.Budget.D(),
	}
	if cfg.Model.Volume == config.VolumePVC && cfg.Model.ClaimName == "" {
		req.ModelClaim = &preflight.ClaimSpec{Name: render.ModelClaimName(cfg), StorageClass: cfg.Model.StorageClass, AccessMode: cfg.Model.AccessMode}
	}
	if cfg.Model.Params != "" {
		params, err := config.ParseParams(cfg.Model.Params)
		if err != nil {
			return req, fmt.Errorf("reading model.params: %w", err)
		}
		tp := cfg.Model.TensorParallel
		if tp == 0 {
			tp = cfg.Resources.GPUs // 0 means all GPUs of a replica
		}
		req.Model = preflight.ModelSpec{
			Params:         params,
			DType:          cfg.Model.DType,
			ContextLength:  cfg.Model.ContextLength,
			Concurrency:    cfg.Model.Concurrency,
			TensorParallel: tp,
		}
	}
	if a := cfg.Autoscaling; a.Enabled {
		req.Replicas = max(req.Replicas, a.MinReplicas)
		req.Autoscaling.Enabled = true
		if a.CPUTarget > 0 {
			req.Autoscaling.Metrics = append(req.Autoscaling.Metrics, "cpu")
		}
		if a.MemoryTarget > 0 {
			req.Autoscaling.Metrics = append(req.Autoscaling.Metrics, "memory")
		}
		// With engine keda the gateway's series reach the HPA through KEDA's
		// external metrics, not the custom metrics API.
		keda := a.Engine == config.EngineKEDA
		if a.RequestsInFlight > 0 && !keda {
			req.Autoscaling.Metrics = append(req.Autoscaling.Metrics, cfg.Preset().BusyMetric)
		}
		if a.RequestsPerSecond > 0 && !keda {
			req.Autoscaling.Metrics = append(req.Autoscaling.Metrics, "http_requests_per_second")
		}
	}
	for _, p := range cfg.Prewarm {
		req.PrewarmReplicas = max(req.PrewarmReplicas, p.Replicas)
	}
	// The compose file publishes the gateway on the host (its admin API on
	// loopback); the model server's port gets an ephemeral host port.
	for _, addr := range []string{cfg.Gateway.Listen, cfg.Gateway.AdminListen} {
		if p, ok := hostPort(addr); ok {
			req.Ports = append(req.Ports, p)
		}
	}
	return req, nil
}

// cudaVersion is the CUDA major.minor of the rendered base image, empty when unknown.
func cudaVersion(b config.Build) string {
	if b.BaseImage != "" {
		return preflight.CUDAVersionFromImage(b.BaseImage)
	}
	parts := strings.SplitN(b.CUDAVersion, ".", 3)
	if len(parts) < 2 {
		return b.CUDAVersion
	}
	return parts[0] + "." + parts[1]
}

func hostPort(addr string) (int, bool) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, false
	}
	p, err := strconv.Atoi(port)
	return p, err == nil && p > 0 && p <= 65535
}
