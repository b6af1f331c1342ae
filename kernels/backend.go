// Package kernels defines the backend interface: the math the engine runs
// on a device, over buffers the device owns. kernels/cpu implements it on
// host memory (optionally capped to a byte budget, so a CPU can stand in
// for a device in tests), kernels/cuda on an NVIDIA GPU reached without
// cgo. The package knows nothing of layers or models.
//
// Every op is enqueued on the backend's one stream and runs in order;
// Sync waits for all of them. Ops do not return errors: a bad argument or
// a failed launch is recorded and the first one comes back from the next
// Sync (the CUDA model, where launches are asynchronous), and ops after a
// recorded error are skipped. Activations are float32; weights are rows of
// any dtype the backend Supports.
package kernels

import (
	"errors"

	"github.com/stokehq/stoke/models/dtype"
)

// ErrOutOfMemory is returned (wrapped) by Alloc when the device, or the
// budget a backend was capped to, cannot hold the request.
var ErrOutOfMemory = errors.New("out of device memory")

// Buffer is a region of one backend's memory, from Backend.Alloc or a
// Slice of such a region. It is only meaningful to the backend that made it.
type Buffer interface {
	// Len is the region's size in bytes.
	Len() int64
	// Slice returns bytes [off, off+n) of the region. off must be a
	// multiple of 4 (float32 and int32 views); it panics when the range is
	// outside the region (a programming error, like slicing).
	Slice(off, n int64) Buffer
}

// Info describes a device.
type Info struct {
	Name        string // e.g. "NVIDIA GeForce GTX 1060 6GB" or "cpu (capped)"
	TotalBytes  int64  // memory the device has (or the cap)
	FreeBytes   int64  // memory free now
	ComputeCap  [2]int // CUDA compute capability; zero for CPUs
	ReserveNote string // what FreeBytes already excludes (e.g. the CUDA context), for plans
}

// Act is an elementwise activation.
type Act uint8

// Activations (values match models/arch.Act's meaning, not its numbering).
const (
	ActNone Act = iota
	ActSiLU
	ActGELU
	ActReLU
)

// RoPE is rotary position embedding as the model defines it; see
// kernels/cpu.RoPE for the formula.
type RoPE struct {
	Dims        int
	HeadDim     int
	Base        float64
	Scale       float64
	NeoX        bool
	FreqFactors []float32
}

// Backend is a device that holds weights and runs the engine's ops.
type Backend interface {
	Name() string
	Info() Info
	// Supports reports whether the mat-vec ops take weights of type t.
	Supports(t dtype.Type) bool

	// Alloc returns n bytes of device memory, zeroed, or an error wrapping
	// ErrOutOfMemory.
	Alloc(n int64) (Buffer, error)
	// Free releases a buffer from Alloc (not a Slice of it).
	Free(b Buffer)
	// Upload copies src into dst (len(src) ≤ dst.Len()). The copy may run
	// later on the stream: src must stay unchanged until the next Sync.
	Upload(dst Buffer, src []byte)
	// Download copies src into dst (len(dst) ≤ src.Len()); dst holds the
	// data after the next Sync.
	Download(dst []byte, src Buffer)
	// Sync waits for every enqueued op and returns the first error
	// recorded since the last Sync.
	Sync() error

	// MatMul: dst[i·rows+r] = Σ_c W[r,c]·x[i·cols+c] for i < n, r < rows;
	// W is rows rows of cols elements of type t.
	MatMul(dst, w Buffer, t dtype.Type, rows, cols int, x Buffer, n int)
	// MatVecRows: dst[k] = Σ_c W[idx[k],c]·x[c] for k < nIdx (a row gather;
	// idx holds int32 row numbers).
	MatVecRows(dst, w Buffer, t dtype.Type, cols int, idx Buffer, nIdx int, x Buffer)
	// AxpyRows: dst[c] = Σ_k coef[k]·W[idx[k],c] for c < cols (dst is
	// overwritten): the down projection over active neuron-major rows.
	AxpyRows(dst, w Buffer, t dtype.Type, cols int, idx Buffer, nIdx int, coef Buffer)

	// Norm normalises n rows of dim floats: RMSNorm (b ignored) or, with
	// layer, LayerNorm; w (and b, when non-nil) are dim float32 each.
	Norm(dst, x, w, b Buffer, dim, n int, eps float32, layer bool)
	// Rope rotates n tokens of heads heads in place, token i at position
	// pos+i.
	Rope(x Buffer, cfg *RoPE, heads, n, pos int)
	// StoreKV writes n positions of width floats from src into a cache of
	// type t (F32 or F16) at positions pos, pos+1, ….
	StoreKV(cache Buffer, t dtype.Type, width, pos int, src Buffer, n int)
	// Attention: causal attention of n query tokens at positions
	// pos..pos+n−1 against caches k and v of type kvType (see
	// kernels/cpu.Attention for the formula).
	Attention(out, q Buffer, n, pos int, k, v Buffer, kvType dtype.Type, heads, kvHeads, headDim int, scale float32)

	// AddBias: x[i·width+j] += b[j] for i < n.
	AddBias(x, b Buffer, width, n int)
	// AddGather: dst[k] += src[idx[k]] for k < nIdx (a gathered bias).
	AddGather(dst, src, idx Buffer, nIdx int)
	// Add: dst[i] += x[i] for i < n.
	Add(dst, x Buffer, n int)
	// Mul: dst[i] = a[i]·b[i] for i < n.
	Mul(dst, a, b Buffer, n int)
	// Activate applies act to x[0:n] in place.
	Activate(x Buffer, n int, act Act)
	// Threshold zeroes x[i] where |x[i]| ≤ tau, for i < n.
	Threshold(x Buffer, n int, tau float32)

	// Close frees everything the backend holds.
	Close() error
}
