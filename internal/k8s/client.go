package k8s

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Client reaches one namespace of a cluster.
type Client struct {
	// REST is the connection, for the service proxy.
	REST *rest.Config
	// Namespace holds everything aideploy creates.
	Namespace string
	// Clientset is the typed client.
	Clientset kubernetes.Interface
	// Dynamic applies rendered objects of any kind.
	Dynamic dynamic.Interface
	// Mapper maps kinds to resources.
	Mapper meta.RESTMapper
}

// NewClient connects to the cluster of cfg, working in namespace.
func NewClient(cfg *rest.Config, namespace string) (*Client, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building a Kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building a Kubernetes client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building a Kubernetes client: %w", err)
	}
	if namespace == "" {
		namespace = "default"
	}
	return &Client{
		REST: cfg, Namespace: namespace, Clientset: cs, Dynamic: dyn,
		Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
	}, nil
}

// FromFlags connects as --kubeconfig, --context and --namespace say.
func FromFlags(flags *Flags) (*Client, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w; pass --kubeconfig or set KUBECONFIG", err)
	}
	ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("reading the namespace of the kubeconfig: %w", err)
	}
	return NewClient(cfg, ns)
}
