package k8s

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// gatewayPod is one ready gateway pod, reached through the API server's pod proxy.
type gatewayPod struct {
	name  string
	admin *adminapi.Client
}

// trafficMode says, once per platform, whether the gateway moves traffic.
func (p *Platform) trafficMode(ctx context.Context) (TrafficView, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.traffic != nil {
		return *p.traffic, nil
	}
	v, err := p.c.ReadTraffic(ctx, p.name, p.o.Config.Gateway.OnKubernetes())
	if err != nil {
		return v, err
	}
	p.traffic = &v
	if v.Note != "" {
		p.logf("traffic: %s", v)
	}
	return v, nil
}

// gatewayPods lists the ready pods of the gateway's Deployment with an admin
// client each. The token is the one the Deployment hands its pods, from its
// Secret; the API server's pod proxy carries the calls, so they work from
// wherever kubectl does, and TokenInHeader, since the proxy keeps the
// Authorization header for itself.
func (p *Platform) gatewayPods(ctx context.Context) ([]gatewayPod, error) {
	name := GatewayName(p.name)
	token, err := p.gatewayToken(ctx)
	if err != nil {
		return nil, err
	}
	hc, err := p.proxyHTTP()
	if err != nil {
		return nil, err
	}
	pods, err := p.c.Clientset.CoreV1().Pods(p.c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelName + "=" + name})
	if err != nil {
		return nil, fmt.Errorf("listing the gateway's pods: %w", err)
	}
	var out []gatewayPod
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp != nil || !podReady(pod) {
			continue
		}
		port := containerPort(pod.Spec.Containers, "admin")
		if port == 0 {
			return nil, fmt.Errorf("gateway pod %s has no container port named admin; apply the gateway's Deployment again (aideploy apply)", pod.Name)
		}
		base := p.c.Clientset.CoreV1().RESTClient().Get().Namespace(p.c.Namespace).Resource("pods").
			Name("http:" + pod.Name + ":" + strconv.Itoa(int(port))).SubResource("proxy").URL()
		out = append(out, gatewayPod{name: pod.Name, admin: &adminapi.Client{
			BaseURL: strings.TrimRight(base.String(), "/"), Token: token, TokenInHeader: true, HTTP: hc}})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].name < out[b].name })
	if len(out) == 0 {
		return nil, fmt.Errorf("no pod of the gateway's Deployment %s is ready, so traffic cannot be switched; see kubectl get pods -n %s -l %s=%s",
			name, p.c.Namespace, LabelName, name)
	}
	return out, nil
}

// gatewayToken reads the admin token once per platform: the watch window
// reads the gateway's figures twice a second.
func (p *Platform) gatewayToken(ctx context.Context) (string, error) {
	p.mu.Lock()
	tok := p.token
	p.mu.Unlock()
	if tok != "" {
		return tok, nil
	}
	name := GatewayName(p.name)
	dep, err := p.c.Clientset.AppsV1().Deployments(p.c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading the gateway's Deployment %s: %w", name, err)
	}
	if tok, err = p.adminToken(ctx, dep.Spec.Template.Spec.Containers); err != nil {
		return "", err
	}
	p.mu.Lock()
	p.token = tok
	p.mu.Unlock()
	return tok, nil
}

// adminToken reads the admin token the gateway container gets through AIDEPLOY_ADMIN_TOKEN.
func (p *Platform) adminToken(ctx context.Context, cs []corev1.Container) (string, error) {
	secret, key := GatewayName(p.name)+"-admin", "token"
	for _, c := range cs {
		for _, e := range c.Env {
			if e.Name == adminapi.TokenEnv && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				secret, key = e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key
			}
		}
	}
	s, err := p.c.Clientset.CoreV1().Secrets(p.c.Namespace).Get(ctx, secret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("the gateway's admin token Secret %s does not exist; create it with kubectl create secret generic %s -n %s --from-literal=%s=\"$(openssl rand -hex 32)\"",
			secret, secret, p.c.Namespace, key)
	}
	if err != nil {
		return "", fmt.Errorf("reading the gateway's admin token (Secret %s): %w", secret, err)
	}
	tok := strings.TrimSpace(string(s.Data[key]))
	if tok == "" {
		return "", fmt.Errorf("the gateway's admin token Secret %s has no key %q", secret, key)
	}
	return tok, nil
}

