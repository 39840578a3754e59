package config

import (
	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// DefaultFile is where commands look for the configuration.
const DefaultFile = "aideploy.yaml"

// APIVersion is the schema version written at the top of aideploy.yaml.
const APIVersion = "aideploy.dev/v1"

// Config is the whole of aideploy.yaml.
type Config struct {
	// APIVersion names the schema of this file.
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	// Name of the service: a DNS label used for containers, Deployments and metrics.
	Name string `yaml:"name" json:"name"`
	// Server is the model server preset: vllm, tgi, ollama, or custom (the rendered Dockerfile).
	Server string `yaml:"server" json:"server"`
	// Image is the model server image as repository:tag; "latest" and untagged images are refused.
	// Empty takes the preset's stock image.
	Image string `yaml:"image" json:"image"`
	// Port the model server listens on inside the container; 0 takes the preset's.
	Port int `yaml:"port" json:"port"`
	// Args are the container's arguments after the image's entrypoint; empty takes the preset's.
	Args []string `yaml:"args,omitempty" json:"args,omitempty"`
	// APIKey is the key the model server requires (vllm), by reference only.
	APIKey *SecretSource `yaml:"apiKey,omitempty" json:"apiKey,omitempty"`
	// Health says where the server reports liveness and readiness.
	Health Health `yaml:"health" json:"health"`
	// Model describes the weights, for memory estimates and the model volume.
	Model Model `yaml:"model" json:"model"`
	// Resources per replica.
	Resources Resources `yaml:"resources" json:"resources"`
	// Replicas is the steady-state number of replicas.
	Replicas int `yaml:"replicas" json:"replicas"`
	// Autoscaling configures the autoscaler: an HPA, or a KEDA ScaledObject.
	Autoscaling Autoscaling `yaml:"autoscaling" json:"autoscaling"`
	// Startup sizes the wait for slow model loads.
	Startup Startup `yaml:"startup" json:"startup"`
	// Build configures the rendered Dockerfile.
	Build Build `yaml:"build" json:"build"`
	// Env is the model server's environment; secrets only by reference.
	Env []EnvVar `yaml:"env,omitempty" json:"env,omitempty"`
	// Prewarm lists planned peaks to scale up for ahead of time.
	Prewarm []PrewarmEvent `yaml:"prewarm,omitempty" json:"prewarm,omitempty"`
	// Gateway configures `aideploy gateway serve`: cache, limits, breaker, pools.
	Gateway gateway.Config `yaml:"gateway" json:"gateway"`
	// Rollout configures `aideploy rollout`: strategy, target, health gate, warm-up, drain, watch.
	Rollout rollout.Config `yaml:"rollout" json:"rollout"`
}

// Health holds the probe paths.
type Health struct {
	// Path answers liveness: 200 while the process is alive, even while loading.
	Path string `yaml:"path" json:"path"`
	// ReadyPath answers readiness: 200 only when the model can serve.
	ReadyPath string `yaml:"readyPath" json:"readyPath"`
}

// Model describes the model being served.
type Model struct {
	// Name is what the preset's server loads: a Hugging Face id such as
	// Qwen/Qwen2.5-7B-Instruct, or an Ollama model; empty loads from Path.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Path of the model storage inside the container: read-only weights for
	// custom, the writable cache (HF_HOME, OLLAMA_MODELS) for a preset.
	Path string `yaml:"path" json:"path"`
	// Volume is what backs Path: pvc, emptyDir, hostPath or none.
	Volume string `yaml:"volume,omitempty" json:"volume,omitempty"`
	// HostPath is the host folder of a hostPath volume (a compose bind mount).
	HostPath string `yaml:"hostPath,omitempty" json:"hostPath,omitempty"`
	// ClaimName is an existing PersistentVolumeClaim (and Docker volume) for a
	// pvc volume; empty renders one named <name>-models.
	ClaimName string `yaml:"claimName,omitempty" json:"claimName,omitempty"`
	// Size of the rendered PersistentVolumeClaim.
	Size units.ByteSize `yaml:"size,omitempty" json:"size,omitempty"`
	// StorageClass of the rendered claim; empty uses the cluster's default class.
	StorageClass string `yaml:"storageClass,omitempty" json:"storageClass,omitempty"`
	// AccessMode of the rendered claim: ReadWriteMany lets replicas on different nodes share it.
	AccessMode string `yaml:"accessMode,omitempty" json:"accessMode,omitempty"`
	// Params is the parameter count, e.g. 8B, 70B, 350M.
	Params string `yaml:"params" json:"params"`
	// DType is the weight precision: fp32, fp16, bf16, fp8, int8 or int4.
	DType string `yaml:"dtype" json:"dtype"`
	// ContextLength is the maximum sequence length, for the KV-cache estimate.
	ContextLength int `yaml:"contextLength" json:"contextLength"`
	// Concurrency is the number of sequences served at once per replica.
	Concurrency int `yaml:"concurrency" json:"concurrency"`
	// TensorParallel splits the model across this many GPUs; 0 means all GPUs of a replica.
	TensorParallel int `yaml:"tensorParallel,omitempty" json:"tensorParallel,omitempty"`
}

// Resources are what one replica asks for.
type Resources struct {
	// CPU request in cores, e.g. "1" or "500m".
	CPU string `yaml:"cpu" json:"cpu"`
	// CPULimit in cores; empty means twice the request.
	CPULimit string `yaml:"cpuLimit,omitempty" json:"cpuLimit,omitempty"`
	// Memory request.
	Memory units.ByteSize `yaml:"memory" json:"memory"`
	// MemoryLimit; empty means twice the request.
	MemoryLimit units.ByteSize `yaml:"memoryLimit,omitempty" json:"memoryLimit,omitempty"`
	// GPUs per replica (nvidia.com/gpu); request equals limit.
	GPUs int `yaml:"gpus" json:"gpus"`
	// GPUProduct pins the nvidia.com/gpu.product node label, e.g. NVIDIA-H100-80GB-HBM3.
	GPUProduct string `yaml:"gpuProduct,omitempty" json:"gpuProduct,omitempty"`
	// SharedMemory is /dev/shm: tensor parallelism passes tensors through it.
	// 0 with GPUs takes 1Gi; the runtime's default of 64Mi is too small.
	SharedMemory units.ByteSize `yaml:"sharedMemory,omitempty" json:"sharedMemory,omitempty"`
}

// Autoscaling configures the autoscaler of the model pods: a
// HorizontalPodAutoscaler (autoscaling/v2), or a KEDA ScaledObject.
type Autoscaling struct {
	// Enabled renders the autoscaler.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Engine is what scales: hpa (a HorizontalPodAutoscaler on CPU, memory and
	// custom Pods metrics) or keda (a KEDA ScaledObject whose Prometheus
	// triggers read what the gateway sees of each replica: requests in flight,
	// requests queued, time to first token). keda needs KEDA in the cluster, the
	// gateway on Kubernetes and a Prometheus that scrapes it.
	Engine string `yaml:"engine" json:"engine"`
	// PrometheusURL is where KEDA's Prometheus scaler queries the gateway's
	// metrics (engine keda); the default is the Service the Prometheus operator
	// creates in the monitoring namespace.
	PrometheusURL string `yaml:"prometheusURL,omitempty" json:"prometheusURL,omitempty"`
	// MinReplicas is the floor; prewarm raises it for planned peaks.
	MinReplicas int `yaml:"minReplicas" json:"minReplicas"`
	// MaxReplicas is the ceiling.
	MaxReplicas int `yaml:"maxReplicas" json:"maxReplicas"`
	// CPUTarget is the average CPU utilisation target in percent; 0 disables it.
	// When no target is set, GPU services scale on their server's requests in
	// flight (vllm, tgi: three quarters of model.concurrency) or on
	// requestsPerSecond (100), and CPU-only ones on CPU (70) and memory (80).
	CPUTarget int `yaml:"cpuTarget" json:"cpuTarget"`
	// MemoryTarget is the average memory utilisation target in percent; 0 disables it.
	MemoryTarget int `yaml:"memoryTarget" json:"memoryTarget"`
	// RequestsPerSecond per pod on the http_requests_per_second Pods metric; 0 disables it.
	RequestsPerSecond int `yaml:"requestsPerSecond,omitempty" json:"requestsPerSecond,omitempty"`
	// RequestsInFlight is the average number of requests each pod's server may
	// be running, on the preset's own gauge (vLLM vllm:num_requests_running,
	// TGI tgi_batch_current_size) through a metrics adapter; 0 disables it.
	// With engine keda the gateway counts them instead, for any server.
	RequestsInFlight int `yaml:"requestsInFlight,omitempty" json:"requestsInFlight,omitempty"`
	// QueueDepth is the average number of requests per replica that may wait in
	// the gateway for a free upstream slot (engine keda); 0 disables it. It scales
	// out when the gateway's adaptive limit holds requests back, so that requests
	// in flight stay below their target while clients wait.
	QueueDepth int `yaml:"queueDepth,omitempty" json:"queueDepth,omitempty"`
	// TimeToFirstToken is the p95 time to first token, over 2 minutes, above
	// which KEDA adds replicas in proportion (engine keda); 0 disables it. It
	// depends on prompt lengths and the model, so it has no default: set it below
	// the 10s of the AIDeploySlowFirstToken alert, e.g. 2s for chat.
	TimeToFirstToken units.Duration `yaml:"timeToFirstToken,omitempty" json:"timeToFirstToken,omitempty"`
	// ScaleUp behaviour.
	ScaleUp ScalingRule `yaml:"scaleUp" json:"scaleUp"`
	// ScaleDown behaviour.
	ScaleDown ScalingRule `yaml:"scaleDown" json:"scaleDown"`
}

// The values of Autoscaling.Engine.
const (
	EngineHPA  = "hpa"
	EngineKEDA = "keda"
)

// Engines lists the values of autoscaling.engine.
var Engines = []string{EngineHPA, EngineKEDA}

// DefaultPrometheusURL is autoscaling.prometheusURL when the file sets none:
// the Service the Prometheus operator (kube-prometheus-stack) creates.
const DefaultPrometheusURL = "http://prometheus-operated.monitoring.svc:9090"

// ScalingRule is one direction of HPA behaviour.
type ScalingRule struct {
	// StabilizationWindow before acting on a lower (or higher) recommendation.
	StabilizationWindow units.Duration `yaml:"stabilizationWindow" json:"stabilizationWindow"`
	// Percent of current replicas that may change per period.
	Percent int `yaml:"percent" json:"percent"`
	// Period of the percent policy.
	Period units.Duration `yaml:"period" json:"period"`
}

// Startup sizes the wait for a model to load.
type Startup struct {
	// Budget is how long a replica may take to load its model before it is declared failed;
	// 0 takes the preset's.
	Budget units.Duration `yaml:"budget" json:"budget"`
	// ColdStart is the expected time from scheduling to ready; prewarm starts this much early.
	// 0 takes four fifths of the budget.
	ColdStart units.Duration `yaml:"coldStart" json:"coldStart"`
}

// Build configures the rendered Dockerfile.
type Build struct {
	// CUDAVersion pins the nvidia/cuda runtime base image, e.g. 12.4.1.
	CUDAVersion string `yaml:"cudaVersion" json:"cudaVersion"`
	// BaseImage overrides the base image entirely (pinned by tag or digest).
	BaseImage string `yaml:"baseImage,omitempty" json:"baseImage,omitempty"`
	// PythonVersion installed in the image.
	PythonVersion string `yaml:"pythonVersion" json:"pythonVersion"`
	// Command starts the model server.
	Command []string `yaml:"command" json:"command"`
}

// EnvVar is one environment variable: a plain value, or a reference to a secret.
type EnvVar struct {
	// Name of the variable.
	Name string `yaml:"name" json:"name"`
	// Value for non-secret settings.
	Value string `yaml:"value,omitempty" json:"value,omitempty"`
	// SecretRef takes the value from a Kubernetes Secret (and, on Docker, from FromEnv).
	SecretRef *SecretRef `yaml:"secretRef,omitempty" json:"secretRef,omitempty"`
	// FromEnv takes the value from this variable of the deploying shell (Docker targets).
	FromEnv string `yaml:"fromEnv,omitempty" json:"fromEnv,omitempty"`
}

// SecretRef names a key of a Kubernetes Secret.
type SecretRef struct {
	Name string `yaml:"name" json:"name"`
	Key  string `yaml:"key" json:"key"`
	// Optional lets the server start without it (a token only gated models need).
	Optional bool `yaml:"optional,omitempty" json:"optional,omitempty"`
}

// SecretSource is a secret by reference: a Kubernetes Secret's key, and on
// Docker a variable of the deploying shell.
type SecretSource struct {
	SecretRef *SecretRef `yaml:"secretRef,omitempty" json:"secretRef,omitempty"`
	FromEnv   string     `yaml:"fromEnv,omitempty" json:"fromEnv,omitempty"`
}

// PrewarmEvent is a planned peak.
type PrewarmEvent struct {
	// Name of the event, used in CronJob names.
	Name string `yaml:"name" json:"name"`
	// Start of the peak, local time in Timezone: 2006-01-02T15:04 (or with seconds).
	Start string `yaml:"start" json:"start"`
	// End of the peak; the floor is restored then.
	End string `yaml:"end" json:"end"`
	// Timezone is an IANA name such as Asia/Shanghai; default UTC.
	Timezone string `yaml:"timezone,omitempty" json:"timezone,omitempty"`
	// Replicas is the floor during the event.
	Replicas int `yaml:"replicas" json:"replicas"`
}
