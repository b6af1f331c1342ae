// Package arch describes model families as data: which GGUF metadata keys
// give the hyperparameters, which tensors a layer has, and which variant of
// each building block (norm, RoPE, activation) the family uses.
//
// The engine's forward pass reads a Config and a bound Weights; it never
// switches on an architecture name. Adding a family (OPT, ReLU-llama, ...)
// means adding a Family value here and, only for a genuinely new block, a
// new case in the engine's block set.
package arch

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/stokehq/stoke/models/gguf"
)

// Norm selects the normalisation a family uses.
type Norm int

const (
	RMSNorm   Norm = iota // x / sqrt(mean(x²)+eps) · w
	LayerNorm             // (x − mean) / sqrt(var+eps) · w + b
)

// Act selects the FFN activation.
type Act int

const (
	SiLU Act = iota
	GELU
	ReLU
)

func (a Act) String() string {
	switch a {
	case SiLU:
		return "silu"
	case GELU:
		return "gelu"
	case ReLU:
		return "relu"
	}
	return fmt.Sprintf("act(%d)", int(a))
}

// RoPEStyle selects how rotary embeddings pair dimensions.
type RoPEStyle int

const (
	RoPENormal RoPEStyle = iota // pairs (2i, 2i+1): GGUF llama (its q/k rows are pre-permuted)
	RoPENeoX                    // pairs (i, i+d/2): GPT-NeoX, Qwen, Phi
)

// Family is the data that describes one architecture.
type Family struct {
	Name string    // general.architecture value
	RoPE RoPEStyle // rotary pairing (ignored when NoRoPE)
	Norm Norm
	Act  Act
	// Gated: FFN is down(act(gate·x) ⊙ up·x); otherwise down(act(up·x)).
	Gated bool
	// DReLU: the activation is applied to the up projection as well:
	// h = act(gate·x) ⊙ act(up·x) (TurboSparse/Bamboo's dReLU with Act
	// ReLU; PowerInfer calls it LLM_FFN_SYM). Needs Gated.
	DReLU bool
	// QKNorm: per-head RMSNorm on q and k before RoPE (Qwen3).
	QKNorm bool
	// NoRoPE: attention uses no rotary embedding at all (OPT).
	NoRoPE bool
	// PosEmbd: learned absolute positions. The first hidden state is
	// token_embd[token] + position_embd[pos+PosOffset] (Weights.PosEmbd).
	PosEmbd bool
	// PosOffset is the row of position_embd that position 0 reads: 2 for
	// OPT, whose HF checkpoints (and so their GGUF conversions) keep the
	// two padding rows of OPTLearnedPositionalEmbedding.
	PosOffset int
	// Biases: every projection and norm carries a bias (OPT). Bind then
	// requires all of them, so a file missing one fails at load.
	Biases bool
}

var families = map[string]Family{}

// Register adds a family. It panics on a duplicate: registration happens
// in init, so that is a programming error caught by any test.
func Register(f Family) {
	if _, dup := families[f.Name]; dup {
		panic("arch: family registered twice: " + f.Name)
	}
	families[f.Name] = f
}

// Lookup returns the family registered under name.
func Lookup(name string) (Family, bool) {
	f, ok := families[name]
	return f, ok
}

