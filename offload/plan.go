// Package offload decides what lives in device memory and runs the hybrid
// FFN: hot neurons (those that fire often) in VRAM, cold ones in RAM, both
// halves of a layer's active set computed at once and summed.
//
// The planner works on a Desc, a byte-level description of a model that
// the engine builds (offload never parses files). A Plan lists every
// device allocation as a Region of one arena, so the bytes a plan promises
// are exactly the bytes the executor allocates: accounting is exact by
// construction, and a plan over budget is refused before anything is
// allocated.
package offload

import "strconv"

// Mode is how a plan uses the device.
type Mode uint8

const (
	// ModeCPU places nothing on the device.
	ModeCPU Mode = iota
	// ModeLayerSplit places whole layers (attention, every FFN neuron, KV
	// cache) on the device, first layers first, as llama.cpp's -ngl does.
	ModeLayerSplit
	// ModeHybrid places attention, norms, predictors and the output head
	// first, then the hottest FFN neurons by firing frequency per byte.
	ModeHybrid
)

func (m Mode) String() string {
	switch m {
	case ModeCPU:
		return "cpu"
	case ModeLayerSplit:
		return "layer-split"
	case ModeHybrid:
		return "hybrid"
	}
	return "mode?"
}

// Desc is what the planner knows of a model: sizes in bytes, shapes, and
// per-neuron firing frequencies.
type Desc struct {
	Name   string
	Dim    int // residual width
	FFN    int // neurons per layer
	QDim   int // heads × head dim
	KVDim  int // kv heads × head dim
	Vocab  int
	Layers []LayerDesc

	OutputBytes int64 // output matrix (lm_head)
	OutNorm     int64 // final norm weights (+ bias)
	KVType      int   // bytes per cached value: 4 (f32) or 2 (f16)
}

// LayerDesc is one transformer block.
type LayerDesc struct {
	// Attention tensors, each one allocation: q, k, v, o weights, their
	// biases, the attention norm (and QK norms).
	Attn []Tensor
	// FFN tensors that are not per neuron: the FFN norm, the down bias.
	FFNFixed []Tensor
	// Predictor tensors (fc1, fc2), empty when the layer has none.
	Predictor []Tensor
	// NeuronRow is the byte size of one neuron's row in each per-neuron
	// matrix: gate (0 when not gated), up, down (neuron-major), and the
	// 4-byte bias entries when the model has gate/up biases.
	GateRow, UpRow, DownRow int64
	GateBias, UpBias        bool
	// Freq[i] is neuron i's firing frequency in [0,1] (len = Desc.FFN);
	// nil means unknown (all neurons equally likely).
	Freq []float64
}

// Tensor names a device allocation and its size.
type Tensor struct {
	Name  string
	Bytes int64
}

// NeuronBytes is the device bytes one hot neuron takes in this layer.
func (l *LayerDesc) NeuronBytes() int64 {
	n := l.GateRow + l.UpRow + l.DownRow
	if l.GateBias {
		n += 4
	}
	if l.UpBias {
		n += 4
	}
	return n
}

// Region is one sub-allocation of the plan's arena.
type Region struct {
	Name   string // e.g. "blk.3.attn_q.weight", "blk.3.hot.gate", "kv.3.k", "scratch.x"
	Offset int64  // from the arena start, aligned to Align
	Bytes  int64  // requested size (the next region starts at the aligned end)
}

// Align is the alignment of every region in the arena (CUDA's
// cudaMalloc alignment, so vectorised loads stay aligned).
const Align = 256

// LayerPlan is what one layer keeps on the device.
type LayerPlan struct {
	Attn      bool    // attention weights and this layer's KV cache
	Predictor bool    // predictor weights
	Hot       []int32 // neurons on the device, ascending
	Bytes     int64   // device bytes this layer's regions take (aligned)
	HitRate   float64 // expected share of this layer's active neurons that are hot
}

// Plan is a placement: per layer what is on the device, and the arena
// layout that realises it.
type Plan struct {
	Mode       Mode
	Layers     []LayerPlan
	Output     bool     // output norm + head on the device
	Context    int      // KV positions per sequence the plan reserves
	Seqs       int      // sequences whose KV cache the plan reserves (kv regions hold Seqs × Context positions)
	Batch      int      // tokens per step the scratch is sized for
	Regions    []Region // every allocation, ascending offsets
	TotalBytes int64    // arena size: the device bytes the plan allocates
	Reserve    int64    // bytes kept free on the device (context, margin); not in TotalBytes
	HitRate    float64  // expected share of all active neurons served from the device
}

// Region returns the region called name.
func (p *Plan) Region(name string) (Region, bool) {
	for _, r := range p.Regions {
		if r.Name == name {
			return r, true
		}
	}
	return Region{}, false
}

// Region names shared by the planner and the executor. Attention,
// FFN-fixed, predictor and output tensors keep their Tensor.Name.
func HotName(layer int, part string) string { return "blk." + strconv.Itoa(layer) + ".hot." + part } // part: gate, up, down, gate_b, up_b
func KVName(layer int, kv string) string    { return "kv." + strconv.Itoa(layer) + "." + kv }        // kv: k, v

// Scratch returns the device scratch buffers a plan needs for batch
// tokens per step: activations in and out of every op the executor
// enqueues (float32), and the active-index list (int32). withHead adds
// the logits buffer the output head writes.
func Scratch(d *Desc, batch int, withHead bool) []Tensor {
	f := func(n int) int64 { return int64(batch) * int64(n) * 4 }
	s := []Tensor{
		{"scratch.x", f(d.Dim)},    // residual rows in
		{"scratch.xb", f(d.Dim)},   // normalised rows
		{"scratch.out", f(d.Dim)},  // block output rows
		{"scratch.q", f(d.QDim)},   // queries
		{"scratch.att", f(d.QDim)}, // attention output
		{"scratch.k", f(d.KVDim)},  // new keys
		{"scratch.v", f(d.KVDim)},  // new values
		{"scratch.h1", f(d.FFN)},   // gate (or up) activations
		{"scratch.h2", f(d.FFN)},   // up activations
		{"scratch.idx", f(d.FFN)},  // active hot neurons (int32), per token
		{"scratch.pred", f(d.FFN)}, // predictor scores / hidden
	}
	if withHead {
		s = append(s, Tensor{"scratch.logits", f(d.Vocab)})
	}
	return s
}
