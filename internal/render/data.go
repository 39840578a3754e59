package render

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/rollout"
)

// renderData is everything the templates read. Templates only place values;
// every decision (defaults, derived sizes, quoting) is made here.
type renderData struct {
	Cfg    *config.Config
	Source string // the config file as the headers name it, slash-separated
	Header string // the generated-by line, without comment marker

	Name       string
	Image      string
	Version    string   // image tag when it is a valid label value, else empty
	Labels     []string // Kubernetes labels as "key: value" lines
	Port       int
	GPUs       int
	GPUProduct string

	BaseImage     string
	Python        string
	CommandJSON   string // exec-form command as a JSON array
	StartPeriod   string // Docker duration: the startup budget
	BudgetSeconds int64

	// Startup probe: period × failureThreshold covers the startup budget.
	StartupPeriod    int64
	StartupThreshold int64
	ProgressDeadline int64

	// Termination: a preStop pause of rollout.preStopDelay, then
	// rollout.drainTimeout for the longest generation in flight.
	PreStopSeconds int64
	GraceSeconds   int64

	CPU, CPULimit             string // Kubernetes quantities
	Memory, MemoryLimit       string // Kubernetes quantities
	ComposeMem, ComposeMemLi  string // docker sizes: 16g, 512m (binary multiples) or bytes
	ComposeCPUs, ComposeCPULi string // decimal cores for compose

	Replicas int
	// HPA is the HorizontalPodAutoscaler (autoscaling.engine hpa), KEDA the
	// ScaledObject (engine keda); at most one is set.
	HPA  *hpaData
	KEDA *kedaData

	Server     string
	Preset     config.Preset
	ArgsJSON   string // container args as a JSON array; empty keeps the image's CMD
	Dockerfile bool   // the image is built from the rendered Dockerfile
	// HealthTestJSON is compose's healthcheck test: a tool the image has.
	HealthTestJSON string

	ModelPath      string
	ModelKind      string // model.volume: pvc, emptyDir, hostPath or none
	ModelHostPath  string // hostPath: compose bind mount source, Kubernetes hostPath
	ModelVolume    string // pvc: compose named volume and Kubernetes claim
	ExternalVolume bool   // the claim was named in the config, so it exists already
	ModelReadOnly  bool   // custom reads weights; a preset writes its download cache
	Claim          *claimData

	ShmSize     string // compose shm_size; empty leaves the runtime's default
	ShmQuantity string // Kubernetes sizeLimit of the memory-backed /dev/shm

	Env []envData

	Gateway gatewayData
	// K8sGateway is the gateway's own Deployment on Kubernetes; nil with gateway.enabled: false.
	K8sGateway *k8sGatewayData
	// GatewaySD: Prometheus finds the gateway pods through the Kubernetes API
	// (rollout.target k8s with the gateway on), not on the admin address.
	GatewaySD bool

	ConfigMount string // compose bind source of aideploy.yaml, relative to compose.yaml

	Alerts []alertRule
	Panels []panel
}

// claimData is the rendered PersistentVolumeClaim of the model volume.
type claimData struct {
	Size         string
	StorageClass string
	AccessMode   string
}

// envData is one variable, quoted for each target.
type envData struct {
	Name         string
	Value        string // YAML-quoted plain value; empty when from a secret
	ComposeValue string // YAML-quoted compose value: plain ($ escaped) or ${VAR:?...}
	SecretName   string
	SecretKey    string
	Optional     bool // the secret may be missing (a token only gated models need)
}

// gatewayData is what the rendered files need of aideploy's gateway.
type gatewayData struct {
	Image        string
	Service      string // compose service name
	Listen       string
	ListenPort   int
	Admin        string
	AdminPort    int
	RedisURL     string
	RedisService string // compose service name, the host of RedisURL
	RedisPort    int
	// StreamTimeout bounds one generation at the edge (nginx proxy_read_timeout).
	StreamTimeout string
	// Memory is the gateway container's memory limit (docker size): its L1
	// cache plus room for requests and open streams. The gateway sets
	// GOMEMLIMIT to 90% of it.
	Memory string
}

// What the compose file fixes about the gateway container; its ports come
// from gateway.listen and gateway.adminListen in aideploy.yaml.
const (
	gatewayRedisURL      = "redis://redis:6379/0" // used when gateway.redisURL is empty
	gatewayMemoryRoom    = 512 << 20              // beyond the L1: measured about 200 MiB, plus 300 MiB for 5,000 open streams
	gatewayService       = "gateway"
	gatewayStreamTimeout = "600s"
	gatewayConfigPath    = "/etc/aideploy/aideploy.yaml"
)

const (
	startupProbePeriod  = 10 // seconds between startup probes
	minProgressDeadline = 600
)

var labelValue = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

