package k8s

import (
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Flags are kubectl's --kubeconfig, --context and --namespace, read the way
// kubectl reads them (KUBECONFIG, ~/.kube/config, the in-cluster account).
//
// They are built on clientcmd rather than cli-runtime's ConfigFlags: that
// package links Go's plugin package (through kustomize), which makes the Go
// linker bind every C function at start-up, and NVML's functions exist only
// once preflight loads the library, so aideploy would not start at all.
type Flags struct {
	// Kubeconfig is the kubeconfig file; empty follows KUBECONFIG and ~/.kube/config.
	Kubeconfig string
	// Context is the kubeconfig context; empty uses the current one.
	Context string
	// Namespace overrides the context's namespace.
	Namespace string
}

// AddFlags registers the three flags on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "path to the kubeconfig file to use for Kubernetes targets")
	fs.StringVar(&f.Context, "context", "", "the kubeconfig context to use")
	fs.StringVarP(&f.Namespace, "namespace", "n", "", "the namespace for Kubernetes targets")
}

// ToRawKubeConfigLoader returns the merged kubeconfig with the flags applied.
func (f *Flags) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: f.Context}
	overrides.Context.Namespace = f.Namespace
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// ToRESTConfig returns the connection the flags name.
func (f *Flags) ToRESTConfig() (*rest.Config, error) {
	return f.ToRawKubeConfigLoader().ClientConfig()
}
