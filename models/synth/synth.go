// Package synth generates deterministic llama-shaped GGUF models of any
// size, for tests and benchmarks that must not download anything.
//
// A model is a Config: a target parameter count, or explicit dimensions,
// a weight dtype and a seed. Shape fills in what is left with llama-like
// proportions; Write streams the file (a 1B-parameter Q8_0 model is about
// 1.1 GB and is never held in memory). The same Config always produces the
// same bytes, whatever the machine or the number of cores.
//
// Weights are random: matrices normal(0, 1/sqrt(ne0)) (ne0 is the input
// width, so a mat-vec preserves the scale of its input), token embeddings
// normal(0, 1), norms 1. The output is gibberish but activations stay
// finite and sane through many layers. The vocabulary is a real
// SentencePiece-style one (see Vocab), so any text can be tokenized.
//
// Besides SwiGLU llamas it writes the sparse-FFN families: ReLU llamas
// (Act "relu"), dReLU llamas (Act "drelu", or Arch "bamboo"), OPT (Arch
// "opt"), each optionally in PowerInfer's layout (PowerInfer), and plants
// in their FFNs a chosen distribution of neuron firing rates: see Plan.
package synth

import (
	"fmt"
	"math"
	"strings"

	"github.com/stokehq/stoke/models/dtype"
)

// Config describes a synthetic model. Zero fields are derived by Shape.
type Config struct {
	// Arch is "llama" (the default), "bamboo" (PowerInfer's name for a
	// dReLU llama) or "opt" (PowerInfer's OPT naming: LayerNorm, biases,
	// learned positions, ReLU).
	Arch string
	// Act is the FFN activation: "silu" (llama's default), "relu" (ReLU on
	// the gate, as ReluLLaMA/ProSparse; OPT's only choice) or "drelu" (ReLU
	// on gate and up, as TurboSparse/Bamboo; bamboo's default). ReLU and
	// dReLU models get planted firing statistics (see Plan).
	Act string
	// PowerInfer writes PowerInfer's layout: magic "PWRI", the transposed
	// blk.N.ffn_down_t instead of ffn_down, powerinfer.sparse_threshold 0
	// and a predictor blk.N.fc1/fc2 (F16) per layer. Needs ReLU or dReLU.
	PowerInfer bool
	// HotFraction is the fraction of each layer's neurons that fire for
	// most tokens (default 0.05); ColdRate is the mean firing rate of the
	// others (default 0.02, below MaxColdRate). Planted models only.
	HotFraction float64
	ColdRate    float64

	Params  int64 // target parameter count, e.g. 1e9; Shape sets it to the exact count
	Dim     int   // embedding width
	Layers  int   // transformer blocks
	Heads   int   // attention heads
	KVHeads int   // key/value heads (grouped-query attention)
	FFN     int   // feed-forward width
	Vocab   int   // vocabulary size
	Context int   // context length written to the metadata
	Type    dtype.Type
	Seed    uint64
	// Tied leaves out output.weight: the output head is the embedding
	// matrix (tied embeddings, as in stories260K and Qwen3's small sizes).
	Tied bool
	// Mix "Q4_K_M" (with Type Q4_K) writes llama.cpp's Q4_K_M mix, the
	// type most GGUF downloads have: output.weight and, in the layers
	// llama.cpp's use_more_bits picks, attn_v and ffn_down in Q6_K, every
	// other matrix in Q4_K. "Q5_K_M" (with Type Q5_K) is the same with
	// Q5_K. "" writes every matrix in Type.
	Mix string
}

// The Mix values: llama.cpp's Q4_K_M and Q5_K_M.
const (
	MixQ4KM = "Q4_K_M"
	MixQ5KM = "Q5_K_M"
)

// mixTypes are the base types of the mixes, and mixFileTypes llama.cpp's
// general.file_type of each (LLAMA_FTYPE_MOSTLY_Q4_K_M, _Q5_K_M).
var (
	mixTypes     = map[string]dtype.Type{MixQ4KM: dtype.Q4_K, MixQ5KM: dtype.Q5_K}
	mixFileTypes = map[string]uint32{MixQ4KM: 15, MixQ5KM: 17}
)

// useMoreBits is llama.cpp's use_more_bits: the layers of n whose attn_v
// and ffn_down a Q4_K_M file keeps in Q6_K (the first and last eighth,
// and every third in between).
func useMoreBits(i, n int) bool {
	return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2
}

