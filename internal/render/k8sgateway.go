package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
)

// k8sGatewayData is the gateway's own Deployment on Kubernetes: it sits in
// front of the model pods, which it finds through one headless Service per
// colour, and shares its cache and limits through Redis.
type k8sGatewayData struct {
	Name        string   // Deployment, client Service, PDB and HPA: <name>-gateway
	Labels      []string // "key: value" lines
	AdminSecret string   // the Secret holding the admin token under key "token"
	Replicas    int
	MaxReplicas int
	CPUTarget   int
	CPU         string
	Memory      string // request = limit: a gateway is never the pod the kubelet evicts first
	// ConfigYAML is the aideploy.yaml the ConfigMap carries for `gateway serve --config`,
	// indented for a YAML block scalar.
	ConfigYAML string
	// Grace covers the preStop pause plus gateway.shutdownTimeout plus slack.
	Grace    int64
	PreStop  int64 // seconds the pod keeps serving while its endpoint is removed
	Colors   []colorData
	Redis    *k8sRedisData // nil when gateway.redisURL names one
	RedisURL string
	// ConfigHash changes with ConfigYAML, so that applying a new configuration rolls the pods.
	ConfigHash string
	ColorLabel string
	RedisImage string
}

// colorData is the headless Service of one colour's model pods.
type colorData struct {
	Color   string
	Service string
}

// k8sRedisData is the single-replica Redis rendered when gateway.redisURL is empty.
type k8sRedisData struct {
	Name      string
	Labels    []string
	Port      int
	MaxMemory string // redis-server --maxmemory: three quarters of the limit
	Memory    string // the container's request and limit
}

// Names and sizes fixed by the rendered gateway on Kubernetes.
const (
	k8sColorLabel     = "aideploy.dev/color" // the label the rollout puts on each colour's pods
	k8sGatewayPreStop = 5                    // seconds: endpoint removal reaches kube-proxy and ingresses
	k8sRedisMemory    = 512 << 20
	k8sRedisImage     = "redis:7-alpine"
)

// k8sColors are the colours of a blue/green rollout, blue serving first.
var k8sColors = []string{"blue", "green"}

func newK8sGatewayData(cfg *config.Config, d *renderData) (*k8sGatewayData, error) {
	gc := cfg.Gateway
	if !gc.OnKubernetes() {
		return nil, nil
	}
	k := gc.Kubernetes
	g := &k8sGatewayData{
		Name:        cfg.Name + "-gateway",
		AdminSecret: cfg.Name + "-gateway-admin",
		Replicas:    k.Replicas,
		MaxReplicas: k.MaxReplicas,
		CPUTarget:   k.CPUTarget,
		PreStop:     k8sGatewayPreStop,
		ColorLabel:  k8sColorLabel,
		RedisImage:  k8sRedisImage,
		Grace:       k8sGatewayPreStop + gc.ShutdownTimeout.Seconds() + 10,
	}
	cpu, err := resource.ParseQuantity(k.CPU)
	if err != nil {
		return nil, fmt.Errorf("%w: gateway.kubernetes.cpu %q: %v", ErrConfig, k.CPU, err)
	}
	g.CPU = cpu.String()
	mem := int64(gatewayMemoryRoom)
	if gc.Cache.Enabled {
		mem += int64(gc.Cache.L1MaxBytes)
	}
	g.Memory = resource.NewQuantity(mem, resource.BinarySI).String()
	g.Labels = k8sLabels(g.Name, cfg.Name, d.Version, "gateway")
	for _, c := range k8sColors {
		g.Colors = append(g.Colors, colorData{Color: c, Service: cfg.Name + "-" + c})
	}
	g.RedisURL = gc.RedisURL
	if u, err := url.Parse(g.RedisURL); err == nil && u.User != nil {
		return nil, fmt.Errorf("%w: gateway.redisURL carries credentials, which the gateway's ConfigMap would show to anyone who may read ConfigMaps; on Kubernetes use a Redis reached without a password inside the namespace, or set gateway.enabled: false", ErrConfig)
	}
	if g.RedisURL == "" {
		r := &k8sRedisData{Name: cfg.Name + "-redis", Port: 6379,
			Memory: resource.NewQuantity(k8sRedisMemory, resource.BinarySI).String(), MaxMemory: strconv.Itoa(k8sRedisMemory/4*3/(1<<20)) + "mb"}
		r.Labels = k8sLabels(r.Name, cfg.Name, "", "cache")
		g.Redis = r
		g.RedisURL = "redis://" + r.Name + ":" + strconv.Itoa(r.Port) + "/0"
	}
	if g.ConfigYAML, err = k8sGatewayConfig(cfg, d, g); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(g.ConfigYAML))
	g.ConfigHash = hex.EncodeToString(sum[:8])
	for _, n := range []string{g.Name, g.AdminSecret, g.Colors[0].Service, g.Colors[1].Service} {
		if len(n) > 63 {
			return nil, fmt.Errorf("%w: name (%q) is too long for the gateway's objects on Kubernetes (%s has %d characters, at most 63); choose a shorter name", ErrConfig, cfg.Name, n, len(n))
		}
	}
	return g, nil
}

