package k8stest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// The metrics.k8s.io API is served by this process and registered with the
// aggregator through an ExternalName Service: with no kube-proxy a ClusterIP
// is unreachable, and Endpoints may not name a loopback address.
const (
	metricsService = "aideploy-test-metrics"
	metricsGroupV  = "metrics.k8s.io/v1beta1"
	// metricsWindow is short so the HPA trusts a sample one second after a pod became Ready.
	metricsWindow = time.Second
	defaultMemory = 64 << 20
)

// metricsServer serves PodMetrics for running pods from a table the tests fill.
type metricsServer struct {
	cs  kubernetes.Interface
	srv *http.Server

	mu sync.Mutex
	// cpu holds milli-CPU by namespace, then by pod name; the pod "" is the namespace default.
	cpu map[string]map[string]int64
	// lists counts the pod metrics lists by namespace: the HPA controller
	// makes one per HPA on each sync.
	lists map[string]int
}

// MetricsLists returns how many times the metrics API was asked for the pod
// metrics of the test's namespace, as the HPA controller does on each sync of
// each HPA with a resource metric: a clock of controller time that a test can
// wait on instead of the wall clock.
func (c *Cluster) MetricsLists() int {
	c.metrics.mu.Lock()
	defer c.metrics.mu.Unlock()
	return c.metrics.lists[c.Namespace]
}

// SetPodCPU makes the metrics API report milliCPU of CPU usage for the pod of
// the test's namespace, or for every pod of it when pod is "". Pods without a
// value are missing from the API, as they are from metrics-server before its
// first scrape.
func (c *Cluster) SetPodCPU(pod string, milliCPU int64) {
	c.metrics.set(c.Namespace, pod, milliCPU)
}

func (s *metricsServer) set(ns, pod string, milliCPU int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cpu[ns] == nil {
		s.cpu[ns] = map[string]int64{}
	}
	s.cpu[ns][pod] = milliCPU
}

func (s *metricsServer) forget(ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cpu, ns)
	delete(s.lists, ns)
}

func (s *metricsServer) lookup(ns, pod string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.cpu[ns][pod]; ok {
		return v, true
	}
	v, ok := s.cpu[ns][""]
	return v, ok
}

func (s *metricsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// startMetricsServer serves metrics.k8s.io on a loopback port, registers it
// with the aggregator and waits until the API server proxies to it.
func startMetricsServer(ctx context.Context, cs kubernetes.Interface) (*metricsServer, error) {
	cert, err := selfSignedCert()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening on loopback: %w", err)
	}
	s := &metricsServer{cs: cs, cpu: map[string]map[string]int64{}, lists: map[string]int{}}
	s.srv = &http.Server{
		Handler:           s.routes(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	port := int32(ln.Addr().(*net.TCPAddr).Port)
	if err := s.register(ctx, port); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *metricsServer) register(ctx context.Context, port int32) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: metricsService, Namespace: metav1.NamespaceSystem},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports:        []corev1.ServicePort{{Name: "https", Port: port}},
		},
	}
	if _, err := s.cs.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating service %s: %w", metricsService, err)
	}
	apiService := map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": "v1beta1.metrics.k8s.io"},
		"spec": map[string]any{
			"group":                 "metrics.k8s.io",
			"version":               "v1beta1",
			"groupPriorityMinimum":  100,
			"versionPriority":       100,
			"insecureSkipTLSVerify": true,
			"service":               map[string]any{"namespace": svc.Namespace, "name": svc.Name, "port": port},
		},
	}
	body, err := json.Marshal(apiService)
	if err != nil {
		return fmt.Errorf("encoding the APIService: %w", err)
	}
	res := s.cs.Discovery().RESTClient().Post().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices").
		SetHeader("Content-Type", "application/json").Body(body).Do(ctx)
	if err := res.Error(); err != nil {
		return fmt.Errorf("creating APIService v1beta1.metrics.k8s.io: %w", err)
	}
	var lastErr error
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		_, lastErr = s.cs.Discovery().ServerResourcesForGroupVersion(metricsGroupV)
		return lastErr == nil, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the aggregator to serve %s: %w (last error: %v)", metricsGroupV, err, lastErr)
	}
	return nil
}

