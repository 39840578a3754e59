package cli

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/iostreams"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/preflight"
)

func TestPreflightFlags(t *testing.T) {
	t.Parallel()
	all := preflight.Groups{GPU: true, Docker: true, Kubernetes: true}
	tests := []struct {
		name      string
		args      []string
		run, reqd preflight.Groups
		manifests string
		strict    bool
		wantUsage string
	}{
		{"defaults run every group, require none", nil, all, preflight.Groups{}, "", false, ""},
		{"a named group runs alone and is required", []string{"--docker"}, preflight.Groups{Docker: true}, preflight.Groups{Docker: true}, "", false, ""},
		{"two groups", []string{"--gpu", "--k8s"}, preflight.Groups{GPU: true, Kubernetes: true}, preflight.Groups{GPU: true, Kubernetes: true}, "", false, ""},
		{"require-gpu adds the GPU", []string{"--docker", "--require-gpu"}, preflight.Groups{GPU: true, Docker: true}, preflight.Groups{GPU: true, Docker: true}, "", false, ""},
		{"require-gpu alone", []string{"--require-gpu"}, all, preflight.Groups{GPU: true}, "", false, ""},
		{"manifests and strict", []string{"--manifests", "out", "--strict"}, all, preflight.Groups{}, "out", true, ""},
		{"argument", []string{"now"}, preflight.Groups{}, preflight.Groups{}, "", false, "takes no arguments"},
		{"unknown flag", []string{"--cuda"}, preflight.Groups{}, preflight.Groups{}, "", false, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			io, _, _, _ := iostreams.Test()
			var got *preflightOptions
			cmd := newCmdPreflight(NewFactory(io), func(_ context.Context, o *preflightOptions) error { got = o; return nil })
			cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Out)
			cmd.SetErr(io.ErrOut)
			err := cmd.Execute()
			if tt.wantUsage != "" {
				var ue *UsageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantUsage) {
					t.Fatalf("error = %v, want a usage error with %q", err, tt.wantUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			run, reqd := got.groups()
			if run != tt.run || reqd != tt.reqd || got.Manifests != tt.manifests || got.Strict != tt.strict {
				t.Errorf("run %+v require %+v manifests %q strict %v; want %+v %+v %q %v",
					run, reqd, got.Manifests, got.Strict, tt.run, tt.reqd, tt.manifests, tt.strict)
			}
		})
	}
}

func TestRequirementsFromConfig(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(filepath.Join("..", "render", "testdata", "gpu4-rps", config.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	req, err := requirementsFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"image", req.Image, cfg.Image},
		{"cuda", req.CUDAVersion, "12.4"},
		{"gpus per replica", req.GPUsPerReplica, 4},
		{"replicas", req.Replicas, 2},
		{"prewarm", req.PrewarmReplicas, 6},
		{"blue/green", req.BlueGreen, true},
		{"needed GPUs", req.NeededGPUs(), 48},
		{"product", req.GPUProduct, "NVIDIA-H100-80GB-HBM3"},
		{"params", req.Model.Params, 70e9},
		{"dtype", req.Model.DType, "fp8"},
		{"context", req.Model.ContextLength, 32768},
		{"concurrency", req.Model.Concurrency, 64},
		{"tensor parallel", req.Model.TensorParallel, 4},
		{"startup", req.StartupBudget, 25 * time.Minute},
		{"autoscaling", req.Autoscaling.Enabled, true},
		{"metrics", strings.Join(req.Autoscaling.Metrics, ","), "http_requests_per_second"},
		{"ports", req.Ports, []int{8080, 8081}},
	}
	for _, c := range checks {
		if !equalAny(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// Tensor parallelism defaults to every GPU of a replica; CPU and memory targets are listed.
	cfg.Model.TensorParallel = 0
	cfg.Autoscaling.CPUTarget, cfg.Autoscaling.MemoryTarget, cfg.Autoscaling.RequestsPerSecond = 70, 80, 0
	cfg.Autoscaling.MinReplicas = 5
	cfg.Build.BaseImage = "nvidia/cuda:12.1.0-runtime-ubuntu22.04"
	req, err = requirementsFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if req.Model.TensorParallel != 4 || strings.Join(req.Autoscaling.Metrics, ",") != "cpu,memory" || req.Replicas != 5 || req.CUDAVersion != "12.1" {
		t.Errorf("defaults: tp %d metrics %v replicas %d cuda %q", req.Model.TensorParallel, req.Autoscaling.Metrics, req.Replicas, req.CUDAVersion)
	}

	// With engine keda the gateway's metrics come through KEDA, not the custom metrics API.
	cfg.Autoscaling.Engine = config.EngineKEDA
	cfg.Autoscaling.RequestsPerSecond, cfg.Autoscaling.RequestsInFlight, cfg.Autoscaling.MemoryTarget = 50, 12, 0
	if req, err = requirementsFromConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(req.Autoscaling.Metrics, ","); got != "cpu" {
		t.Errorf("keda: metrics %q, want cpu only (no custom metrics API)", got)
	}
}

func equalAny(a, b any) bool {
	if as, ok := a.([]int); ok {
		bs, _ := b.([]int)
		return slices.Equal(as, bs)
	}
	return a == b
}

// TestPreflightJSON runs only the cluster group, required, against a client
// that cannot connect: no engine is needed, and the run must fail with exit 1.
func TestPreflightJSON(t *testing.T) {
	t.Parallel()
	io, _, out, errOut := iostreams.Test()
	f := NewFactory(io)
	f.Output = "json"
	f.ConfigPath = filepath.Join(t.TempDir(), config.DefaultFile)
	f.Kube = func() (*k8s.Client, error) { return nil, errors.New("no cluster configured") }
	err := runPreflight(context.Background(), &preflightOptions{f: f, Kubernetes: true})
	var rep struct {
		SchemaVersion int                `json:"schemaVersion"`
		Results       []preflight.Result `json:"results"`
		Summary       preflight.Summary  `json:"summary"`
		DurationMS    *int64             `json:"durationMs"`
	}
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("not JSON (%v):\n%s", jerr, out)
	}
	if rep.SchemaVersion != preflight.SchemaVersion || rep.DurationMS == nil || len(rep.Results) != 1 ||
		rep.Results[0].ID != "k8s.cluster" || rep.Results[0].Status != preflight.Fail || rep.Summary.Fail != 1 {
		t.Errorf("report:\n%s", out)
	}
	var silent *SilentError
	if !errors.As(err, &silent) || silent.Code != ExitFailed {
		t.Errorf("err = %v, want exit %d", err, ExitFailed)
	}
	if !strings.Contains(errOut.String(), "without model requirements") {
		t.Errorf("no note about the missing aideploy.yaml: %q", errOut)
	}
}
