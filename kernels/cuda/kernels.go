package cuda

import "github.com/stokehq/stoke/models/dtype"

// kernelID indexes the launch table: every entry point of kernels.cu.
type kernelID uint8

const (
	kGemv1F32 kernelID = iota
	kGemv1F16
	kGemv1BF16
	kGemv1Q8_0
	kGemv1Q4_0
	kGemv8F32
	kGemv8F16
	kGemv8BF16
	kGemv8Q8_0
	kGemv8Q4_0
	kAxpyF32
	kAxpyF16
	kAxpyBF16
	kAxpyQ8_0
	kAxpyQ4_0
	kRMSNorm
	kLayerNorm
	kRope
	kStoreKVF32
	kStoreKVF16
	kAddBias
	kAddGather
	kAdd
	kMul
	kSiLU
	kGELU
	kReLU
	kThreshold
	kReadBW
	kAttnF32
	kAttnF16
	numKernels
)

// kernelSpec names an entry point and its parameters, one letter each:
// p a pointer, l a 64-bit integer, i a 32-bit integer, f a float32, R the
// RopeInv struct (ropeMax float64s by value). A test checks these against
// the .entry declarations of both PTX files.
type kernelSpec struct {
	name   string
	params string
}

var kernelSpecs = [numKernels]kernelSpec{
	kGemv1F32:   {"gemv1_f32", gemv1Params},
	kGemv1F16:   {"gemv1_f16", gemv1Params},
	kGemv1BF16:  {"gemv1_bf16", gemv1Params},
	kGemv1Q8_0:  {"gemv1_q8_0", gemv1Params},
	kGemv1Q4_0:  {"gemv1_q4_0", gemv1Params},
	kGemv8F32:   {"gemv8_f32", gemv8Params},
	kGemv8F16:   {"gemv8_f16", gemv8Params},
	kGemv8BF16:  {"gemv8_bf16", gemv8Params},
	kGemv8Q8_0:  {"gemv8_q8_0", gemv8Params},
	kGemv8Q4_0:  {"gemv8_q4_0", gemv8Params},
	kAxpyF32:    {"axpy_f32", axpyParams},
	kAxpyF16:    {"axpy_f16", axpyParams},
	kAxpyBF16:   {"axpy_bf16", axpyParams},
	kAxpyQ8_0:   {"axpy_q8_0", axpyParams},
	kAxpyQ4_0:   {"axpy_q4_0", axpyParams},
	kRMSNorm:    {"rms_norm", "pppif"},
	kLayerNorm:  {"layer_norm", "ppppif"},
	kRope:       {"rope", "piiiiiiR"},
	kStoreKVF32: {"store_kv_f32", "ppl"},
	kStoreKVF16: {"store_kv_f16", "ppl"},
	kAddBias:    {"add_bias", "ppil"},
	kAddGather:  {"add_gather", "pppllp"},
	kAdd:        {"add", "ppl"},
	kMul:        {"mul", "pppl"},
	kSiLU:       {"silu", "pl"},
	kGELU:       {"gelu", "pl"},
	kReLU:       {"relu", "pl"},
	kThreshold:  {"threshold", "plf"},
	kReadBW:     {"read_bw", "plp"},
	kAttnF32:    {"attn_f32kv", attnParams},
	kAttnF16:    {"attn_f16kv", attnParams},
}

const (
	// dst, w, rb, cols, idx, nrows, nrw, x, flags, err
	gemv1Params = "pplipilpip"
	// dst, dstride, w, rb, cols, nrows, x, nx, flags, err
	gemv8Params = "plpliipiip"
	// dst, w, rb, cols, idx, nidx, nrw, coef, rps, flags, scratch, counters, err
	axpyParams = "pplipilpiippp"
	// out, q, k, v, pos, heads, kvheads, hd, scale, scratch, counters
	attnParams = "ppppiiiifpp"
)

// maxParams is the most parameters an entry point takes.
const maxParams = 13

// Launch geometry shared with the CUDA source (common.cuh, ops.cuh,
// attention.cuh); the values must match.
const (
	matWarps   = 8    // WARPS: warps per mat-vec / AxpyRows block
	axpyCols   = 1024 // AXPY_COLS: columns per AxpyRows block
	ropeMax    = 256  // ROPE_MAX: most rotated pairs per head
	attWarps   = 4    // ATT_WARPS: warps per attention block
	attMaxHead = 256  // ATT_MAXHD: largest head size
	flagVec    = 1    // F_VEC
	flagXAlign = 2    // F_XAL
	errIndex   = 1    // ERR_INDEX
)

// ropeInv is the RopeInv kernel parameter.
type ropeInv [ropeMax]float64

// matKernels holds the mat-vec kernels of one weight type.
type matKernels struct {
	gemv1, gemv8, axpy kernelID
	quant              bool
}

// weightKernels lists the weight types the mat-vec ops take.
var weightKernels = map[dtype.Type]matKernels{
	dtype.F32:  {kGemv1F32, kGemv8F32, kAxpyF32, false},
	dtype.F16:  {kGemv1F16, kGemv8F16, kAxpyF16, false},
	dtype.BF16: {kGemv1BF16, kGemv8BF16, kAxpyBF16, false},
	dtype.Q8_0: {kGemv1Q8_0, kGemv8Q8_0, kAxpyQ8_0, true},
	dtype.Q4_0: {kGemv1Q4_0, kGemv8Q4_0, kAxpyQ4_0, true},
}