// Names lists the registered families, sorted.
func Names() []string {
	var n []string
	for k := range families {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Config holds a model's hyperparameters, read once from GGUF metadata.
type Config struct {
	Family
	Name     string // general.name
	Dim      int    // embedding_length
	Layers   int    // block_count
	Heads    int    // attention.head_count
	KVHeads  int    // attention.head_count_kv (defaults to Heads)
	HeadDim  int    // attention.key_length (defaults to Dim/Heads)
	ValueDim int    // attention.value_length (defaults to HeadDim)
	FFN      int    // feed_forward_length
	Vocab    int    // rows of token_embd
	// Context is context_length (the training context); for PosEmbd
	// families Bind lowers it to the positions position_embd holds.
	Context int
	NormEps float32

	RoPEDims  int     // rope.dimension_count (defaults to HeadDim; unused when NoRoPE)
	RoPEBase  float64 // rope.freq_base (default 10000)
	RoPEScale float64 // linear position scale: positions are multiplied by this (1/factor)

	// PowerInfer is set for files with PowerInfer's magic "PWRI". Its
	// converters write them for ReLU models only and its runtime always
	// applies ReLU on their sparse path, so such a file is read as ReLU
	// unless KeyActivation says otherwise.
	PowerInfer bool
	// SparseThreshold is powerinfer.sparse_threshold (default 0): neuron i
	// of a layer is computed when its predictor output
	// (fc2·ReLU(fc1·x))_i is ≥ SparseThreshold.
	SparseThreshold float32
}

// Metadata keys read besides the per-architecture hyperparameters.
const (
	// KeyActivation overrides a family's FFN activation: "silu", "gelu",
	// "relu" or "drelu" (ReLU on gate and up; gated families only). Stoke
	// writes it into synthetic and converted ReLU/dReLU llamas (a ReluLLaMA
	// or ProSparse converted by llama.cpp is a plain "llama" file that
	// cannot be told apart from a SwiGLU one otherwise).
	KeyActivation = "stoke.ffn.activation"
	// KeySparseThreshold is PowerInfer's predictor threshold (float32).
	KeySparseThreshold = "powerinfer.sparse_threshold"
)

// QDim is the width of the concatenated query heads.
func (c *Config) QDim() int { return c.Heads * c.HeadDim }

// KVDim is the width of the concatenated key (and value) heads.
func (c *Config) KVDim() int { return c.KVHeads * c.HeadDim }

// Limits guard against absurd metadata, so a hostile file cannot make the
// engine allocate terabytes for a KV cache or scratch.
const (
	MaxDim     = 1 << 17
	MaxLayers  = 1 << 10
	MaxHeads   = 1 << 12
	MaxFFN     = 1 << 20
	MaxContext = 1 << 24
)

// ConfigFromGGUF reads the hyperparameters of f's architecture.
func ConfigFromGGUF(f *gguf.File) (Config, error) {
	name, ok := f.String("general.architecture")
	if !ok {
		return Config{}, fmt.Errorf("arch: general.architecture is missing")
	}
	fam, ok := Lookup(name)
	if !ok {
		return Config{}, fmt.Errorf("arch: unsupported architecture %q (supported: %s)", name, strings.Join(Names(), ", "))
	}
	c := Config{Family: fam, PowerInfer: f.Magic == gguf.MagicPowerInfer}
	c.Name, _ = f.String("general.name")
	p := name + "."
	var err error
	get := func(key string, def int, max int) int {
		v, ok := f.Uint(p + key)
		if !ok {
			if def < 0 && err == nil {
				err = fmt.Errorf("arch: %s%s is missing", p, key)
			}
			return def
		}
		if v == 0 || v > uint64(max) {
			if err == nil {
				err = fmt.Errorf("arch: %s%s = %d is out of range [1, %d]", p, key, v, max)
			}
			return def
		}
		return int(v)
	}
	c.Dim = get("embedding_length", -1, MaxDim)
	c.Layers = get("block_count", -1, MaxLayers)
	c.Heads = get("attention.head_count", -1, MaxHeads)
	c.FFN = get("feed_forward_length", -1, MaxFFN)
	c.Context = get("context_length", 2048, MaxContext)
	if err != nil {
		return Config{}, err
	}
	c.KVHeads = get("attention.head_count_kv", c.Heads, MaxHeads)
	c.HeadDim = get("attention.key_length", c.Dim/c.Heads, MaxDim)
	c.ValueDim = get("attention.value_length", c.HeadDim, MaxDim)
	c.RoPEDims = get("rope.dimension_count", c.HeadDim, MaxDim)
	if err != nil {
		return Config{}, err
	}
	if c.Heads%c.KVHeads != 0 {
		return Config{}, fmt.Errorf("arch: head_count %d is not a multiple of head_count_kv %d", c.Heads, c.KVHeads)
	}
	if c.ValueDim != c.HeadDim {
		return Config{}, fmt.Errorf("arch: value_length %d != key_length %d is not supported", c.ValueDim, c.HeadDim)
	}
	if c.RoPEDims > c.HeadDim || c.RoPEDims%2 != 0 {
		return Config{}, fmt.Errorf("arch: rope.dimension_count %d must be even and ≤ head size %d", c.RoPEDims, c.HeadDim)
	}
	eps := 1e-5
	key := "attention.layer_norm_rms_epsilon"
	if fam.Norm == LayerNorm {
		key = "attention.layer_norm_epsilon"
	}
	if v, ok := f.Float(p + key); ok {
		eps = v
	}
	if !(eps > 0 && eps < 1) {
		return Config{}, fmt.Errorf("arch: %s%s = %g is out of range", p, key, eps)
	}
	c.NormEps = float32(eps)
	c.RoPEBase = 10000
	if v, ok := f.Float(p + "rope.freq_base"); ok {
		if !(v > 1) {
			return Config{}, fmt.Errorf("arch: %srope.freq_base = %g is out of range", p, v)
		}
		c.RoPEBase = v
	}
	c.RoPEScale = 1
	st, hasType := f.String(p + "rope.scaling.type")
	factor, hasFactor := f.Float(p + "rope.scaling.factor")
	if !hasFactor {
		if v, ok := f.Float(p + "rope.scale_linear"); ok { // older key
			factor, hasFactor, st, hasType = v, true, "linear", true
		}
	}
	switch {
	case !hasType || st == "none" || (hasFactor && factor == 1):
	case st == "linear":
		if !(factor > 0) {
			return Config{}, fmt.Errorf("arch: %srope.scaling.factor = %g is out of range", p, factor)
		}
		c.RoPEScale = 1 / factor
	default:
		return Config{}, fmt.Errorf("arch: rope scaling type %q is not supported yet (linear is)", st)
	}
	if err := c.activation(f); err != nil {
		return Config{}, err
	}
	if v, ok := f.Get(KeySparseThreshold); ok {
		t, ok := v.Float()
		if !ok || math.IsNaN(t) || math.IsInf(t, 0) {
			return Config{}, fmt.Errorf("arch: %s is %s, want a finite number", KeySparseThreshold, v.TypeText())
		}
		c.SparseThreshold = float32(t)
	}
	return c, nil
}

// activation applies PowerInfer's implied ReLU and then KeyActivation.
func (c *Config) activation(f *gguf.File) error {
	if c.PowerInfer && c.Act == SiLU {
		c.Act = ReLU
	}
	v, ok := f.Get(KeyActivation)
	if !ok {
		return nil
	}
	s, ok := v.String()
	if !ok {
		return fmt.Errorf("arch: %s is %s, want a string", KeyActivation, v.TypeText())
	}
	c.DReLU = false
	switch s {
	case "silu":
		c.Act = SiLU
	case "gelu":
		c.Act = GELU
	case "relu":
		c.Act = ReLU
	case "drelu":
		if !c.Gated {
			return fmt.Errorf("arch: %s = drelu needs a gated FFN, and %s's is not", KeyActivation, c.Family.Name)
		}
		c.Act, c.DReLU = ReLU, true
	default:
		return fmt.Errorf("arch: %s = %q is not one of silu, gelu, relu, drelu", KeyActivation, s)
	}
	return nil
}
