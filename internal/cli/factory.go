package cli

import (
	"io"
	"log/slog"
	"os"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/iostreams"
	"github.com/aideploy/aideploy/internal/k8s"
)

// Factory hands commands what they need, built lazily once per invocation.
// Tests replace any field.
type Factory struct {
	IO *iostreams.IOStreams

	// Set from global flags before a command runs.
	ConfigPath string
	Output     string
	// Wide is --output wide: tables that narrow themselves to fit a
	// terminal (preflight) print every column whole instead.
	Wide    bool
	Verbose bool

	// Config loads and validates aideploy.yaml from ConfigPath.
	Config func() (*config.Config, error)
	// Logger writes structured logs to the error stream.
	Logger func() *slog.Logger
	// KubeFlags are --kubeconfig, --context and --namespace.
	KubeFlags *k8s.Flags
	// Kube connects to the cluster the Kubernetes flags name.
	Kube func() (*k8s.Client, error)
}

// NewFactory returns the production factory.
func NewFactory(streams *iostreams.IOStreams) *Factory {
	f := &Factory{IO: streams, ConfigPath: config.DefaultFile, Output: "table"}
	var cached *config.Config
	f.Config = func() (*config.Config, error) {
		if cached != nil {
			return cached, nil
		}
		c, err := config.Load(f.ConfigPath)
		if err != nil {
			return nil, err
		}
		cached = c
		return c, nil
	}
	f.Logger = func() *slog.Logger { return newLogger(streams.ErrOut, f.Verbose, f.Output == "json") }
	f.KubeFlags = &k8s.Flags{}
	var kube *k8s.Client
	f.Kube = func() (*k8s.Client, error) {
		if kube != nil {
			return kube, nil
		}
		if err := missingKubeconfig(f.KubeFlags, os.Getenv); err != nil {
			return nil, err
		}
		c, err := k8s.FromFlags(f.KubeFlags)
		if err != nil {
			return nil, err
		}
		kube = c
		return c, nil
	}
	return f
}

// newLogger logs to w at info level, or debug when verbose; with --output
// json the log lines are JSON objects too, for log shippers.
func newLogger(w io.Writer, verbose, json bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