// Shape constants.
const (
	HeadDim       = 64  // head width when Heads is derived
	DimStep       = 256 // derived widths are multiples of this (every block size divides it)
	MaxDim        = 1 << 15
	MaxLayers     = 1024
	dimsPerLayer  = 96 // derived depth ≈ Dim/96 (TinyLlama: 2048/22 = 93, Llama-2-7B: 128)
	largeParams   = 100_000_000
	mediumParams  = 10_000_000
	largeVocab    = 32000 // Llama-2's size
	mediumVocab   = 4096
	smallVocab    = 512 // stories260K's size
	defaultCtx    = 2048
	ropeFreqBase  = 10000
	rmsEpsilon    = 1e-5
	ffnMultiplier = 8.0 / 3.0
	// OPT's FFN is 4·Dim wide (ffn_dim = 4·hidden_size in every size).
	optFFNMultiplier = 4
	// optPosOffset is the number of padding rows in front of OPT's
	// position table (HF's OPTLearnedPositionalEmbedding offset).
	optPosOffset = 2
)

// Shape returns c with every zero field derived and Params set to the
// model's exact parameter count.
//
// With Params set and Dim zero, Shape picks the multiple of 256 for Dim
// whose model at depth ≈ Dim/96 comes closest to Params, then the number
// of layers that brings the count nearest Params. Heads default to
// Dim/64; KVHeads to Heads/8 from 32 heads up, Heads/4 from 8, else
// Heads; FFN to 8/3·Dim rounded up to a multiple of 256; Vocab to 32000
// from 100M parameters up (4096 from 10M, 512 below); Context to 2048.
//
// Params 1e9 gives Dim 2048, 32 heads, 4 KV heads, FFN 5632, 20 layers:
// TinyLlama-1.1B's shape, two layers shallower (Dim 2048 with Layers 22
// is TinyLlama's 1,100,048,384 exactly). The smallest derived model (Dim
// 256, one layer) has about 1.1M parameters.
func Shape(c Config) (Config, error) {
	if err := shapeFamily(&c); err != nil {
		return c, err
	}
	if c.Params < 0 || c.Dim < 0 || c.Layers < 0 || c.Heads < 0 || c.KVHeads < 0 || c.FFN < 0 || c.Vocab < 0 || c.Context < 0 {
		return c, fmt.Errorf("synth: negative size in %+v", c)
	}
	if !supported(c.Type) {
		return c, fmt.Errorf("synth: cannot write %s weights", c.Type)
	}
	if t, ok := mixTypes[c.Mix]; c.Mix != "" && (!ok || c.Type != t) {
		return c, fmt.Errorf("synth: mix %q with %s weights (the mixes are %s with Q4_K and %s with Q5_K)", c.Mix, c.Type, MixQ4KM, MixQ5KM)
	}
	if c.Dim == 0 && c.Params == 0 {
		return c, fmt.Errorf("synth: set Params or Dim")
	}
	if c.Layers == 0 && c.Params == 0 {
		return c, fmt.Errorf("synth: set Params or Layers")
	}
	if c.Vocab == 0 {
		c.Vocab = vocabFor(c)
	}
	if c.Context == 0 {
		c.Context = defaultCtx
	}
	if c.Dim == 0 {
		best, bestErr := 0, math.Inf(1)
		for d := DimStep; d <= MaxDim; d += DimStep {
			t := c
			t.Dim = d
			if t.Layers == 0 {
				t.Layers = max(1, int(math.Round(float64(d)/dimsPerLayer)))
			}
			if fill(&t) != nil {
				continue
			}
			if e := math.Abs(math.Log(float64(Count(t)) / float64(c.Params))); e < bestErr {
				best, bestErr = d, e
			}
		}
		if best == 0 {
			return c, fmt.Errorf("synth: no %s shape fits %+v", c.Arch, c)
		}
		c.Dim = best
	}
	if err := fill(&c); err != nil {
		return c, err
	}
	if c.Layers == 0 {
		one := c
		one.Layers = 1
		perLayer := float64(Count(one) - fixedCount(one))
		if perLayer <= 0 {
			return c, fmt.Errorf("synth: internal: empty layer in %+v", one)
		}
		l := math.Round((float64(c.Params) - float64(fixedCount(one))) / perLayer)
		c.Layers = int(min(max(l, 1), MaxLayers))
	}
	if c.Layers > MaxLayers {
		return c, fmt.Errorf("synth: %d layers, over the limit of %d", c.Layers, MaxLayers)
	}
	c.Params = Count(c)
	return c, nil
}

