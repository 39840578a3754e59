package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/preflight"
	"github.com/aideploy/aideploy/internal/render"
	"github.com/aideploy/aideploy/internal/units"
)

// initOptions are init's flags; each has a field of aideploy.yaml behind it.
type initOptions struct {
	f     *Factory
	Dir   string
	Force bool

	Name          string
	Server        string
	Model         string
	ModelVolume   string
	HostPath      string
	StorageClass  string
	Image         string
	Port          int
	GPUs          int
	GPUProduct    string
	ModelPath     string
	ModelParams   string
	DType         string
	ContextLength int
	Replicas      int
	MinReplicas   int
	MaxReplicas   int
	RPSTarget     int
	CPU           string
	Memory        string
	Autoscaling   bool
	CUDAVersion   string

	changed func(flag string) bool
}

// flagFor names the init flag that sets an aideploy.yaml field, so a bad flag
// value is reported as the flag the user typed.
func flagFor(path string) (string, bool) {
	switch path {
	case "name", "image", "port", "server":
		return "--" + path, true
	case "model.name":
		return "--model", true
	case "model.volume":
		return "--model-volume", true
	case "model.hostPath":
		return "--host-path", true
	case "model.storageClass":
		return "--storage-class", true
	case "resources.gpus":
		return "--gpus", true
	case "resources.gpuProduct":
		return "--gpu-product", true
	case "model.path":
		return "--model-path", true
	case "model.params":
		return "--model-params", true
	case "model.dtype":
		return "--dtype", true
	case "model.contextLength":
		return "--context-length", true
	case "replicas":
		return "--replicas", true
	case "resources.cpu":
		return "--cpu", true
	case "resources.memory":
		return "--memory", true
	case "autoscaling.minReplicas":
		return "--min-replicas", true
	case "autoscaling.maxReplicas":
		return "--max-replicas", true
	case "autoscaling.requestsPerSecond", "autoscaling.cpuTarget":
		// init sets no CPU target: all targets are 0 only after --rps-target 0.
		return "--rps-target", true
	case "build.cudaVersion":
		return "--cuda-version", true
	}
	return "", false
}

func newCmdInit(f *Factory, runF func(context.Context, *initOptions) error) *cobra.Command {
	opts := &initOptions{f: f}
	def := config.Default()
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Write a commented aideploy.yaml and render every deployment file",
		Long: `Init writes aideploy.yaml into DIR (default: the current folder), filled from
its flags, and renders compose.yaml, Kubernetes manifests, monitoring and nginx
files next to it, exactly as aideploy render renders that aideploy.yaml. It never
prompts: every setting has a flag.

--server picks the model server: vllm, tgi and ollama run their stock image with
the arguments, probes, model storage and metrics that server documents; custom
(the default) renders a Dockerfile for your own server.

It refuses to overwrite existing files, and lists them, unless --force is given.
The service name defaults to DIR's name when that is a valid DNS label.`,
		Example: `  aideploy init demo --server vllm --model Qwen/Qwen2.5-7B-Instruct --gpus 1 --model-params 7B
  aideploy init demo --name chat --image registry.example.com/chat:1.0.0 --gpus 1 --model-params 8B
  aideploy init --gpus 0 --model-params 350M --dtype fp32 --rps-target 50`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dir = "."
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			opts.changed = cmd.Flags().Changed
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runInit(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Name, "name", "", "service name, a DNS label (default: DIR's name)")
	fl.StringVar(&opts.Server, "server", config.ServerCustom, "model server: "+strings.Join(config.Servers, ", "))
	fl.StringVar(&opts.Model, "model", "", "model the server loads: a Hugging Face id or an Ollama model (default: the files under --model-path)")
	fl.StringVar(&opts.ModelVolume, "model-volume", config.VolumePVC, "what holds the model: "+strings.Join(config.Volumes, ", "))
	fl.StringVar(&opts.HostPath, "host-path", "", "host folder holding the model, for --model-volume hostPath")
	fl.StringVar(&opts.StorageClass, "storage-class", "", "storage class of the model's PersistentVolumeClaim (default: the cluster's)")
	fl.StringVar(&opts.Image, "image", "", "model server image as repository:tag (default: the server's stock image; custom: registry.example.com/NAME:0.1.0)")
	fl.IntVar(&opts.Port, "port", 0, "port the model server listens on (default: the server's: vllm 8000, tgi 8080, ollama 11434, custom 8000)")
	fl.IntVar(&opts.GPUs, "gpus", def.Resources.GPUs, "GPUs per replica; 0 for CPU only")
	fl.StringVar(&opts.GPUProduct, "gpu-product", "", "pin the nvidia.com/gpu.product node label, e.g. NVIDIA-H100-80GB-HBM3")
	fl.StringVar(&opts.ModelPath, "model-path", def.Model.Path, "where the weights are mounted in the container")
	fl.StringVar(&opts.ModelParams, "model-params", def.Model.Params, "parameter count, e.g. 8B, 70B, 350M")
	fl.StringVar(&opts.DType, "dtype", def.Model.DType, "weight precision: "+strings.Join(config.DTypes, ", "))
	fl.IntVar(&opts.ContextLength, "context-length", def.Model.ContextLength, "maximum sequence length")
	fl.StringVar(&opts.CPU, "cpu", def.Resources.CPU, "CPU request per replica, e.g. 1, 4 or 500m")
	fl.StringVar(&opts.Memory, "memory", "", "memory request per replica, e.g. 16Gi (default: the weights' size, at least 4Gi)")
	fl.IntVar(&opts.Replicas, "replicas", def.Replicas, "steady-state replicas")
	fl.IntVar(&opts.MinReplicas, "min-replicas", def.Autoscaling.MinReplicas, "autoscaling floor")
	fl.IntVar(&opts.MaxReplicas, "max-replicas", def.Autoscaling.MaxReplicas, "autoscaling ceiling")
	fl.IntVar(&opts.RPSTarget, "rps-target", 0, "autoscale on http_requests_per_second per pod; 0 disables it")
	fl.BoolVar(&opts.Autoscaling, "autoscaling", def.Autoscaling.Enabled, "render a HorizontalPodAutoscaler")
	fl.StringVar(&opts.CUDAVersion, "cuda-version", def.Build.CUDAVersion, "nvidia/cuda runtime base image version")
	fl.BoolVar(&opts.Force, "force", false, "overwrite existing files")
	fl.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		return pflag.NormalizedName(strings.ReplaceAll(name, "_", "-"))
	})
	return cmd
}

