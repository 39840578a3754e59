package preflight

import (
	"strings"
	"testing"
)

func TestEstimateMemory(t *testing.T) {
	t.Parallel()
	const gib = 1 << 30
	tests := []struct {
		name         string
		model        ModelSpec
		weights      uint64
		kv           uint64
		perGPU       uint64
		shapeAssumed bool
	}{
		{
			name: "llama 8B bf16, exact shape",
			model: ModelSpec{Params: 8e9, DType: "bf16", ContextLength: 8192, Concurrency: 16,
				Layers: 32, KVHeads: 8, HeadDim: 128},
			weights: 16e9,
			kv:      2 * 32 * 8 * 128 * 2 * 8192 * 16, // 17,179,869,184
			perGPU:  16e9*1.2 + 2*32*8*128*2*8192*16,
		},
		{
			name:    "8B shape guessed like llama 3 8B",
			model:   ModelSpec{Params: 8e9, DType: "fp16", ContextLength: 4096, Concurrency: 1},
			weights: 16e9, kv: 2 * 32 * 8 * 128 * 2 * 4096, perGPU: 16e9*1.2 + 2*32*8*128*2*4096,
			shapeAssumed: true,
		},
		{
			name: "70B bf16 over 4 GPUs",
			model: ModelSpec{Params: 70e9, DType: "bf16", ContextLength: 8192, Concurrency: 8,
				Layers: 80, KVHeads: 8, HeadDim: 128, TensorParallel: 4},
			weights: 140e9, kv: 2 * 80 * 8 * 128 * 2 * 8192 * 8,
			perGPU: (140e9*1.2 + 2*80*8*128*2*8192*8) / 4,
		},
		{
			name:    "int4 weights keep an fp16 KV cache",
			model:   ModelSpec{Params: 7e9, DType: "int4", ContextLength: 1024, Concurrency: 1, Layers: 32, KVHeads: 32, HeadDim: 128},
			weights: 3.5e9, kv: 2 * 32 * 32 * 128 * 2 * 1024, perGPU: 3.5e9*1.2 + 2*32*32*128*2*1024,
		},
		{
			name:    "fp8 KV cache halves it",
			model:   ModelSpec{Params: 8e9, DType: "fp8", KVCacheDType: "fp8", ContextLength: 1024, Concurrency: 2, Layers: 32, KVHeads: 8, HeadDim: 128},
			weights: 8e9, kv: 2 * 32 * 8 * 128 * 1 * 1024 * 2, perGPU: 8e9*1.2 + 2*32*8*128*1*1024*2,
		},
		{
			name:    "fp32 without context",
			model:   ModelSpec{Params: 1e9, DType: "fp32"},
			weights: 4e9, kv: 0, perGPU: 4.8e9, shapeAssumed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := EstimateMemory(tt.model)
			if err != nil {
				t.Fatal(err)
			}
			if got.Weights != tt.weights || got.KVCache != tt.kv || got.ShapeAssumed != tt.shapeAssumed {
				t.Errorf("got weights %d kv %d assumed %v, want %d %d %v", got.Weights, got.KVCache, got.ShapeAssumed, tt.weights, tt.kv, tt.shapeAssumed)
			}
			if diff := int64(got.PerGPU) - int64(tt.perGPU); diff < -4 || diff > 4 {
				t.Errorf("per GPU %d (%.1f GiB), want %d", got.PerGPU, float64(got.PerGPU)/gib, tt.perGPU)
			}
			if got.Total != got.WeightsWithOverhead+got.KVCache {
				t.Errorf("total %d is not weights+overhead %d + kv %d", got.Total, got.WeightsWithOverhead, got.KVCache)
			}
		})
	}
}

func TestEstimateMemoryErrors(t *testing.T) {
	t.Parallel()
	for _, m := range []ModelSpec{{Params: 0, DType: "bf16"}, {Params: 8e9, DType: "fp12"}, {Params: 8e9, DType: "bf16", KVCacheDType: "q3"}} {
		if _, err := EstimateMemory(m); err == nil {
			t.Errorf("%+v: want an error", m)
		} else if strings.HasPrefix(err.Error(), "failed") {
			t.Errorf("error style: %v", err)
		}
	}
}

func TestTypicalShapeRoundsUp(t *testing.T) {
	t.Parallel()
	if s := typicalShape(13e9); s.layers != 48 {
		t.Errorf("13B: %+v, want the 14B shape", s)
	}
	if s := typicalShape(1e13); s.layers != 126 {
		t.Errorf("huge: %+v", s)
	}
}