// fill derives Heads, KVHeads and FFN from Dim and checks the widths.
func fill(c *Config) error {
	if c.Dim > MaxDim {
		return fmt.Errorf("synth: Dim %d is over the limit of %d", c.Dim, MaxDim)
	}
	if c.Heads == 0 {
		c.Heads = max(1, c.Dim/HeadDim)
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads / gqaGroup(c.Heads)
		if c.Arch == "opt" {
			c.KVHeads = c.Heads
		}
	}
	if c.FFN == 0 {
		c.FFN = int(math.Ceil(ffnMultiplier*float64(c.Dim)/DimStep)) * DimStep
		if c.Arch == "opt" {
			c.FFN = optFFNMultiplier * c.Dim
		}
	}
	if c.Arch == "opt" && c.KVHeads != c.Heads {
		return fmt.Errorf("synth: OPT has no grouped-query attention (%d heads, %d KV heads)", c.Heads, c.KVHeads)
	}
	if c.Dim%c.Heads != 0 || (c.Dim/c.Heads)%2 != 0 {
		return fmt.Errorf("synth: Dim %d does not split into %d heads of even width", c.Dim, c.Heads)
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("synth: %d heads do not group into %d KV heads", c.Heads, c.KVHeads)
	}
	bs := c.Type.BlockSize()
	if c.Dim%bs != 0 || c.FFN%bs != 0 {
		return fmt.Errorf("synth: Dim %d and FFN %d must be multiples of the %s block size %d", c.Dim, c.FFN, c.Type, bs)
	}
	if c.planted() && c.Dim < MinPlantedDim {
		return fmt.Errorf("synth: Dim %d is below the %d a planted model needs", c.Dim, MinPlantedDim)
	}
	if c.Vocab < MinVocab {
		return fmt.Errorf("synth: Vocab %d is below the minimum %d", c.Vocab, MinVocab)
	}
	return nil
}

// gqaGroup is the number of query heads per KV head for a derived shape:
// 8 from 32 heads up (TinyLlama, Llama-2-70B), 4 from 8 heads, else 1 (plain
// multi-head attention), reduced to a divisor of heads.
func gqaGroup(heads int) int {
	g := 1
	switch {
	case heads >= 32:
		g = 8
	case heads >= 8:
		g = 4
	}
	for heads%g != 0 {
		g /= 2
	}
	return g
}

func vocabFor(c Config) int {
	switch {
	case c.Params >= largeParams, c.Params == 0 && c.Dim >= 1024:
		return largeVocab
	case c.Params >= mediumParams, c.Params == 0 && c.Dim >= 512:
		return mediumVocab
	}
	return smallVocab
}

// Count is the parameter count of a shaped config: the elements of every
// tensor Tensors lists (for a SwiGLU llama: embeddings, output, final norm
// and per block the attention, FFN and two norms).
func Count(c Config) int64 {
	var n int64
	for _, t := range Tensors(c) {
		e := int64(1)
		for _, d := range t.Shape {
			e *= int64(d)
		}
		n += e
	}
	return n
}

// fixedCount is the part of Count that does not depend on depth.
func fixedCount(c Config) int64 {
	c.Layers = 0
	return Count(c)
}

func (c Config) kvDim() int {
	if c.Heads == 0 {
		return 0
	}
	return c.Dim / c.Heads * c.KVHeads
}

// HeadDim is the width of one attention head.
func (c Config) HeadDim() int { return c.Dim / c.Heads }

// Tensor is one tensor of a synthetic model, named and shaped as
// llama.cpp names and shapes it (ne0 first).
type Tensor struct {
	Name  string
	Shape []uint64
	Type  dtype.Type
}