func newRenderData(cfg *config.Config, source, version string) (*renderData, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: no configuration", ErrConfig)
	}
	if source == "" {
		source = config.DefaultFile
	}
	source = path.Clean(strings.ReplaceAll(source, `\`, "/"))
	d := &renderData{
		Cfg:        cfg,
		Source:     source,
		Header:     fmt.Sprintf("Generated by aideploy from %s — edit %s and run aideploy render", source, source),
		Name:       cfg.Name,
		Image:      cfg.Image,
		Port:       cfg.Port,
		GPUs:       cfg.Resources.GPUs,
		GPUProduct: cfg.Resources.GPUProduct,
		Python:     cfg.Build.PythonVersion,
		Replicas:   cfg.Replicas,
		ModelPath:  cfg.Model.Path,
		Server:     cfg.Server,
		Preset:     cfg.Preset(),
	}
	d.Dockerfile = d.Preset.Dockerfile
	d.HealthTestJSON = toJSON(healthTest(cfg))
	if len(cfg.Args) > 0 {
		d.ArgsJSON = toJSON(cfg.Args)
	}
	if tag := imageTag(cfg.Image); labelValue.MatchString(tag) {
		d.Version = tag
	}
	d.Labels = []string{"app.kubernetes.io/name: " + cfg.Name}
	if d.Version != "" {
		d.Labels = append(d.Labels, "app.kubernetes.io/version: "+quote(d.Version))
	}
	d.Labels = append(d.Labels, "app.kubernetes.io/component: model-server", "app.kubernetes.io/managed-by: aideploy")
	d.BaseImage = cfg.Build.BaseImage
	if d.BaseImage == "" {
		d.BaseImage = "nvidia/cuda:" + cfg.Build.CUDAVersion + "-runtime-ubuntu22.04"
	}
	d.CommandJSON = toJSON(cfg.Build.Command)

	budget := cfg.Startup.Budget.Seconds()
	d.BudgetSeconds = budget
	d.StartPeriod = cfg.Startup.Budget.String()
	d.StartupPeriod = startupProbePeriod
	d.StartupThreshold = max(1, (budget+startupProbePeriod-1)/startupProbePeriod)
	d.ProgressDeadline = max(minProgressDeadline, 2*budget)
	d.PreStopSeconds = ceilSeconds(cfg.Rollout.PreStopDelay.D())
	d.GraceSeconds = ceilSeconds(cfg.Rollout.PreStopDelay.D() + cfg.Rollout.DrainTimeout.D())

	if err := d.setResources(cfg.Resources); err != nil {
		return nil, err
	}
	if err := d.setAutoscaling(cfg); err != nil {
		return nil, err
	}

	d.setModelVolume(cfg)
	if shm := cfg.Resources.SharedMemory; shm > 0 {
		d.ShmSize, d.ShmQuantity = dockerBytes(int64(shm)), shm.String()
	}
	for _, e := range cfg.ServerEnv() {
		d.Env = append(d.Env, newEnvData(cfg.Name, e))
	}

	gw, err := newGatewayData(cfg, version)
	if err != nil {
		return nil, err
	}
	d.Gateway = gw
	if d.K8sGateway, err = newK8sGatewayData(cfg, d); err != nil {
		return nil, err
	}
	d.GatewaySD = d.K8sGateway != nil && cfg.Rollout.Target == rollout.TargetK8s
	if cfg.Name == gw.Service || cfg.Name == gw.RedisService {
		return nil, fmt.Errorf("%w: name (%q) is also the name of aideploy's own %s service in compose.yaml; choose another name", ErrConfig, cfg.Name, cfg.Name)
	}
	d.ConfigMount = source
	if !strings.HasPrefix(source, ".") && !strings.HasPrefix(source, "/") {
		d.ConfigMount = "./" + source
	}
	d.Alerts = alertRules(d)
	d.Panels = dashboardPanels(d)
	return d, nil
}

// healthTest probes the liveness path with what the image ships: curl in
// aideploy's Dockerfile, Python in the vLLM and TGI images, the ollama
// client (which asks the server) in Ollama's.
func healthTest(cfg *config.Config) []string {
	url := "http://127.0.0.1:" + strconv.Itoa(cfg.Port) + cfg.Health.Path
	switch cfg.Server {
	case config.ServerVLLM, config.ServerTGI:
		return []string{"CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen(" + quote(url) + ", timeout=5)"}
	case config.ServerOllama:
		return []string{"CMD", "ollama", "list"}
	}
	return []string{"CMD", "curl", "-fsS", url}
}

func (d *renderData) setModelVolume(cfg *config.Config) {
	m := cfg.Model
	d.ModelKind = m.Volume
	d.ModelHostPath = m.HostPath
	d.ModelReadOnly = d.Preset.Dockerfile
	d.ModelVolume = m.ClaimName
	d.ExternalVolume = m.ClaimName != ""
	if d.ModelVolume == "" {
		d.ModelVolume = ModelClaimName(cfg)
	}
	if m.Volume == config.VolumePVC && !d.ExternalVolume {
		d.Claim = &claimData{Size: m.Size.String(), StorageClass: m.StorageClass, AccessMode: m.AccessMode}
	}
}

func (d *renderData) setResources(r config.Resources) error {
	cpu, err := resource.ParseQuantity(r.CPU)
	if err != nil {
		return fmt.Errorf("rendering resources.cpu %q: %w", r.CPU, err)
	}
	cpuLimit := cpu.DeepCopy()
	cpuLimit.Add(cpu)
	if r.CPULimit != "" {
		if cpuLimit, err = resource.ParseQuantity(r.CPULimit); err != nil {
			return fmt.Errorf("rendering resources.cpuLimit %q: %w", r.CPULimit, err)
		}
	}
	d.CPU, d.CPULimit = cpu.String(), cpuLimit.String()
	d.ComposeCPUs, d.ComposeCPULi = cores(cpu), cores(cpuLimit)
	mem, memLimit := r.Memory, r.MemoryLimit
	if memLimit == 0 {
		memLimit = 2 * mem
	}
	d.Memory, d.MemoryLimit = mem.String(), memLimit.String()
	d.ComposeMem, d.ComposeMemLi = dockerBytes(int64(mem)), dockerBytes(int64(memLimit))
	return nil
}

// dockerBytes writes a size the way docker reads it: its k, m, g suffixes are
// binary multiples; anything else is plain bytes.
func dockerBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// cores writes a CPU quantity as the decimal number of cores compose expects.
func cores(q resource.Quantity) string {
	return strconv.FormatFloat(float64(q.MilliValue())/1000, 'f', -1, 64)
}

func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return ""
}

// secretName is the Kubernetes Secret that fromEnv-only variables are read from.
func secretName(service string) string { return service + "-env" }

func newEnvData(service string, e config.EnvVar) envData {
	out := envData{Name: e.Name}
	switch {
	case e.SecretRef == nil && e.FromEnv == "":
		out.Value = quote(e.Value)
		out.ComposeValue = quote(strings.ReplaceAll(e.Value, "$", "$$"))
		return out
	case e.SecretRef != nil:
		out.SecretName, out.SecretKey = e.SecretRef.Name, e.SecretRef.Key
	default:
		// Docker reads it from the deploying shell; Kubernetes from a Secret of the same key.
		out.SecretName, out.SecretKey = secretName(service), e.FromEnv
	}
	from := e.FromEnv
	if from == "" {
		from = e.Name
	}
	if e.SecretRef != nil && e.SecretRef.Optional {
		out.Optional = true
		out.ComposeValue = quote(fmt.Sprintf("${%s:-}", from))
		return out
	}
	out.ComposeValue = quote(fmt.Sprintf("${%s:?set %s in the shell that runs docker compose}", from, from))
	return out
}

func newGatewayData(cfg *config.Config, version string) (gatewayData, error) {
	g := gatewayData{
		Image:         "aideploy:" + version,
		Service:       gatewayService,
		Listen:        cfg.Gateway.Listen,
		Admin:         cfg.Gateway.AdminListen,
		RedisURL:      cfg.Gateway.RedisURL,
		StreamTimeout: gatewayStreamTimeout,
	}
	mem := int64(gatewayMemoryRoom)
	if cfg.Gateway.Cache.Enabled {
		mem += int64(cfg.Gateway.Cache.L1MaxBytes)
	}
	g.Memory = dockerBytes(mem)
	if g.RedisURL == "" {
		g.RedisURL = gatewayRedisURL
	}
	var err error
	if g.ListenPort, err = port(g.Listen); err != nil {
		return g, fmt.Errorf("rendering the gateway listen address %q: %w", g.Listen, err)
	}
	if g.AdminPort, err = port(g.Admin); err != nil {
		return g, fmt.Errorf("rendering the gateway admin address %q: %w", g.Admin, err)
	}
	u, err := url.Parse(g.RedisURL)
	if err != nil || u.Hostname() == "" {
		return g, fmt.Errorf("rendering the gateway Redis URL %q: it needs a host", g.RedisURL)
	}
	g.RedisService = u.Hostname()
	g.RedisPort = 6379
	if u.Port() != "" {
		if g.RedisPort, err = strconv.Atoi(u.Port()); err != nil {
			return g, fmt.Errorf("rendering the gateway Redis URL %q: %w", g.RedisURL, err)
		}
	}
	return g, nil
}

func port(hostport string) (int, error) {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > math.MaxUint16 {
		return 0, fmt.Errorf("port %q is not between 1 and 65535", p)
	}
	return n, nil
}

// ceilSeconds rounds d up to whole seconds, as the pod spec counts them.
func ceilSeconds(d time.Duration) int64 { return int64(math.Ceil(d.Seconds())) }

// ModelClaimName is the name of the model volume's claim the manifests render.
func ModelClaimName(cfg *config.Config) string { return cfg.Name + "-models" }
