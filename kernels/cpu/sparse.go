package cpu

import (
	"unsafe"

	"github.com/stokehq/stoke/models/dtype"
)

// sparseCols is the widest column chunk AxpyRows decodes at once (on the
// stack); it is a multiple of every block size (32 and 256).
const sparseCols = 1024

// AxpyRows accumulates a sparse combination of rows:
//
//	dst[c] = Σ_k coef[k] · W[idx[k], c]   for c < cols
//
// W is rows of cols elements of type t (t.RowBytes(cols) bytes each). It is
// the down projection of a sparse FFN stored neuron-major (one row per
// neuron, PowerInfer's ffn_down_t): only the active neurons' rows are read.
//
// The work is split by column chunks aligned to the type's blocks, so every
// byte of every listed row is read exactly once, by one worker, and no
// reduction across workers is needed. dst is overwritten.
//
// An AxpyRows value holds the call's state so that a call allocates
// nothing; keep one per caller (it is not safe for concurrent calls).
type AxpyRows struct {
	dst        []float32
	w          []byte
	t          dtype.Type
	cols, rb   int
	chunk      int // columns per work item
	chunkBytes int
	idx        []int32
	coef       []float32
}

// Do computes dst as described above, on pool p.
func (a *AxpyRows) Do(p *Pool, dst []float32, w []byte, t dtype.Type, cols int, idx []int32, coef []float32) {
	rb := rowBytes(t, cols)
	checkLen("dst", len(dst), cols)
	checkLen("coef", len(coef), len(idx))
	rows := len(w) / max(rb, 1)
	for _, r := range idx {
		if r < 0 || int(r) >= rows {
			panic("cpu: AxpyRows row index out of range")
		}
	}
	bs := t.BlockSize()
	chunk := min(cols, max(bs, sparseCols/bs*bs))
	*a = AxpyRows{dst: dst, w: w, t: t, cols: cols, rb: rb, chunk: chunk, idx: idx, coef: coef}
	a.chunkBytes = chunk / bs * t.TypeSize()
	n := (cols + chunk - 1) / chunk
	p.Parallel(n, 1, a)
}

// Run implements Task over column chunks.
//
// F32 and F16 rows are added straight from the weights (the AVX2 axpy
// kernels where there are any: F16C converts F16 in registers); Q8_0 rows,
// the engine's neuron-major form of quantized downs, by a fused
// dequantize-and-add loop; other types through a decoded copy of the
// chunk.
func (a *AxpyRows) Run(lo, hi int) {
	var buf [sparseCols]float32
	for ch := lo; ch < hi; ch++ {
		c0 := ch * a.chunk
		c1 := min(c0+a.chunk, a.cols)
		out := a.dst[c0:c1]
		clear(out)
		n := c1 - c0
		b0 := ch * a.chunkBytes
		b1 := b0 + n/a.t.BlockSize()*a.t.TypeSize()
		switch a.t {
		case dtype.F32:
			for k, r := range a.idx {
				row := a.w[int(r)*a.rb+b0 : int(r)*a.rb+b1]
				axpyF32(out, a.coef[k], unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(row))), n))
			}
		case dtype.F16:
			for k, r := range a.idx {
				row := a.w[int(r)*a.rb+b0 : int(r)*a.rb+b1]
				axpyHalf(out, a.coef[k], unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(row))), n))
			}
		case dtype.Q8_0:
			for k, r := range a.idx {
				axpyQ8_0(out, a.coef[k], a.w[int(r)*a.rb+b0:int(r)*a.rb+b1])
			}
		default:
			tmp := buf[:n]
			for k, r := range a.idx {
				row := a.w[int(r)*a.rb : (int(r)+1)*a.rb]
				DequantizeRow(a.t, row[b0:b1], tmp)
				Axpy(out, a.coef[k], tmp)
			}
		}
	}
}

// axpyQ8_0 computes dst[j] += c·W[j] for the len(dst) elements of Q8_0
// blocks in row (d f16 | qs[32] int8 per block, W[j] = d·qs[j]), without
// a decoded copy: per block s = c·d, then dst[j] += s·qs[j].
func axpyQ8_0(dst []float32, c float32, row []byte) {
	nb := len(dst) / 32
	row = row[:34*nb]
	lut := &i8Table
	for i := range nb {
		b := (*[34]byte)(row[34*i:])
		y := (*[32]float32)(dst[32*i:])
		s := c * f16at(b[0:])
		for j := range 32 {
			y[j] += s * lut[b[2+j]]
		}
	}
}