var dnsLabel = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// buildConfig turns the flags into a configuration; it does no I/O. Fields
// no flag set are derived as a file that leaves them out derives them.
func (o *initOptions) buildConfig(dirName string) (*config.Config, error) {
	if _, ok := config.PresetFor(o.Server); !ok {
		return nil, UsageErrorf("--server %q is not a server aideploy knows; choose one of %s", o.Server, strings.Join(config.Servers, ", "))
	}
	cfg := config.New(o.Server)
	cfg.Name = o.Name
	if cfg.Name == "" {
		if !dnsLabel.MatchString(dirName) || len(dirName) > 50 {
			return nil, UsageErrorf("cannot use the folder name %q as the service name; pass --name, e.g. --name chat", dirName)
		}
		cfg.Name = dirName
	}
	cfg.Image = o.Image
	if cfg.Image == "" && cfg.Preset().Dockerfile {
		cfg.Image = "registry.example.com/" + cfg.Name + ":0.1.0"
	}
	cfg.Port = o.Port
	if o.Port != 0 {
		cfg.Build.Command = withPort(cfg.Build.Command, o.Port)
	}
	cfg.Model.Name = o.Model
	cfg.Model.Volume = o.ModelVolume
	cfg.Model.HostPath = o.HostPath
	cfg.Model.StorageClass = o.StorageClass
	if cfg.Server == config.ServerVLLM || cfg.Server == config.ServerTGI {
		// Gated models need a token; public ones start without it.
		cfg.Env = []config.EnvVar{{Name: "HF_TOKEN", FromEnv: "HF_TOKEN",
			SecretRef: &config.SecretRef{Name: cfg.Name + "-secrets", Key: "hf-token", Optional: true}}}
	}
	cfg.Resources.GPUs = o.GPUs
	cfg.Resources.GPUProduct = o.GPUProduct
	cfg.Model.Path = o.ModelPath
	cfg.Model.Params = o.ModelParams
	cfg.Model.DType = o.DType
	cfg.Model.ContextLength = o.ContextLength
	cfg.Resources.CPU = o.CPU
	if o.Memory != "" {
		m, err := units.ParseByteSize(o.Memory)
		if err != nil {
			return nil, UsageErrorf("--memory: %v", err)
		}
		cfg.Resources.Memory = m
	} else if w, ok := weightBytes(cfg.Model); ok && units.ByteSize(w) > cfg.Resources.Memory {
		// The weights pass through host memory while loading: a smaller limit is an OOM kill.
		cfg.Resources.Memory = units.ByteSize((w + 1<<30 - 1) / (1 << 30) * (1 << 30))
	}
	if w, ok := weightBytes(cfg.Model); ok && cfg.Model.Volume == config.VolumePVC {
		// Room for two versions of the weights, as an update downloads the next beside the last.
		cfg.Model.Size = max(units.ByteSize(20<<30), units.ByteSize((2*w+1<<30-1)/(1<<30)*(1<<30)))
	}
	cfg.Replicas = o.Replicas
	cfg.Autoscaling.Enabled = o.Autoscaling
	cfg.Autoscaling.MinReplicas = o.MinReplicas
	cfg.Autoscaling.MaxReplicas = o.MaxReplicas
	changed := func(flag string) bool { return o.changed != nil && o.changed(flag) }
	if changed("rps-target") {
		cfg.Autoscaling.RequestsPerSecond = o.RPSTarget
	}
	if changed("replicas") && !changed("min-replicas") && o.Replicas > 0 && o.Replicas < cfg.Autoscaling.MinReplicas {
		cfg.Autoscaling.MinReplicas = o.Replicas
	}
	cfg.Build.CUDAVersion = o.CUDAVersion
	// --rps-target 0 is a choice, kept as the file would keep it (and refused
	// when it leaves an HPA without any target).
	cfg.Derive(func(path string) bool { return path == "autoscaling.requestsPerSecond" && changed("rps-target") })
	return cfg, nil
}

