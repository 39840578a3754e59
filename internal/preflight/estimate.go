package preflight

import (
	"fmt"
	"strings"
)

// MemoryOverhead multiplies the weights for activations, the CUDA context and fragmentation.
const MemoryOverhead = 1.2

// MemoryEstimate is the GPU memory a model needs to serve, in bytes.
type MemoryEstimate struct {
	// Weights is params × bytes per parameter.
	Weights uint64 `json:"weights"`
	// WeightsWithOverhead is Weights × MemoryOverhead.
	WeightsWithOverhead uint64 `json:"weightsWithOverhead"`
	// KVCache is 2 × layers × kvHeads × headDim × bytes × context × concurrency.
	KVCache uint64 `json:"kvCache"`
	// Total is WeightsWithOverhead + KVCache for one model copy.
	Total uint64 `json:"total"`
	// PerGPU is Total split across the tensor-parallel GPUs.
	PerGPU uint64 `json:"perGpu"`
	// ShapeAssumed is true when layers, KV heads or head size were guessed from the parameter count.
	ShapeAssumed bool `json:"shapeAssumed"`
}

// modelShape is a typical decoder (Llama-style, grouped-query attention) of a given size.
type modelShape struct {
	params                   float64
	layers, kvHeads, headDim int
}

// typicalShapes are picked by rounding the parameter count up, so a guess errs on the large side.
var typicalShapes = []modelShape{
	{1.5e9, 16, 8, 64},  // Llama 3.2 1B
	{4e9, 28, 8, 128},   // Llama 3.2 3B
	{9e9, 32, 8, 128},   // Llama 3.1 8B, Mistral 7B
	{15e9, 48, 8, 128},  // Qwen2.5 14B
	{35e9, 64, 8, 128},  // Qwen2.5 32B
	{75e9, 80, 8, 128},  // Llama 3.1 70B
	{130e9, 88, 8, 128}, // Mistral Large 123B
	{1e15, 126, 8, 128}, // Llama 3.1 405B and beyond
}

// BytesPerParam is the size of one weight of the given dtype.
func BytesPerParam(dtype string) (float64, error) {
	switch strings.ToLower(dtype) {
	case "fp32", "float32":
		return 4, nil
	case "bf16", "bfloat16", "fp16", "float16", "half":
		return 2, nil
	case "fp8", "int8":
		return 1, nil
	case "int4", "fp4":
		return 0.5, nil
	}
	return 0, fmt.Errorf("unknown dtype %q; use fp32, bf16, fp16, fp8, int8 or int4", dtype)
}

// EstimateMemory says how much GPU memory the model needs: weights × bytes per
// parameter × MemoryOverhead, plus the KV cache for ContextLength × Concurrency
// tokens, divided across TensorParallel GPUs.
func EstimateMemory(m ModelSpec) (MemoryEstimate, error) {
	if m.Params <= 0 {
		return MemoryEstimate{}, fmt.Errorf("model params (%g) must be positive", m.Params)
	}
	bpp, err := BytesPerParam(m.DType)
	if err != nil {
		return MemoryEstimate{}, err
	}
	kvDType := m.KVCacheDType
	if kvDType == "" {
		kvDType = "fp16"
		if bpp == 4 {
			kvDType = "fp32"
		}
	}
	kvBytes, err := BytesPerParam(kvDType)
	if err != nil {
		return MemoryEstimate{}, fmt.Errorf("kv cache: %w", err)
	}
	var est MemoryEstimate
	layers, kvHeads, headDim := m.Layers, m.KVHeads, m.HeadDim
	if layers <= 0 || kvHeads <= 0 || headDim <= 0 {
		shape := typicalShape(m.Params)
		est.ShapeAssumed = true
		layers = cmpOr(layers, shape.layers)
		kvHeads = cmpOr(kvHeads, shape.kvHeads)
		headDim = cmpOr(headDim, shape.headDim)
	}
	weights := m.Params * bpp
	kv := 2 * float64(layers) * float64(kvHeads) * float64(headDim) * kvBytes *
		float64(max(m.ContextLength, 0)) * float64(max(m.Concurrency, 1))
	est.Weights = uint64(weights)
	est.WeightsWithOverhead = uint64(weights * MemoryOverhead)
	est.KVCache = uint64(kv)
	est.Total = est.WeightsWithOverhead + est.KVCache
	tp := uint64(m.tensorParallel())
	est.PerGPU = (est.Total + tp - 1) / tp
	return est, nil
}

func typicalShape(params float64) modelShape {
	for _, s := range typicalShapes {
		if params <= s.params {
			return s
		}
	}
	return typicalShapes[len(typicalShapes)-1]
}

func cmpOr(v, fallback int) int {
	if v > 0 {
		return v
	}
	return fallback
}

// formatBytes writes a byte count in GiB or MiB with one decimal.
func formatBytes(b uint64) string {
	const mib, gib = 1 << 20, 1 << 30
	if b >= gib {
		return fmt.Sprintf("%.1f GiB", float64(b)/gib)
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/mib)
}