// proxyHTTP is the HTTP client of the API server connection, made once.
func (p *Platform) proxyHTTP() (*http.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proxy != nil {
		return p.proxy, nil
	}
	if p.c.REST == nil {
		return nil, fmt.Errorf("no API server connection to reach the gateway pods through")
	}
	hc, err := rest.HTTPClientFor(p.c.REST)
	if err != nil {
		return nil, fmt.Errorf("building a client for the API server's pod proxy: %w", err)
	}
	p.proxy = hc
	return hc, nil
}

func containerPort(cs []corev1.Container, name string) int32 {
	for _, c := range cs {
		for _, port := range c.Ports {
			if port.Name == name {
				return port.ContainerPort
			}
		}
	}
	return 0
}

// A switch through the gateway points the default pool of every ready
// gateway pod at colour to's headless Service. prepareGateway first waits
// until that Service lists every ready pod of to, and asks every gateway pod
// whether it answers (the pod proxy, the token, the pool), so that a pod that
// cannot be reached stops the switch before anything moved. flipGateway then
// swaps all gateway pods at once, each atomically once it has health-checked
// every pod of to, draining what leaves its pool, while Switch points the
// gateway's ConfigMap at to (for gateway pods that start later) and moves the
// Service selector and the HPA. Between the first and the last pod's swap
// (the time one health check takes, milliseconds) a client whose requests
// land on different gateway pods may get answers of both colours; each
// gateway pod itself moves once.

