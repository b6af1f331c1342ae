package cpu

import (
	"fmt"

	"github.com/stokehq/stoke/models/dtype"
)

// Multi-input row kernels. MatMul dots every weight row with n inputs; a
// row kernel per input would decode each weight block n times, and for
// the small quantized types decoding is a third to a half of the work.
// The multi-input kernels decode a block once, into registers, and
// multiply it with a group of inputs. Each (row, input) result is computed
// with exactly the operations of the row kernel in the same order (the
// integer block sums are exact in any order, and every input keeps its
// own float accumulators, which take the same products in the same
// sequence), so it is bit for bit what the row kernel gives: MatMul still
// equals MatVec, on either implementation.
//
// A kernel takes a fixed number of inputs (multiSizesFor, floatMultiSizes):
// eight, four or two for Q4_0; four or two for Q4_K, Q5_K and Q6_K; two
// for Q8_0, Q4_1, Q5_0 and Q5_1; three or two for F32, F16 and BF16. MatMul covers n inputs with
// groups of those sizes, largest first, and the row kernel for what is
// left (n = 13 on Q4_0: 8 + 4 + 1).

// useMulti lets MatMul use the multi-input kernels. Tests and benchmarks
// turn it off (setMulti) to compare with the row kernels; it is written
// only between calls, like useAsm.
var useMulti = true

// setMulti sets useMulti and returns a function that restores it.
func setMulti(on bool) (restore func()) {
	old := useMulti
	useMulti = on
	return func() { useMulti = old }
}

// maxMulti is the most inputs one multi-input kernel call takes.
const maxMulti = 8

// qBatch is a group of inputs prepared for an integer-activation
// multi-input kernel: their QVecs (which the generic twins read) and, for
// the assembly, the same activations interleaved so that one pointer walks
// all of them (see set).
type qBatch struct {
	t  dtype.Type
	n  int // inputs, one of multiSizesFor(t)
	nb int // activation blocks per input
	v  [maxMulti]*QVec
	x  []byte    // the assembly's activations
	d  []float32 // the assembly's activation scales (Q8_0, Q4_1, Q5_0, Q5_1)
}

// The input counts of the integer-activation multi-input kernels, largest
// first. Q4_0's kernel, the lightest per input, takes eight; the K-quant
// kernels four (their integer sums in registers, their accumulators, one
// update per super-block, on the stack); the kernels of the other Q8_0
// types two, so that their four accumulators per input stay in registers
// (see legacyLoop in _generate).
var (
	q4MultiSizes     = [...]int{8, 4, 2}
	kMultiSizes      = [...]int{4, 2}
	legacyMultiSizes = [...]int{2}
)

// multiSizesFor returns the input counts of t's integer-activation
// multi-input kernels (none if it has none).
func multiSizesFor(t dtype.Type) []int {
	if t == dtype.Q8_0 && useAsm && useVNNI {
		return q8VNNIMultiSizes[:]
	}
	switch t {
	case dtype.Q4_0:
		return q4MultiSizes[:]
	case dtype.Q8_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1:
		return legacyMultiSizes[:]
	case dtype.Q4_K, dtype.Q5_K, dtype.Q6_K:
		return kMultiSizes[:]
	}
	return nil
}

// qdotMulti sets dst[j] to the row kernel's dot product of the weights w
// of type t with input j of b, for j < b.n: the multi-input kernel of t,
// for which multiSizesFor(t) must list b.n. The caller has checked that w
// covers the inputs; len(dst) ≥ b.n. (A switch rather than a func value:
// dst is the caller's stack array, and must not escape.)
func qdotMulti(t dtype.Type, dst []float32, w []byte, b *qBatch) {
	switch t {
	case dtype.Q4_0:
		dotQ4_0Q8_0Multi(dst, w, b)
	case dtype.Q8_0:
		dotQ8_0Q8_0Multi(dst, w, b)
	case dtype.Q4_1:
		dotQ4_1Q8_0Multi(dst, w, b)
	case dtype.Q5_0:
		dotQ5_0Q8_0Multi(dst, w, b)
	case dtype.Q5_1:
		dotQ5_1Q8_0Multi(dst, w, b)
	case dtype.Q4_K:
		dotQ4_KQ8_KMulti(dst, w, b)
	case dtype.Q5_K:
		dotQ5_KQ8_KMulti(dst, w, b)
	case dtype.Q6_K:
		dotQ6_KQ8_KMulti(dst, w, b)
	default:
		panic(fmt.Sprintf("cpu: no multi-input kernel for %s weights", t))
	}
}

// floatMultiSizes are the input counts of the float multi-input kernels.
var floatMultiSizes = [...]int{3, 2}