// Tensors lists a shaped config's tensors in file order. For a llama:
// token_embd, then per block attn_norm, attn_q, attn_k, attn_v,
// attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down, then output_norm and
// output. OPT adds position_embd after token_embd and a bias after every
// norm and projection, and has no ffn_gate. PowerInfer's layout has
// ffn_down_t (and its bias) in place of ffn_down, then fc1 and fc2. Norms
// and biases are F32, predictors F16; every other 2-D weight has c.Type,
// but where c.Mix says otherwise.
func Tensors(c Config) []Tensor {
	ts := tensors(c)
	if c.Mix != "" {
		for i := range ts {
			var l int
			switch name := ts[i].Name; {
			case name == "output.weight":
				ts[i].Type = dtype.Q6_K
			case strings.HasSuffix(name, ".attn_v.weight"), strings.HasSuffix(name, ".ffn_down.weight"):
				if _, err := fmt.Sscanf(name, "blk.%d.", &l); err == nil && useMoreBits(l, c.Layers) {
					ts[i].Type = dtype.Q6_K
				}
			}
		}
	}
	return ts
}

func tensors(c Config) []Tensor {
	dim, ffn, kv, vocab := uint64(c.Dim), uint64(c.FFN), uint64(c.kvDim()), uint64(c.Vocab)
	opt := c.Arch == "opt"
	mat := func(name string, ne0, ne1 uint64) Tensor { return Tensor{name, []uint64{ne0, ne1}, c.Type} }
	vec := func(name string, n uint64) Tensor { return Tensor{name, []uint64{n}, dtype.F32} }
	norm := func(name string) []Tensor {
		if opt {
			return []Tensor{vec(name+".weight", dim), vec(name+".bias", dim)}
		}
		return []Tensor{vec(name+".weight", dim)}
	}
	proj := func(name string, ne0, ne1 uint64) []Tensor {
		if opt {
			return []Tensor{mat(name+".weight", ne0, ne1), vec(name+".bias", ne1)}
		}
		return []Tensor{mat(name+".weight", ne0, ne1)}
	}
	ts := []Tensor{mat("token_embd.weight", dim, vocab)}
	if opt {
		ts = append(ts, mat("position_embd.weight", dim, uint64(c.Context+optPosOffset)))
	}
	for i := range c.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		ts = append(ts, norm(p+"attn_norm")...)
		ts = append(ts, proj(p+"attn_q", dim, dim)...)
		ts = append(ts, proj(p+"attn_k", dim, kv)...)
		ts = append(ts, proj(p+"attn_v", dim, kv)...)
		ts = append(ts, proj(p+"attn_output", dim, dim)...)
		ts = append(ts, norm(p+"ffn_norm")...)
		if !opt {
			ts = append(ts, mat(p+"ffn_gate.weight", dim, ffn))
		}
		ts = append(ts, proj(p+"ffn_up", dim, ffn)...)
		if c.PowerInfer {
			ts = append(ts, mat(p+"ffn_down_t.weight", dim, ffn))
			if opt {
				ts = append(ts, vec(p+"ffn_down_t.bias", dim))
			}
			r := uint64(PredictorRank(c))
			ts = append(ts,
				Tensor{p + "fc1.weight", []uint64{dim, r}, dtype.F16},
				Tensor{p + "fc2.weight", []uint64{r, ffn}, dtype.F16})
		} else {
			ts = append(ts, proj(p+"ffn_down", ffn, dim)...)
		}
	}
	ts = append(ts, norm("output_norm")...)
	if c.Tied {
		return ts
	}
	return append(ts, mat("output.weight", dim, vocab))
}

// fileTypes maps weight dtypes to llama.cpp's general.file_type (its
// llama_ftype; the K-quants as their "_S" variants, all weights one type).
var fileTypes = map[dtype.Type]uint32{
	dtype.F32:  0,
	dtype.F16:  1,
	dtype.Q4_0: 2,
	dtype.Q4_1: 3,
	dtype.Q8_0: 7,
	dtype.Q5_0: 8,
	dtype.Q5_1: 9,
	dtype.Q4_K: 14,
	dtype.Q5_K: 16,
	dtype.Q6_K: 18,
	dtype.BF16: 32,
}

// supported reports whether Write can produce weights of type t.
func supported(t dtype.Type) bool {
	_, ok := fileTypes[t]
	return ok
}

// Types lists the weight dtypes Write supports.
func Types() []dtype.Type {
	return []dtype.Type{dtype.F32, dtype.F16, dtype.BF16, dtype.Q4_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1, dtype.Q8_0, dtype.Q4_K, dtype.Q5_K, dtype.Q6_K}
}
