package rollout

import (
	"time"

	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

// Strategies and targets understood by the rollout settings.
const (
	StrategyBlueGreen = "bluegreen" // two colours, one switch (canary and shadow: canary_config.go)
	TargetDocker      = "docker"    // containers on the local Docker engine
	TargetK8s         = "k8s"       // a Kubernetes cluster

	RetireAuto  = "auto"  // pause unless the service uses GPUs
	RetireStop  = "stop"  // stop: frees memory and GPUs, a rollback restarts the model
	RetirePause = "pause" // pause: a rollback is instant, memory stays held

	CapacityCheck = "check" // refuse a rollout the free GPUs cannot hold
	CapacityWait  = "wait"  // create the pods anyway and wait for a node autoscaler, up to the startup budget
)

// Config holds the rollout settings, found under `rollout:` in aideploy.yaml.
type Config struct {
	// Strategy is how a new version replaces the old one: bluegreen (one switch), canary
	// (growing shares of traffic, judged at each step) or shadow (a mirrored share, judged, then one switch).
	Strategy string `yaml:"strategy" json:"strategy"`
	// Target is the platform that runs the service: docker or k8s.
	Target string `yaml:"target" json:"target"`
	// HealthCheck is how a new replica is probed until it is ready.
	HealthCheck HealthCheck `yaml:"healthCheck" json:"healthCheck"`
	// StartupBudget is how long a new replica may keep loading its model before giving up.
	StartupBudget units.Duration `yaml:"startupBudget" json:"startupBudget"`
	// Warmup is the real request each new replica must answer before it takes traffic.
	Warmup Warmup `yaml:"warmup" json:"warmup"`
	// DrainTimeout is how long in-flight requests and streams of the old colour may run on;
	// size it for the longest generation. On Kubernetes a pod's termination grace period is
	// preStopDelay plus this.
	DrainTimeout units.Duration `yaml:"drainTimeout" json:"drainTimeout"`
	// PreStopDelay is how long a terminating pod keeps serving before its server gets SIGTERM,
	// so that endpoints, kube-proxy and the gateway stop sending to it first (Kubernetes).
	PreStopDelay units.Duration `yaml:"preStopDelay" json:"preStopDelay"`
	// ScaleDownDelay is how long the old colour keeps running after the switch.
	ScaleDownDelay units.Duration `yaml:"scaleDownDelay" json:"scaleDownDelay"`
	// Watch is the window after the switch that can still switch back automatically.
	Watch Watch `yaml:"watch" json:"watch"`
	// KeepRevisions is how many revisions keep their containers (stopped) for an instant rollback.
	KeepRevisions int `yaml:"keepRevisions" json:"keepRevisions"`
	// RetireMode is how the old colour is retired: stop, pause (rollback without a restart,
	// memory stays held) or auto (pause unless the service uses GPUs).
	RetireMode string `yaml:"retireMode" json:"retireMode"`
	// Surge, when above 0, replaces that many replicas at a time instead of doubling the fleet.
	Surge int `yaml:"surge,omitempty" json:"surge,omitempty"`
	// Capacity is what a rollout does when the free GPUs cannot hold the new colour: check refuses
	// before any pod exists; wait creates the pods so a cluster autoscaler or Karpenter adds nodes,
	// and waits for them up to the startup budget (Kubernetes).
	Capacity string `yaml:"capacity,omitempty" json:"capacity,omitempty"`
	// KeepWarm is how long the old colour keeps running, ready for an instant rollback, after the
	// switch (Kubernetes); it is scaled to zero only after it, and a later rollback is a cold start.
	KeepWarm units.Duration `yaml:"keepWarm,omitempty" json:"keepWarm,omitempty"`
	// Canary holds the steps, stickiness and analysis of the canary strategy (the analysis serves shadow too).
	Canary Canary `yaml:"canary" json:"canary"`
	// Shadow holds the mirrored share and its duration of the shadow strategy.
	Shadow ShadowConfig `yaml:"shadow" json:"shadow"`
	// Webhook, when set, receives every rollout event as a JSON POST, retried, never holding the rollout up.
	Webhook string `yaml:"webhook,omitempty" json:"webhook,omitempty"`
}

// HealthCheck says how to probe a replica.
type HealthCheck struct {
	// Path is the HTTP path answered with 2xx when ready and 503 while loading.
	Path string `yaml:"path" json:"path"`
	// Interval is the time between two probes.
	Interval units.Duration `yaml:"interval" json:"interval"`
	// Timeout is how long one probe may take.
	Timeout units.Duration `yaml:"timeout" json:"timeout"`
}

// Warmup is a real inference request sent to every new replica before the switch.
type Warmup struct {
	// Enabled turns the warm-up request on.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Path is the HTTP path of the request, e.g. /v1/chat/completions.
	Path string `yaml:"path" json:"path"`
	// Body is the JSON body sent with POST.
	Body string `yaml:"body" json:"body"`
	// Timeout is how long the warm-up request may take.
	Timeout units.Duration `yaml:"timeout" json:"timeout"`
}

// Watch holds the thresholds checked after the switch.
type Watch struct {
	// Window is how long traffic is watched after the switch; 0 turns the watch off.
	Window units.Duration `yaml:"window" json:"window"`
	// MaxErrorRate is the highest share of failed requests (0.05 = 5%) before switching back.
	MaxErrorRate float64 `yaml:"maxErrorRate" json:"maxErrorRate"`
	// MaxP99 is the highest 99th-percentile latency before switching back; 0 means no limit.
	MaxP99 units.Duration `yaml:"maxP99,omitempty" json:"maxP99,omitempty"`
	// MaxTTFT is the highest 95th-percentile time to first token of the new
	// version's answers, as the gateway measures them, before switching back; 0 means no limit.
	MaxTTFT units.Duration `yaml:"maxTTFT,omitempty" json:"maxTTFT,omitempty"`
	// MinRequests is how many requests the window needs before the error rate counts.
	MinRequests int `yaml:"minRequests" json:"minRequests"`
}

// DefaultWarmupBody is a one-token chat completion, streamed so time to first token shows.
const DefaultWarmupBody = `{"model":"default","messages":[{"role":"user","content":"warm-up"}],"max_tokens":1,"stream":true}`

// Default returns the rollout settings used when aideploy.yaml says nothing.
func Default() Config {
	return Config{
		Strategy: StrategyBlueGreen,
		Target:   TargetDocker,
		HealthCheck: HealthCheck{
			Path:     "/health",
			Interval: units.Duration(time.Second),
			Timeout:  units.Duration(5 * time.Second),
		},
		StartupBudget: units.Duration(10 * time.Minute),
		Warmup: Warmup{
			Enabled: true,
			Path:    "/v1/chat/completions",
			Body:    DefaultWarmupBody,
			Timeout: units.Duration(time.Minute),
		},
		DrainTimeout:   units.Duration(5 * time.Minute),
		PreStopDelay:   units.Duration(10 * time.Second),
		ScaleDownDelay: units.Duration(30 * time.Second),
		Watch: Watch{
			Window:       units.Duration(30 * time.Second),
			MaxErrorRate: 0.05,
			MinRequests:  10,
		},
		KeepRevisions: 2,
		RetireMode:    RetireAuto,
		Capacity:      CapacityCheck,
		Canary:        DefaultCanary(),
		Shadow:        DefaultShadow(),
	}
}

// Validate records every problem with the settings; it does no I/O.
func (c Config) Validate(errs validate.Errors) {
	errs.OneOf("strategy", c.Strategy, StrategyBlueGreen, StrategyCanary, StrategyShadow)
	errs.OneOf("target", c.Target, TargetDocker, TargetK8s)
	hc := errs.At("healthCheck")
	if c.HealthCheck.Path == "" || c.HealthCheck.Path[0] != '/' {
		hc.Addf("path", "(%q) must be an HTTP path starting with /", c.HealthCheck.Path)
	}
	positive(hc, "interval", c.HealthCheck.Interval)
	positive(hc, "timeout", c.HealthCheck.Timeout)
	positive(errs, "startupBudget", c.StartupBudget)
	if c.StartupBudget > 0 && c.StartupBudget < c.HealthCheck.Timeout {
		errs.Addf("startupBudget", "(%s) must be at least healthCheck.timeout (%s)", c.StartupBudget, c.HealthCheck.Timeout)
	}
	if c.Warmup.Enabled {
		w := errs.At("warmup")
		if c.Warmup.Path == "" || c.Warmup.Path[0] != '/' {
			w.Addf("path", "(%q) must be an HTTP path starting with /", c.Warmup.Path)
		}
		positive(w, "timeout", c.Warmup.Timeout)
	}
	nonNegative(errs, "drainTimeout", c.DrainTimeout)
	nonNegative(errs, "preStopDelay", c.PreStopDelay)
	nonNegative(errs, "scaleDownDelay", c.ScaleDownDelay)
	w := errs.At("watch")
	nonNegative(w, "window", c.Watch.Window)
	if c.Watch.MaxErrorRate < 0 || c.Watch.MaxErrorRate > 1 {
		w.Addf("maxErrorRate", "(%g) must be between 0 and 1, e.g. 0.05 for 5%%", c.Watch.MaxErrorRate)
	}
	nonNegative(w, "maxP99", c.Watch.MaxP99)
	nonNegative(w, "maxTTFT", c.Watch.MaxTTFT)
	w.NonNegative("minRequests", c.Watch.MinRequests)
	errs.Positive("keepRevisions", c.KeepRevisions)
	errs.OneOf("retireMode", c.RetireMode, RetireAuto, RetireStop, RetirePause)
	errs.NonNegative("surge", c.Surge)
	if c.Capacity != "" {
		errs.OneOf("capacity", c.Capacity, CapacityCheck, CapacityWait)
	}
	nonNegative(errs, "keepWarm", c.KeepWarm)
	c.validateProgressive(errs)
}

func positive(errs validate.Errors, path string, d units.Duration) {
	if d <= 0 {
		errs.Addf(path, "(%s) must be positive", d)
	}
}

func nonNegative(errs validate.Errors, path string, d units.Duration) {
	if d < 0 {
		errs.Addf(path, "(%s) must not be negative", d)
	}
}