func k8sLabels(name, partOf, version, component string) []string {
	l := []string{"app.kubernetes.io/name: " + name}
	if version != "" {
		l = append(l, "app.kubernetes.io/version: "+quote(version))
	}
	return append(l, "app.kubernetes.io/component: "+component, "app.kubernetes.io/part-of: "+partOf, "app.kubernetes.io/managed-by: aideploy")
}

// k8sGatewayConfig is the aideploy.yaml that the gateway pods read: the
// model's name and image (which every aideploy.yaml needs) and the gateway
// section as `aideploy gateway config` prints it, with what differs in a pod:
// listeners on every interface, the cluster's Redis, and the default pool's
// targets from the serving colour's headless Service.
func k8sGatewayConfig(cfg *config.Config, d *renderData, g *k8sGatewayData) (string, error) {
	gc := cfg.Gateway
	gc.Pools = slices.Clone(gc.Pools)
	gc.Listen = net.JoinHostPort("0.0.0.0", strconv.Itoa(d.Gateway.ListenPort))
	gc.AdminListen = net.JoinHostPort("0.0.0.0", strconv.Itoa(d.Gateway.AdminPort))
	gc.RedisURL = g.RedisURL
	// The token comes from the Secret, through AIDEPLOY_ADMIN_TOKEN.
	gc.AdminTokenFile = ""
	// A short name: the pod's DNS search list completes it in its own namespace,
	// so the same file serves any namespace it is applied to.
	target := upstream.TargetConfig{URL: "dns+http://" + g.Colors[0].Service + ":" + strconv.Itoa(cfg.Port)}
	i := slices.IndexFunc(gc.Pools, func(p upstream.PoolConfig) bool { return p.Name == "default" })
	if i < 0 {
		pc := upstream.PoolConfig{Name: "default"}
		pc.SetDefaults()
		// The model's own readiness path: not every server answers /health (Ollama does not).
		pc.HealthCheck.Path = cfg.Health.ReadyPath
		gc.Pools = append(gc.Pools, pc)
		i = len(gc.Pools) - 1
	}
	gc.Pools[i].Targets = []upstream.TargetConfig{target}
	gc = gc.Effective()
	out, err := yaml.Marshal(struct {
		Name    string         `json:"name"`
		Image   string         `json:"image"`
		Gateway gateway.Config `json:"gateway"`
	}{cfg.Name, cfg.Image, gc})
	if err != nil {
		return "", fmt.Errorf("rendering the gateway's configuration: %w", err)
	}
	return strings.TrimRight(strings.ReplaceAll("    "+string(out), "\n", "\n    "), " "), nil
}
