package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/iostreams"
)

// Factory hands commands what they need, built lazily once per invocation.
// Tests replace any field.
type Factory struct {
	IO *iostreams.IOStreams

	// Set from global flags before a command runs.
	ConfigPath string
	Output     string
	Verbose    bool

	// Config loads and validates aideploy.yaml from ConfigPath.
	Config func() (*config.Config, error)
	// Logger writes structured logs to the error stream.
	Logger func() *slog.Logger
	// KubeClient connects to the cluster of the kubeconfig, as kubectl would.
	KubeClient func() (kubernetes.Interface, error)
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
	f.Logger = func() *slog.Logger { return newLogger(streams.ErrOut, f.Verbose) }
	f.KubeClient = sync.OnceValues(kubeClient)
	return f
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// kubeClient reads KUBECONFIG or ~/.kube/config (or the in-cluster service
// account) the way kubectl does.
func kubeClient() (kubernetes.Interface, error) {
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{})
	cfg, err := loader.ClientConfig()
	if clientcmd.IsEmptyConfig(err) || errors.Is(err, clientcmd.ErrEmptyConfig) {
		return nil, errors.New("no cluster configured (no KUBECONFIG or ~/.kube/config)")
	}
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	// A cluster that does not answer must not hold a command for long.
	cfg.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building a Kubernetes client: %w", err)
	}
	return cs, nil
}