// hasFloatMulti reports whether weights of type t, which take float32
// activations, have a multi-input kernel: F32, F16 and BF16 where the
// assembly runs. (Their pure-Go twin is DotRow per input, which gains
// nothing from grouping.)
func hasFloatMulti(t dtype.Type) bool {
	return haveAVX2 && (t == dtype.F32 || t == dtype.F16 || t == dtype.BF16)
}

// floatMulti sets dst[j] = DotRow(t, w, x[j·cols:(j+1)·cols]) for j < n,
// n one of floatMultiSizes, with each group of weights loaded (and
// widened) once for all inputs where the assembly runs. w holds a row of
// cols elements; len(x) ≥ n·cols.
func floatMulti(t dtype.Type, dst []float32, w []byte, x []float32, cols, n int) {
	if useAsm && dotFloatMulti(t, dst, w, x[:n*cols], cols, n) {
		return
	}
	for j := range n {
		dst[j] = DotRow(t, w, x[j*cols:(j+1)*cols])
	}
}

// set makes b the batch of inputs vs, all prepared for weights of type t
// (len(vs) one of multiSizesFor(t)). The assembly layouts interleave the inputs
// by the unit the kernel steps by:
//
//   - Q4_0: per quad of blocks, the inputs' q4Quads (192 bytes each);
//   - Q8_0, Q4_1, Q5_0, Q5_1: per block, the inputs' Q8_0 blocks (34
//     bytes each), and in d, per eight blocks, each input's eight float32
//     scales (QVec.d, the last eight zero-padded);
//   - Q4_K, Q5_K, Q6_K: per super-block, the inputs' Q8_K blocks (292
//     bytes each).
//
// The AVX-512 VNNI kernels, where they run, read Q4_0 interleaved by 32
// bytes rather than by quad (q4BatchUnit) and Q8_0 by the 32 quants of a
// block (q8VNNIQuants), and take eight, four or two Q8_0 inputs (vnni.go).
//
// Where the assembly cannot run, only the QVecs are kept.
func (b *qBatch) set(t dtype.Type, vs []*QVec) {
	b.assign(t, vs)
	b.build()
}

// assign makes vs the inputs of b; build then lays them out.
func (b *qBatch) assign(t dtype.Type, vs []*QVec) {
	if len(vs) < 1 || len(vs) > maxMulti {
		panic(fmt.Sprintf("cpu: batch of %d inputs", len(vs)))
	}
	b.t, b.n, b.nb = t, len(vs), vs[0].nb
	clear(b.v[:])
	copy(b.v[:], vs)
	for _, v := range vs {
		if v.t != t || v.nb != b.nb {
			panic("cpu: batch of unlike inputs")
		}
	}
}

// build writes the assembly's layout of b's inputs (see set).
func (b *qBatch) build() {
	if !haveAVX2 {
		return
	}
	vs := b.v[:b.n]
	switch b.t {
	case dtype.Q4_0:
		b.x = interleave(b.x, vs, func(v *QVec) []byte { return v.quads }, q4BatchUnit())
	case dtype.Q8_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1:
		if b.t == dtype.Q8_0 && useVNNI {
			b.x = q8VNNIQuants(b.x, vs)
		} else {
			b.x = interleave(b.x, vs, func(v *QVec) []byte { return v.blocks }, 34)
		}
		groups := (b.nb + 7) / 8
		if cap(b.d) < 8*groups*len(vs) {
			b.d = make([]float32, 8*groups*len(vs))
		}
		b.d = b.d[:8*groups*len(vs)]
		clear(b.d)
		for j, v := range vs {
			for g := 0; g < groups; g++ {
				copy(b.d[8*(g*len(vs)+j):8*(g*len(vs)+j)+8], v.d[8*g:min(8*g+8, b.nb)])
			}
		}
	case dtype.Q4_K, dtype.Q5_K, dtype.Q6_K:
		b.x = interleave(b.x, vs, func(v *QVec) []byte { return v.blocks }, 292)
	}
}

// interleave returns, in buf's memory when it is large enough, the units
// (unit bytes each) of field(v) for every v in vs interleaved: unit 0 of
// every input, then unit 1 of every input, and so on.
func interleave(buf []byte, vs []*QVec, field func(*QVec) []byte, unit int) []byte {
	units := len(field(vs[0])) / unit
	buf = growBytes(buf, units*unit*len(vs))
	for j, v := range vs {
		src := field(v)
		for u := 0; u < units; u++ {
			copy(buf[(u*len(vs)+j)*unit:], src[u*unit:(u+1)*unit])
		}
	}
	return buf
}
