package gateway

import (
	"regexp"

	"github.com/aideploy/aideploy/internal/validate"
)

// Kubernetes sizes the gateway's own Deployment that `aideploy render k8s`
// emits in front of the model; the gateway process itself ignores it.
type Kubernetes struct {
	// Replicas is the least number of gateway pods (the HPA's minReplicas): two, so
	// that a node drain or a gateway rollout never leaves clients without one.
	Replicas int `yaml:"replicas" json:"replicas"`
	// MaxReplicas is the most the HPA scales the gateway to on its CPU.
	MaxReplicas int `yaml:"maxReplicas" json:"maxReplicas"`
	// CPUTarget is the average CPU utilisation (percent of the request) the HPA keeps.
	CPUTarget int `yaml:"cpuTarget" json:"cpuTarget"`
	// CPU is each gateway pod's CPU request, e.g. 500m. No CPU limit is set: a
	// throttled proxy adds its throttling to every request's latency.
	CPU string `yaml:"cpu" json:"cpu"`
}

// DefaultKubernetes is the gateway Deployment's default size.
func DefaultKubernetes() Kubernetes {
	return Kubernetes{Replicas: 2, MaxReplicas: 10, CPUTarget: 70, CPU: "500m"}
}

func (k *Kubernetes) setDefaults() {
	d := DefaultKubernetes()
	if k.Replicas == 0 {
		k.Replicas = d.Replicas
	}
	if k.MaxReplicas == 0 {
		k.MaxReplicas = max(d.MaxReplicas, k.Replicas)
	}
	if k.CPUTarget == 0 {
		k.CPUTarget = d.CPUTarget
	}
	if k.CPU == "" {
		k.CPU = d.CPU
	}
}

// cpuQuantity is a Kubernetes CPU quantity: cores (1, 0.5) or millicores (500m).
var cpuQuantity = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?|[0-9]+m)$`)

func (k Kubernetes) validate(errs validate.Errors) {
	errs.Positive("replicas", k.Replicas)
	if k.MaxReplicas < k.Replicas {
		errs.Addf("maxReplicas", "(%d) must be at least replicas (%d)", k.MaxReplicas, k.Replicas)
	}
	if k.CPUTarget < 1 || k.CPUTarget > 100 {
		errs.Addf("cpuTarget", "(%d) must be a percentage between 1 and 100", k.CPUTarget)
	}
	if !cpuQuantity.MatchString(k.CPU) {
		errs.Addf("cpu", "(%q) must be a CPU quantity such as 500m or 1", k.CPU)
	}
}

// OnKubernetes says whether `render k8s` puts the gateway in front of the
// model (enabled unless gateway.enabled is false).
func (c Config) OnKubernetes() bool { return c.Enabled == nil || *c.Enabled }