// withPort points the default server command's --port at port.
func withPort(cmd []string, port int) []string {
	out := append([]string(nil), cmd...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == "--port" {
			out[i+1] = strconv.Itoa(port)
		}
	}
	return out
}

func runInit(_ context.Context, opts *initOptions) error {
	abs, err := filepath.Abs(opts.Dir)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", opts.Dir, err)
	}
	cfg, err := opts.buildConfig(filepath.Base(abs))
	if err != nil {
		return err
	}
	configPath := filepath.Join(opts.Dir, config.DefaultFile)
	files, err := initFiles(cfg, configPath, opts.Dir)
	if err != nil {
		return err
	}
	policy := overwriteNone
	if opts.Force {
		policy = overwriteAll
	}
	res, err := writeFiles(opts.Dir, files, policy, render.Paths(render.All))
	if err != nil {
		return err
	}
	if err := printWritten(opts.f, opts.Dir, files, res, "Created"); err != nil {
		return err
	}
	if opts.f.Output != "table" {
		return nil
	}
	var next strings.Builder
	if filepath.Clean(opts.Dir) != "." {
		fmt.Fprintf(&next, "  cd %s\n", opts.Dir)
	}
	// Everything is rendered already: what comes next is checking and deploying.
	next.WriteString("  aideploy preflight   # GPUs, the Docker engine and the cluster, before anything starts\n")
	next.WriteString("  aideploy rollout     # the first deploy, on the target that aideploy.yaml names\n")
	next.WriteString("After an edit of aideploy.yaml, aideploy render writes the files again.\n")
	if cfg.Preset().Dockerfile {
		if _, err := fmt.Fprintf(opts.f.IO.Out, "\nThe Dockerfile builds your own server: put requirements.txt and the server it starts beside it (its header lists what they must do), or pass --server vllm, tgi or ollama to run a stock image.\n"); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(opts.f.IO.Out, "\nNext: review %s (image, model, resources), then run:\n%s", configPath, next.String())
	return err
}

// initFiles writes cfg as aideploy.yaml and renders what will be written,
// read back as render reads it: one code path, so init and a later render give
// the same bytes. Problems are blamed on the flags that set each field.
func initFiles(cfg *config.Config, configPath, dir string) ([]render.File, error) {
	data, err := render.ConfigFile(cfg)
	if err != nil {
		return nil, err
	}
	written, err := config.Parse(configPath, data)
	if err != nil {
		return nil, flagProblems(err)
	}
	files, err := renderFiles(written, configPath, dir, nil)
	if err != nil {
		return nil, err
	}
	return append([]render.File{{Path: config.DefaultFile, Data: data, Mode: 0o644}}, files...), nil
}

// flagProblems restates a config.Error about the file init was about to write
// as problems with the flags that set each field.
func flagProblems(err error) error {
	var cfgErr *config.Error
	if !errors.As(err, &cfgErr) {
		return err
	}
	var lines []string
	for _, p := range cfgErr.Problems {
		if flag, ok := flagFor(p.Path); ok {
			lines = append(lines, fmt.Sprintf("%s: %s %s", flag, p.Path, p.Msg))
		} else {
			lines = append(lines, fmt.Sprintf("%s %s", p.Path, p.Msg))
		}
	}
	return &UsageError{Err: errors.New(strings.Join(lines, "\n"))}
}

// weightBytes is parameters × bytes per parameter: what the weights take in host
// memory while they load. preflight owns the dtype table.
func weightBytes(m config.Model) (int64, bool) {
	n, err := config.ParseParams(m.Params)
	if err != nil {
		return 0, false
	}
	b, err := preflight.BytesPerParam(m.DType)
	if err != nil {
		return 0, false
	}
	return int64(n * b), true
}
