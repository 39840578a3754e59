package preflight

import (
	"slices"
	"strings"
	"time"
)

// Requirements says what the deployment needs; the CLI fills it from aideploy.yaml.
type Requirements struct {
	// Image is the model server image reference.
	Image string
	// CUDAVersion is the CUDA version the image needs ("12.1"); empty if unknown.
	CUDAVersion string
	// Model describes the model, for the memory estimate and the dtype checks.
	Model ModelSpec
	// GPUsPerReplica is how many GPUs one replica uses (0: a CPU-only service).
	GPUsPerReplica int
	// Replicas is the steady number of replicas.
	Replicas int
	// PrewarmReplicas is the replica target before a planned peak (0: none).
	PrewarmReplicas int
	// BlueGreen is true when a rollout runs both colours at once.
	BlueGreen bool
	// GPUProduct is the wanted GPU model, matched against names and node labels ("H100").
	GPUProduct string
	// MIG is true when the deployment expects MIG devices.
	MIG bool
	// Ports are the host ports the service publishes.
	Ports []int
	// ModelPath is where the model files live (or will be downloaded to) on the host.
	ModelPath string
	// StartupBudget is how long the model may take to load before it is ready.
	StartupBudget time.Duration
	// Autoscaling says which metrics the HPA scales on.
	Autoscaling AutoscalingSpec
	// ModelClaim is the model volume's claim the manifests render; nil when
	// they render none.
	ModelClaim *ClaimSpec
}

// ModelSpec describes a model for the memory estimate.
type ModelSpec struct {
	// Params is the parameter count (8e9 for an 8B model).
	Params float64
	// DType is the weight type: fp32, bf16, fp16, fp8, int8 or int4.
	DType string
	// KVCacheDType is the KV cache element type; empty means fp16 (fp32 for fp32 models).
	KVCacheDType string
	// ContextLength is the maximum tokens per sequence.
	ContextLength int
	// Concurrency is the number of sequences served at once.
	Concurrency int
	// Layers is the number of transformer layers (0: estimated from Params).
	Layers int
	// KVHeads is the number of key/value heads (0: estimated from Params).
	KVHeads int
	// HeadDim is the size of one attention head (0: estimated from Params).
	HeadDim int
	// TensorParallel is the number of GPUs one model copy is split across (0 or 1: none).
	TensorParallel int
}

// AutoscalingSpec lists the metrics a HorizontalPodAutoscaler targets.
type AutoscalingSpec struct {
	// Enabled is true when an HPA manages the replicas.
	Enabled bool
	// Metrics are the metric names: "cpu", "memory" or a pods metric such as "http_requests_per_second".
	Metrics []string
}

// NeededGPUs is how many GPUs the deployment holds at its peak: the larger of the
// steady and prewarm replica counts, twice that while blue/green runs both colours.
func (r Requirements) NeededGPUs() int {
	return r.NeededReplicas() * r.GPUsPerReplica
}

// NeededReplicas is the replica count at the peak, both colours counted for blue/green.
func (r Requirements) NeededReplicas() int {
	n := max(r.Replicas, r.PrewarmReplicas, 1)
	if r.BlueGreen {
		n *= 2
	}
	return n
}

func (r Requirements) wantsGPU() bool { return r.GPUsPerReplica > 0 }

func (m ModelSpec) tensorParallel() int { return max(m.TensorParallel, 1) }

// productMatches compares GPU names loosely: "H100" matches "NVIDIA H100 80GB HBM3" and "NVIDIA-H100-80GB-HBM3".
func productMatches(name, want string) bool {
	norm := func(s string) string {
		return strings.NewReplacer("-", " ", "_", " ").Replace(strings.ToLower(s))
	}
	return strings.Contains(norm(name), norm(want))
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