// prepareGateway readies a switch to to and returns the gateway pods and the
// health gate's timeout.
func (p *Platform) prepareGateway(ctx context.Context, to rollout.Deployment) ([]gatewayPod, time.Duration, error) {
	pods, err := p.gatewayPods(ctx)
	if err != nil {
		return nil, 0, err
	}
	hc := p.o.Config.Rollout.HealthCheck
	gate := max(3*hc.Timeout.D(), 10*time.Second)
	if err := p.waitEndpoints(ctx, to, gate); err != nil {
		return nil, 0, err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, gp := range pods {
		g.Go(func() error {
			if _, err := gp.admin.Pool(gctx, adminapi.DefaultPool); err != nil {
				return fmt.Errorf("gateway pod %s: %w", gp.name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, fmt.Errorf("preparing the switch to %s, nothing switched: %w", to, err)
	}
	return pods, gate, nil
}

// pointGatewayConfig makes the gateway's ConfigMap send the default pool to to.
func (p *Platform) pointGatewayConfig(ctx context.Context, to rollout.Deployment) error {
	objs, err := GatewayManifests(p.o.Config, p.o.Source, to.Color)
	if err != nil {
		return err
	}
	cm := pick(objs, func(o *unstructured.Unstructured) bool {
		return o.GetKind() == "ConfigMap" && o.GetName() == GatewayName(p.name)
	})
	if _, err := p.c.Apply(ctx, cm, false); err != nil {
		return fmt.Errorf("pointing the gateway's ConfigMap at %s: %w", to, err)
	}
	return nil
}

// flipGateway swaps every gateway pod's default pool to to at once.
func (p *Platform) flipGateway(ctx context.Context, to rollout.Deployment, pods []gatewayPod, gate time.Duration) error {
	target := GatewayTarget(p.o.Config, to.Color)
	req := adminapi.ReplaceTargets{
		Targets:       []adminapi.Target{{URL: target, Weight: 1}},
		HealthTimeout: units.Duration(gate),
		Drain:         true,
		DrainTimeout:  p.o.Config.Rollout.DrainTimeout,
	}
	var mu sync.Mutex
	var switched []string
	var first, last time.Time
	p.mu.Lock()
	p.flipped = time.Now()
	p.mu.Unlock()
	g, gctx := errgroup.WithContext(ctx)
	for _, gp := range pods {
		g.Go(func() error {
			if _, err := gp.admin.ReplaceTargets(gctx, adminapi.DefaultPool, req); err != nil {
				return fmt.Errorf("gateway pod %s: %w", gp.name, err)
			}
			mu.Lock()
			defer mu.Unlock()
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			last = now
			switched = append(switched, gp.name)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		sort.Strings(switched)
		which := ""
		if len(switched) > 0 {
			which = ": " + strings.Join(switched, ", ")
		}
		return fmt.Errorf("switching the gateway to %s (%d of %d pods switched%s): %w", target, len(switched), len(pods), which, err)
	}
	p.logf("gateway: %d pod(s) send the default pool to %s (swaps %s apart, drained)", len(pods), target, last.Sub(first).Round(time.Millisecond))
	return nil
}

// gatewayStats sums what every gateway pod saw of the targets now in its
// default pool (the serving colour's pods) over the window: requests and
// errors added up, the worst pod's p99. Draining targets, the colour that
// left, count neither as targets nor in the figures. The window reaches back
// to this platform's last swap, since the watch starts once the switch step
// ends and what the colour answered from the swap on counts too, plus one
// second: the gateway counts by wall-clock second and a window of 0.6 s
// would read only the current one. The targets in the pool are the new
// colour's, which took no traffic before the swap, so the second added
// brings in nothing of another colour.
func (p *Platform) gatewayStats(ctx context.Context, window time.Duration) (rollout.Stats, error) {
	p.mu.Lock()
	if !p.flipped.IsZero() {
		window = max(window, time.Since(p.flipped))
	}
	p.mu.Unlock()
	window += time.Second
	pods, err := p.gatewayPods(ctx)
	if err != nil {
		return rollout.Stats{}, err
	}
	per := make([]rollout.Stats, len(pods))
	g, gctx := errgroup.WithContext(ctx)
	for i, gp := range pods {
		g.Go(func() error {
			pool, err := gp.admin.Pool(gctx, adminapi.DefaultPool)
			if err != nil {
				return fmt.Errorf("reading the pool of gateway pod %s: %w", gp.name, err)
			}
			st, err := gp.admin.Stats(gctx, adminapi.DefaultPool, window)
			if err != nil {
				return fmt.Errorf("reading the stats of gateway pod %s: %w", gp.name, err)
			}
			per[i] = poolStats(pool, st)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rollout.Stats{}, err
	}
	var out rollout.Stats
	for _, s := range per {
		out.Requests += s.Requests
		out.Errors += s.Errors
		out.P99 = max(out.P99, s.P99)
		out.TTFTP95 = max(out.TTFTP95, s.TTFTP95) // the worst gateway pod's
		out.Targets += s.Targets
		out.Unhealthy += s.Unhealthy
	}
	return out, nil
}

// poolStats is one gateway pod's view of the targets that serve in its pool.
func poolStats(pool adminapi.Pool, st adminapi.Stats) rollout.Stats {
	var out rollout.Stats
	serving := map[string]bool{}
	for _, t := range pool.Targets {
		if t.Draining {
			continue
		}
		serving[t.URL] = true
		out.Targets++
		if !t.Healthy || t.Breaker == "open" {
			out.Unhealthy++
		}
	}
	for _, t := range st.ByTarget {
		if !serving[t.URL] {
			continue
		}
		out.Requests += t.Requests
		out.Errors += t.Errors
		out.P99 = max(out.P99, time.Duration(t.P99Seconds*float64(time.Second)))
	}
	out.TTFTP95 = time.Duration(st.TTFTP95Seconds(pool.ServingGroups()) * float64(time.Second))
	return out
}

// drainGateway waits, in every gateway pod, until no target on one of d's
// pods has requests in flight. The switch drains what it removes already;
// this catches a pod of d that a gateway's pool still holds.
func (p *Platform) drainGateway(ctx context.Context, d rollout.Deployment, timeout time.Duration) error {
	sel := LabelName + "=" + p.name + "," + LabelColor + "=" + string(d.Color)
	list, err := p.c.Clientset.CoreV1().Pods(p.c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("listing the pods of %s to drain: %w", d, err)
	}
	ips := map[string]bool{}
	for i := range list.Items {
		if ip := list.Items[i].Status.PodIP; ip != "" {
			ips[ip] = true
		}
	}
	if len(ips) == 0 {
		return nil
	}
	pods, err := p.gatewayPods(ctx)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, gp := range pods {
		g.Go(func() error {
			pool, err := gp.admin.Pool(gctx, adminapi.DefaultPool)
			if err != nil {
				return fmt.Errorf("reading the pool of gateway pod %s: %w", gp.name, err)
			}
			for _, t := range pool.Targets {
				u, err := url.Parse(t.URL)
				if err != nil || !ips[u.Hostname()] {
					continue
				}
				r, err := gp.admin.Drain(gctx, adminapi.DefaultPool, adminapi.Drain{URL: t.URL, Timeout: units.Duration(timeout)})
				if err != nil {
					return fmt.Errorf("draining %s in gateway pod %s: %w", t.URL, gp.name, err)
				}
				if !r.Drained {
					return fmt.Errorf("%s still had %d request(s) in flight in gateway pod %s after %s (rollout.drainTimeout)", t.URL, r.Remaining, gp.name, timeout)
				}
			}
			return nil
		})
	}
	return g.Wait()
}
