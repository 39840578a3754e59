package k8stest

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// EnvStateDir names a folder that replaces .cache/k8s/test as the parent of
// the packages' state folders: checkouts that share a .cache each set their
// own, so one checkout's run does not stop another's control plane.
const EnvStateDir = "AIDEPLOY_K8S_STATE"

// Options shapes the control plane that Main starts for a test binary.
type Options struct {
	// GPUNodes lists the nvidia.com/gpu capacity of each GPU node (gpu-node-0, ...); nil means 4, 4, 2.
	GPUNodes []int
	// CPUNodes is the number of CPU-only nodes (cpu-node-0, ...); nil means 1.
	CPUNodes *int
	// NetNS runs the package's tests (unless -short) and the control plane in a
	// network namespace of their own (see NetNSAddrs): for tests that send
	// traffic to the addresses of simulated pods and nodes.
	NetNS bool
	// KEDA installs KEDA's ScaledObject CustomResourceDefinition, taken from
	// KEDA's Go module (hack/keda-crd.sh): the API server validates
	// ScaledObjects against it. KEDA's operator does not run.
	KEDA bool
}

// Cluster is a running control plane as one test sees it.
type Cluster struct {
	// RESTConfig reaches the API server as cluster admin.
	RESTConfig *rest.Config
	// Kubeconfig is the path of a kubeconfig for the same identity.
	Kubeconfig string
	// Clientset is a typed client built from RESTConfig.
	Clientset kubernetes.Interface
	// Namespace is a fresh namespace for this test, deleted when it ends.
	Namespace string

	metrics *metricsServer
}

// controlPlane is the one control plane of a test binary: Main configures and
// stops it, the first Start starts it.
type controlPlane struct {
	mu         sync.Mutex
	configured bool
	opts       Options
	root       string
	stateDir   string
	started    bool
	err        error
	restConfig *rest.Config
	clientset  kubernetes.Interface
	metrics    *metricsServer
}

// plane is package state because a test binary has exactly one control plane,
// shared by its tests; Main owns its lifetime.
var plane controlPlane

// Main runs the tests of a package that uses Start, then stops the control
// plane. Call it from TestMain. Unless -short is set it builds the binaries
// first, so the first build does not count against the test timeout.
func Main(m *testing.M, opts Options) {
	flag.Parse()
	code := run(m, opts)
	os.Exit(code)
}

func run(m *testing.M, opts Options) int {
	if err := plane.configure(opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !testing.Short() && !InNetNS() {
		// Before the namespace: the build may fetch from the module proxy.
		if err := plane.build(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if opts.KEDA {
			if _, err := plane.fetchKEDA(context.Background()); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if opts.NetNS {
			return reexecInNetNS()
		}
	}
	defer plane.stop()
	return m.Run()
}

// Start returns the shared control plane, starting it on first use, with a
// fresh namespace for t. Under -short it skips t.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the Kubernetes control plane of hack/cluster.sh; run without -short")
	}
	if err := plane.start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := createNamespace(ctx, plane.clientset, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		plane.metrics.forget(ns)
		// The namespace goes away in the background; nothing waits for it.
		_ = plane.clientset.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	return &Cluster{
		RESTConfig: rest.CopyConfig(plane.restConfig),
		Kubeconfig: filepath.Join(plane.stateDir, "admin.kubeconfig"),
		Clientset:  plane.clientset,
		Namespace:  ns,
		metrics:    plane.metrics,
	}
}

func (p *controlPlane) configure(opts Options) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("finding the package folder: %w", err)
	}
	rel, err := filepath.Rel(root, wd)
	if err != nil {
		return fmt.Errorf("finding the package folder: %w", err)
	}
	p.opts = opts
	p.root = root
	// One state folder per package: a re-run stops what a killed run left behind.
	// AIDEPLOY_K8S_STATE moves the folders elsewhere, so that checkouts sharing
	// one .cache do not stop each other's control planes.
	base := filepath.Join(root, ".cache", "k8s", "test")
	if dir := os.Getenv(EnvStateDir); dir != "" {
		base = dir
	}
	p.stateDir = filepath.Join(base, strings.ReplaceAll(rel, string(filepath.Separator), "_"))
	p.configured = true
	return nil
}

func (p *controlPlane) build() error {
	out, err := p.script(context.Background(), "hack/k8s-build.sh")
	if err != nil {
		return fmt.Errorf("building the test control plane (hack/k8s-build.sh): %w\n%s", err, out)
	}
	return nil
}

func (p *controlPlane) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.configured {
		return fmt.Errorf("k8stest: call k8stest.Main(m, ...) from TestMain in this package")
	}
	if p.started {
		return p.err
	}
	p.started = true
	p.err = p.up()
	return p.err
}

func (p *controlPlane) up() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if out, err := p.script(ctx, "hack/cluster.sh", "up"); err != nil {
		return fmt.Errorf("starting the control plane (hack/cluster.sh up): %w\n%s", err, out)
	}
	kubeconfig := filepath.Join(p.stateDir, "admin.kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building a client: %w", err)
	}
	p.restConfig, p.clientset = cfg, cs
	p.metrics, err = startMetricsServer(ctx, cs)
	if err != nil {
		return fmt.Errorf("serving metrics.k8s.io: %w", err)
	}
	if p.opts.KEDA {
		if err := p.installKEDA(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (p *controlPlane) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.metrics != nil {
		p.metrics.close()
	}
	if !p.started {
		return
	}
	if out, err := p.script(context.Background(), "hack/cluster.sh", "down"); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n%s", err, out)
	}
}

// script runs a script of hack/ with this package's state folder and node layout.
func (p *controlPlane) script(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(p.root, name), args...)
	cmd.Dir = p.root
	cmd.Env = append(os.Environ(), "K8S_STATE_DIR="+p.stateDir)
	if p.opts.GPUNodes != nil {
		counts := make([]string, len(p.opts.GPUNodes))
		for i, n := range p.opts.GPUNodes {
			counts[i] = strconv.Itoa(n)
		}
		cmd.Env = append(cmd.Env, "K8S_GPU_NODES="+strings.Join(counts, ","))
	}
	if p.opts.CPUNodes != nil {
		cmd.Env = append(cmd.Env, "K8S_CPU_NODES="+strconv.Itoa(*p.opts.CPUNodes))
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// repoRoot walks up from the working folder to the one holding hack/cluster.sh.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "cluster.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("k8stest: no hack/cluster.sh above the working folder; run the tests from inside the repository")
		}
		dir = parent
	}
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// namespacePrefix turns a test name into the start of a namespace name.
func namespacePrefix(testName string) string {
	base := nonName.ReplaceAllString(strings.ToLower(testName), "-")
	base = strings.Trim(strings.TrimPrefix(strings.Trim(base, "-"), "test"), "-")
	if len(base) > 40 {
		base = strings.TrimRight(base[:40], "-")
	}
	return "t-" + base + "-"
}

// createNamespace creates a namespace named after the test, with a random suffix.
func createNamespace(ctx context.Context, cs kubernetes.Interface, testName string) (string, error) {
	name := namespacePrefix(testName) + rand.String(5)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{"aideploy.test/namespace": "true"},
	}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return name, nil
}
