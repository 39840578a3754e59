// Package k8stest starts the real Kubernetes control plane of hack/cluster.sh
// (etcd, kube-apiserver, controller manager, scheduler and kwok nodes) once per
// test binary, hands each test a client and a fresh namespace, and serves the
// metrics.k8s.io API from a table the test controls so the HPA really scales.
//
// A package using it calls Main from TestMain:
//
//	func TestMain(m *testing.M) { k8stest.Main(m, k8stest.Options{GPUNodes: []int{4}}) }
//
// and each integration test calls Start(t). Under -short Start skips the test;
// otherwise a missing binary is built (about 12 minutes the first time, before
// the test timeout starts) and a failure to start fails the test.
//
// Pods annotated aideploy.test/fail: never-ready, crashloop or imagepull fail as
// a real kubelet would report it (see hack/kwok/README.md).
//
// Metrics: kwok nodes have no kubelet for metrics-server to scrape, so the test
// binary serves metrics.k8s.io/v1beta1 itself, registered as an APIService
// behind an ExternalName Service on localhost. Cluster.SetPodCPU sets the CPU
// usage its running pods report; the HPA syncs every 5s and scales down after a
// 15s stabilization window (hack/cluster.sh K8S_HPA_SYNC, K8S_HPA_DOWNSCALE).
//
// Network: with Options.NetNS the test binary re-runs itself (unless -short)
// under `unshare --net`, in a namespace with only a loopback that carries
// kwok's node address and pod range (NetNSAddrs). The control plane starts
// there too, so the API server's proxy reaches a fake model a test listens
// with on a pod's address, and nothing a test sends can leave the machine.
//
// Each package gets its own control plane under .cache/k8s/test/<package>; a
// run killed before TestMain returns leaves it running until the next run of
// that package, which stops it first. AIDEPLOY_K8S_STATE replaces
// .cache/k8s/test with a folder of one's own.
package k8stest