func (s *metricsServer) routes() http.Handler {
	const base = "/apis/" + metricsGroupV
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+base, s.discovery)
	mux.HandleFunc("GET "+base+"/pods", s.listPods)
	mux.HandleFunc("GET "+base+"/namespaces/{ns}/pods", s.listPods)
	mux.HandleFunc("GET "+base+"/namespaces/{ns}/pods/{name}", s.getPod)
	mux.HandleFunc("GET "+base+"/nodes", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, &metricsv1beta1.NodeMetricsList{TypeMeta: typeMeta("NodeMetricsList")})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, apierrors.NewNotFound(metricsv1beta1.Resource(""), r.URL.Path))
	})
	return mux
}

func (s *metricsServer) discovery(w http.ResponseWriter, _ *http.Request) {
	verbs := metav1.Verbs{"get", "list"}
	writeJSON(w, http.StatusOK, &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: metricsGroupV,
		APIResources: []metav1.APIResource{
			{Name: "pods", Namespaced: true, Kind: "PodMetrics", Verbs: verbs},
			{Name: "nodes", Namespaced: false, Kind: "NodeMetrics", Verbs: verbs},
		},
	})
}

func (s *metricsServer) listPods(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.lists[r.PathValue("ns")]++
	s.mu.Unlock()
	pods, err := s.cs.CoreV1().Pods(r.PathValue("ns")).List(r.Context(), metav1.ListOptions{
		LabelSelector: r.URL.Query().Get("labelSelector"),
		FieldSelector: r.URL.Query().Get("fieldSelector"),
	})
	if err != nil {
		writeStatus(w, err)
		return
	}
	list := &metricsv1beta1.PodMetricsList{TypeMeta: typeMeta("PodMetricsList")}
	for i := range pods.Items {
		if m, ok := s.podMetrics(&pods.Items[i]); ok {
			list.Items = append(list.Items, m)
		}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *metricsServer) getPod(w http.ResponseWriter, r *http.Request) {
	pod, err := s.cs.CoreV1().Pods(r.PathValue("ns")).Get(r.Context(), r.PathValue("name"), metav1.GetOptions{})
	if err != nil {
		writeStatus(w, err)
		return
	}
	m, ok := s.podMetrics(pod)
	if !ok {
		writeStatus(w, apierrors.NewNotFound(metricsv1beta1.Resource("pods"), pod.Name))
		return
	}
	m.TypeMeta = typeMeta("PodMetrics")
	writeJSON(w, http.StatusOK, &m)
}

// podMetrics reports a running pod's usage, all of it on its first container.
func (s *metricsServer) podMetrics(pod *corev1.Pod) (metricsv1beta1.PodMetrics, bool) {
	cpu, ok := s.lookup(pod.Namespace, pod.Name)
	if !ok || pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
		return metricsv1beta1.PodMetrics{}, false
	}
	now := metav1.Now()
	m := metricsv1beta1.PodMetrics{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, Labels: pod.Labels, CreationTimestamp: now},
		Timestamp:  now,
		Window:     metav1.Duration{Duration: metricsWindow},
	}
	for i, c := range pod.Spec.Containers {
		milli := int64(0)
		if i == 0 {
			milli = cpu
		}
		m.Containers = append(m.Containers, metricsv1beta1.ContainerMetrics{Name: c.Name, Usage: corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(milli, resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(defaultMemory, resource.BinarySI),
		}})
	}
	return m, true
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{Kind: kind, APIVersion: metricsGroupV}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeStatus(w http.ResponseWriter, err error) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		status = apierrors.NewInternalError(err)
	}
	st := status.Status()
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	writeJSON(w, int(st.Code), &st)
}

// selfSignedCert makes the serving certificate; the APIService skips its
// verification, the connection never leaves the machine.
func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating a key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: metricsService},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating a certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
