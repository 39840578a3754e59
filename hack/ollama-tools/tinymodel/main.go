// Command tinymodel writes the tiny random-weight llama model the tests run on
// Ollama: 2 layers, embedding 128 and a 2,048-token SentencePiece vocabulary
// that holds the 256 byte tokens, so any text tokenizes. It is written with
// Ollama's own GGUF writer, so the file is what Ollama expects to read, and
// from a fixed seed, so its digest is the same on every machine.
//
// Usage: tinymodel -o model.gguf (the file only), or
// tinymodel -ollama BIN -dir DIR -models OLLAMA_MODELS (file, Modelfile and
// `ollama create`).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"

	"github.com/ollama/ollama/fs/ggml"
)

const (
	layers  = 2
	embd    = 128
	ffn     = 256
	heads   = 4
	vocab   = 2048
	context = 2048
)

// SentencePiece token types as llama.cpp numbers them.
const (
	typeNormal  int32 = 1
	typeUnknown int32 = 2
	typeControl int32 = 3
	typeByte    int32 = 6
)

func main() {
	out := flag.String("o", "tiny.gguf", "where to write the model file alone")
	ollama := flag.String("ollama", "", "ollama binary; with it, create the model in -models")
	dir := flag.String("dir", "model", "folder for the model file and its Modelfile (with -ollama)")
	models := flag.String("models", "models", "OLLAMA_MODELS folder to create the model in (with -ollama)")
	flag.Parse()
	var err error
	if *ollama != "" {
		err = create(*ollama, *dir, *models)
	} else {
		err = write(*out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tinymodel:", err)
		os.Exit(1)
	}
}

func write(path string) error {
	tokens, scores, types := vocabulary()
	if len(tokens) != vocab {
		return fmt.Errorf("vocabulary has %d tokens, want %d", len(tokens), vocab)
	}
	kv := ggml.KV{
		"general.architecture":                   "llama",
		"general.name":                           "aideploy-tiny",
		"general.file_type":                      uint32(0), // all F32
		"llama.block_count":                      uint32(layers),
		"llama.context_length":                   uint32(context),
		"llama.embedding_length":                 uint32(embd),
		"llama.feed_forward_length":              uint32(ffn),
		"llama.attention.head_count":             uint32(heads),
		"llama.attention.head_count_kv":          uint32(heads),
		"llama.attention.layer_norm_rms_epsilon": float32(1e-5),
		"llama.rope.dimension_count":             uint32(embd / heads),
		"llama.rope.freq_base":                   float32(10000),
		"llama.vocab_size":                       uint32(vocab),
		"tokenizer.ggml.model":                   "llama",
		"tokenizer.ggml.tokens":                  tokens,
		"tokenizer.ggml.scores":                  scores,
		"tokenizer.ggml.token_type":              types,
		"tokenizer.ggml.unknown_token_id":        uint32(0),
		"tokenizer.ggml.bos_token_id":            uint32(1),
		"tokenizer.ggml.eos_token_id":            uint32(2),
		"tokenizer.ggml.add_bos_token":           true,
		"tokenizer.ggml.add_eos_token":           false,
	}
	rng := rand.New(rand.NewPCG(23, 6))
	var ts []*ggml.Tensor
	add := func(name string, ones bool, shape ...uint64) {
		ts = append(ts, &ggml.Tensor{Name: name, Kind: 0, Shape: shape, WriterTo: weights(rng, shape, ones)})
	}
	add("token_embd.weight", false, embd, vocab)
	add("output_norm.weight", true, embd)
	add("output.weight", false, embd, vocab)
	for i := range layers {
		b := fmt.Sprintf("blk.%d.", i)
		add(b+"attn_norm.weight", true, embd)
		add(b+"attn_q.weight", false, embd, embd)
		add(b+"attn_k.weight", false, embd, embd)
		add(b+"attn_v.weight", false, embd, embd)
		add(b+"attn_output.weight", false, embd, embd)
		add(b+"ffn_norm.weight", true, embd)
		add(b+"ffn_gate.weight", false, embd, ffn)
		add(b+"ffn_up.weight", false, embd, ffn)
		add(b+"ffn_down.weight", false, ffn, embd)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := ggml.WriteGGUF(f, kv, ts); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// vocabulary returns control tokens, the 256 byte tokens, then printable
// pieces with and without the SentencePiece word marker, up to vocab tokens.
func vocabulary() (tokens []string, scores []float32, types []int32) {
	add := func(tok string, typ int32) {
		tokens = append(tokens, tok)
		scores = append(scores, -float32(len(tokens)))
		types = append(types, typ)
	}
	add("<unk>", typeUnknown)
	add("<s>", typeControl)
	add("</s>", typeControl)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), typeByte)
	}
	const letters = "abcdefghijklmnopqrstuvwxyz"
	add("▁", typeNormal)
	for c := byte('!'); c <= '~'; c++ {
		add(string(c), typeNormal)
		add("▁"+string(c), typeNormal)
	}
	var pieces []string
	for _, a := range letters {
		for _, b := range letters {
			pieces = append(pieces, string(a)+string(b))
		}
	}
	for _, a := range letters {
		for _, b := range letters {
			pieces = append(pieces, "e"+string(a)+string(b))
		}
	}
	for _, p := range pieces {
		if len(tokens) == vocab {
			break
		}
		add("▁"+p, typeNormal)
		if len(tokens) < vocab {
			add(p, typeNormal)
		}
	}
	return tokens, scores, types
}

// weights streams shape's product of float32s: ones for norms, otherwise
// small normal values, so logits stay close to uniform and sampling varies.
func weights(rng *rand.Rand, shape []uint64, ones bool) io.WriterTo {
	n := uint64(1)
	for _, d := range shape {
		n *= d
	}
	buf := make([]byte, 4*n)
	for i := range n {
		v := float32(1)
		if !ones {
			v = float32(rng.NormFloat64() * 0.02)
		}
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return writerTo(buf)
}

type writerTo []byte

func (w writerTo) WriteTo(dst io.Writer) (int64, error) {
	n, err := dst.Write(w)
	return int64(n), err
}
