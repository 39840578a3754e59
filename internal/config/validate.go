package config

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // prewarm timezones must resolve on hosts without zoneinfo

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/aideploy/aideploy/internal/validate"
)

var (
	dnsLabel   = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	secretLike = regexp.MustCompile(`(?i)(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL)`)
	cudaVer    = regexp.MustCompile(`^\d+\.\d+(\.\d+)?$`)
	// dnsSubdomain is a Kubernetes object name (RFC 1123 subdomain).
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
)

// DTypes are the weight precisions aideploy knows the size of.
var DTypes = []string{"fp32", "fp16", "bf16", "fp8", "int8", "int4"}

// Validate records every problem of the whole file; it does no I/O.
func (c *Config) Validate(errs validate.Errors) {
	if c.APIVersion != APIVersion {
		errs.Addf("apiVersion", "(%q) must be %q", c.APIVersion, APIVersion)
	}
	switch {
	case c.Name == "":
		errs.Addf("name", "is required: a lower-case DNS label such as chat")
	case len(c.Name) > 50 || !dnsLabel.MatchString(c.Name):
		errs.Addf("name", "(%q) must be a lower-case DNS label of at most 50 characters: letters, digits and '-', starting with a letter", c.Name)
	}
	errs.OneOf("server", c.Server, Servers...)
	validateImage(errs, "image", c.Image)
	if c.APIKey != nil {
		c.validateAPIKey(errs.At("apiKey"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs.Addf("port", "(%d) must be between 1 and 65535", c.Port)
	}
	validatePath(errs, "health.path", c.Health.Path)
	validatePath(errs, "health.readyPath", c.Health.ReadyPath)
	c.Model.validate(errs.At("model"))
	c.Resources.validate(errs.At("resources"))
	errs.NonNegative("replicas", c.Replicas)
	c.Autoscaling.validate(errs.At("autoscaling"), c.Preset().BusyMetric, c.Gateway.OnKubernetes())
	if c.Startup.Budget <= 0 {
		errs.Addf("startup.budget", "(%s) must be positive, e.g. 10m for a large model", c.Startup.Budget)
	}
	if c.Startup.ColdStart < 0 {
		errs.Addf("startup.coldStart", "(%s) must not be negative", c.Startup.ColdStart)
	}
	if !cudaVer.MatchString(c.Build.CUDAVersion) {
		errs.Addf("build.cudaVersion", "(%q) must be a CUDA version such as 12.4.1", c.Build.CUDAVersion)
	}
	if c.Build.BaseImage != "" {
		validateImage(errs, "build.baseImage", c.Build.BaseImage)
	}
	if c.Preset().Dockerfile && len(c.Build.Command) == 0 && len(c.Args) == 0 {
		errs.Addf("build.command", "is required: the command that starts the model server")
	}
	seen := map[string]bool{}
	for i, e := range c.Env {
		e.validate(errs.At("env").At("["+strconv.Itoa(i)+"]"), seen)
	}
	c.Gateway.Validate(errs.At("gateway"))
	c.Rollout.Validate(errs.At("rollout"))
	names := map[string]bool{}
	for i, p := range c.Prewarm {
		p.validate(errs.At("prewarm").At("["+strconv.Itoa(i)+"]"), names, c.Autoscaling)
	}
}

func validateImage(errs validate.Errors, path, image string) {
	if image == "" {
		errs.Addf(path, "is required, as repository:tag, e.g. registry.example.com/chat:1.0.0")
		return
	}
	if strings.ContainsAny(image, " \t") {
		errs.Addf(path, "(%q) must not contain spaces", image)
		return
	}
	if strings.Contains(image, "@sha256:") {
		return
	}
	repo, tag := image, ""
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		repo, tag = image[:i], image[i+1:]
	}
	switch {
	case tag == "":
		errs.Addf(path, "(%q) has no tag; pin a version such as %s:1.0.0 so every replica and rollback runs the same build", image, repo)
	case tag == "latest":
		errs.Addf(path, "(%q) uses the tag latest; pin a version such as %s:1.0.0 so every replica and rollback runs the same build", image, repo)
	}
}

func validatePath(errs validate.Errors, path, v string) {
	if !strings.HasPrefix(v, "/") {
		errs.Addf(path, "(%q) must be an HTTP path starting with /", v)
	}
}

// The kinds of model.volume.
const (
	VolumePVC      = "pvc"
	VolumeEmptyDir = "emptyDir"
	VolumeHostPath = "hostPath"
	VolumeNone     = "none"
)

// Volumes lists the values of model.volume.
var Volumes = []string{VolumePVC, VolumeEmptyDir, VolumeHostPath, VolumeNone}

// AccessModes are the claim access modes a model volume may ask for.
var AccessModes = []string{"ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce", "ReadWriteOncePod"}

func (c *Config) validateAPIKey(errs validate.Errors) {
	if c.Preset().APIKeyEnv == "" {
		errs.Addf("", "is set, but the %s server reads no API key; remove it and protect the model with the gateway's auth (gateway.auth)", c.Server)
		return
	}
	if c.APIKey.SecretRef == nil && c.APIKey.FromEnv == "" {
		errs.Addf("", "needs secretRef (Kubernetes) or fromEnv (Docker), or both")
	}
	if r := c.APIKey.SecretRef; r != nil && (r.Name == "" || r.Key == "") {
		errs.Addf("secretRef", "needs both name and key")
	}
}

func (m Model) validate(errs validate.Errors) {
	if !strings.HasPrefix(m.Path, "/") {
		errs.Addf("path", "(%q) must be an absolute path inside the container", m.Path)
	}
	if !slices.Contains(Volumes, m.Volume) {
		errs.Addf("volume", "(%q) must be one of %s; an existing claim or Docker volume goes in model.claimName", m.Volume, strings.Join(Volumes, ", "))
	}
	switch {
	case m.Volume == VolumeHostPath && !strings.HasPrefix(m.HostPath, "/"):
		errs.Addf("hostPath", "(%q) must be an absolute folder on the host for volume hostPath", m.HostPath)
	case m.Volume != VolumeHostPath && m.HostPath != "":
		errs.Addf("hostPath", "is set but model.volume is %s; set volume: hostPath or remove hostPath", m.Volume)
	}
	if m.ClaimName != "" {
		if m.Volume != VolumePVC {
			errs.Addf("claimName", "is set but model.volume is %s; a claim needs volume: pvc", m.Volume)
		}
		if !dnsSubdomain.MatchString(m.ClaimName) {
			errs.Addf("claimName", "(%q) must be a lower-case DNS name such as llama-weights", m.ClaimName)
		}
	}
	if m.Volume == VolumePVC && m.ClaimName == "" {
		// The claim is rendered: it needs a size, and a mode the API server knows.
		if m.Size <= 0 {
			errs.Addf("size", "(%s) must be positive for the rendered claim, e.g. 100Gi", m.Size)
		}
		errs.OneOf("accessMode", m.AccessMode, AccessModes...)
	}
	if _, err := ParseParams(m.Params); err != nil {
		errs.Addf("params", "%v", err)
	}
	errs.OneOf("dtype", m.DType, DTypes...)
	errs.Positive("contextLength", m.ContextLength)
	errs.Positive("concurrency", m.Concurrency)
	errs.NonNegative("tensorParallel", m.TensorParallel)
}

// ParseParams reads a parameter count such as 8B, 1.5B, 350M or 7000000000.
// A bare number under a million is refused: "8" is almost surely 8B written
// short, and taken as 8 parameters it would size the memory at nothing.
func ParseParams(s string) (float64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	if n, err := strconv.ParseFloat(t, 64); err == nil && n > 0 && n < 1e6 {
		return 0, &paramsError{s: s, bare: true}
	}
	mult := 1.0
	switch {
	case strings.HasSuffix(t, "T"):
		mult, t = 1e12, strings.TrimSuffix(t, "T")
	case strings.HasSuffix(t, "B"):
		mult, t = 1e9, strings.TrimSuffix(t, "B")
	case strings.HasSuffix(t, "M"):
		mult, t = 1e6, strings.TrimSuffix(t, "M")
	case strings.HasSuffix(t, "K"):
		mult, t = 1e3, strings.TrimSuffix(t, "K")
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n <= 0 {
		return 0, &paramsError{s: s}
	}
	return n * mult, nil
}

type paramsError struct {
	s    string
	bare bool // a number without a unit
}

func (e *paramsError) Error() string {
	if e.bare {
		t := strings.TrimSpace(e.s)
		return "(" + strconv.Quote(e.s) + ") needs a unit: " + t + "B for " + t + " billion parameters, " + t + "M for " + t + " million"
	}
	return "(" + strconv.Quote(e.s) + ") must be a parameter count such as 8B, 1.5B or 350M"
}

func (r Resources) validate(errs validate.Errors) {
	for _, q := range []struct{ path, v string }{{"cpu", r.CPU}, {"cpuLimit", r.CPULimit}} {
		if q.v == "" && q.path == "cpuLimit" {
			continue
		}
		if _, err := resource.ParseQuantity(q.v); err != nil {
			errs.Addf(q.path, "(%q) must be a CPU quantity such as 1, 2 or 500m", q.v)
		}
	}
	if r.Memory <= 0 {
		errs.Addf("memory", "(%s) must be positive, e.g. 16Gi", r.Memory)
	}
	if r.MemoryLimit != 0 && r.MemoryLimit < r.Memory {
		errs.Addf("memoryLimit", "(%s) is below resources.memory (%s)", r.MemoryLimit, r.Memory)
	}
	errs.NonNegative("gpus", r.GPUs)
}

func (a Autoscaling) validate(errs validate.Errors, busyMetric string, gatewayOnK8s bool) {
	if !a.Enabled {
		return
	}
	errs.OneOf("engine", a.Engine, Engines...)
	keda := a.Engine == EngineKEDA
	if keda {
		if !gatewayOnK8s {
			errs.Addf("engine", "(keda) scales on the gateway's metrics, but gateway.enabled is false; enable the gateway or use engine hpa")
		}
		if u, err := url.Parse(a.PrometheusURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs.Addf("prometheusURL", "(%q) must be the http(s) URL of the Prometheus that scrapes the gateway, e.g. %s", a.PrometheusURL, DefaultPrometheusURL)
		}
	} else {
		if a.QueueDepth != 0 {
			errs.Addf("queueDepth", "(%d) is read from the gateway's metrics through KEDA; set autoscaling.engine: keda or remove it", a.QueueDepth)
		}
		if a.TimeToFirstToken != 0 {
			errs.Addf("timeToFirstToken", "(%s) is read from the gateway's metrics through KEDA; set autoscaling.engine: keda or remove it", a.TimeToFirstToken)
		}
	}
	errs.NonNegative("queueDepth", a.QueueDepth)
	if a.TimeToFirstToken < 0 {
		errs.Addf("timeToFirstToken", "(%s) must not be negative", a.TimeToFirstToken)
	}
	errs.Positive("minReplicas", a.MinReplicas)
	if a.MaxReplicas < a.MinReplicas {
		errs.Addf("maxReplicas", "(%d) is below autoscaling.minReplicas (%d)", a.MaxReplicas, a.MinReplicas)
	}
	for _, t := range []struct {
		path string
		v    int
	}{{"cpuTarget", a.CPUTarget}, {"memoryTarget", a.MemoryTarget}} {
		if t.v < 0 || t.v > 100 {
			errs.Addf(t.path, "(%d) must be a percentage between 1 and 100, or 0 to disable it", t.v)
		}
	}
	errs.NonNegative("requestsPerSecond", a.RequestsPerSecond)
	errs.NonNegative("requestsInFlight", a.RequestsInFlight)
	if a.RequestsInFlight > 0 && busyMetric == "" && !keda {
		errs.Addf("requestsInFlight", "(%d) needs a server that counts its running requests (vllm, tgi), or autoscaling.engine: keda, which counts them at the gateway; use requestsPerSecond or cpuTarget", a.RequestsInFlight)
	}
	if a.CPUTarget == 0 && a.MemoryTarget == 0 && a.RequestsPerSecond == 0 && a.RequestsInFlight == 0 && a.QueueDepth == 0 && a.TimeToFirstToken == 0 {
		errs.Addf("cpuTarget", "is 0 and so are memoryTarget, requestsPerSecond, requestsInFlight, queueDepth and timeToFirstToken; set at least one target or disable autoscaling")
	}
	for _, r := range []struct {
		path string
		rule ScalingRule
	}{{"scaleUp", a.ScaleUp}, {"scaleDown", a.ScaleDown}} {
		if r.rule.Percent < 1 || r.rule.Percent > 1000 {
			errs.Addf(r.path+".percent", "(%d) must be between 1 and 1000", r.rule.Percent)
		}
		if r.rule.Period < units1s || r.rule.Period > units30m {
			errs.Addf(r.path+".period", "(%s) must be between 1s and 30m", r.rule.Period)
		}
		if r.rule.StabilizationWindow < 0 || r.rule.StabilizationWindow > units1h {
			errs.Addf(r.path+".stabilizationWindow", "(%s) must be between 0s and 1h", r.rule.StabilizationWindow)
		}
	}
}

func (e EnvVar) validate(errs validate.Errors, seen map[string]bool) {
	if !envName.MatchString(e.Name) {
		errs.Addf("name", "(%q) must be a variable name: letters, digits and _", e.Name)
	}
	if seen[e.Name] {
		errs.Addf("name", "(%q) is set twice", e.Name)
	}
	seen[e.Name] = true
	sources := 0
	if e.Value != "" {
		sources++
	}
	if e.SecretRef != nil {
		sources++
		if e.SecretRef.Name == "" || e.SecretRef.Key == "" {
			errs.Addf("secretRef", "needs both name and key")
		}
	}
	if e.FromEnv != "" {
		sources++
	}
	if sources > 1 && !(e.SecretRef != nil && e.FromEnv != "" && e.Value == "") {
		errs.Addf("value", "is given together with secretRef or fromEnv; use one source")
	}
	if e.Value != "" && secretLike.MatchString(e.Name) {
		errs.Addf("value", "holds what looks like a secret (%s); never write secrets in aideploy.yaml: use secretRef (Kubernetes) and fromEnv (Docker)", e.Name)
	}
}

// PrewarmTimeLayouts are the accepted forms of prewarm start and end.
var PrewarmTimeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04"}

// ParsePrewarmTime reads a wall-clock time in the event's timezone.
func ParsePrewarmTime(s string, loc *time.Location) (time.Time, bool) {
	for _, l := range PrewarmTimeLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, true
		}
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// Location returns the event's timezone, UTC when unset.
func (p PrewarmEvent) Location() (*time.Location, error) {
	if p.Timezone == "" {
		return time.UTC, nil
	}
	return time.LoadLocation(p.Timezone)
}

func (p PrewarmEvent) validate(errs validate.Errors, names map[string]bool, a Autoscaling) {
	if !dnsLabel.MatchString(p.Name) || len(p.Name) > 40 {
		errs.Addf("name", "(%q) must be a lower-case DNS label of at most 40 characters", p.Name)
	}
	if names[p.Name] {
		errs.Addf("name", "(%q) is used by another prewarm event", p.Name)
	}
	names[p.Name] = true
	loc, err := p.Location()
	if err != nil {
		errs.Addf("timezone", "(%q) is not an IANA timezone such as Asia/Shanghai or Europe/Berlin", p.Timezone)
		loc = time.UTC
	}
	start, okStart := ParsePrewarmTime(p.Start, loc)
	if !okStart {
		errs.Addf("start", "(%q) must be a time such as 2026-12-31T23:30", p.Start)
	}
	end, okEnd := ParsePrewarmTime(p.End, loc)
	if !okEnd {
		errs.Addf("end", "(%q) must be a time such as 2027-01-01T03:00", p.End)
	}
	if okStart && okEnd && !end.After(start) {
		errs.Addf("end", "(%s) must be after prewarm start (%s)", p.End, p.Start)
	}
	errs.Positive("replicas", p.Replicas)
	if a.Enabled && p.Replicas > 0 && p.Replicas < a.MinReplicas {
		errs.Addf("replicas", "(%d) is below autoscaling.minReplicas (%d); a prewarm only raises the floor", p.Replicas, a.MinReplicas)
	}
}
