package cpu

import (
	"encoding/binary"
	"fmt"

	"github.com/stokehq/stoke/models/dtype"
)

// The integer-activation row kernels: a weight row against x quantized to
// 8 bits (see q8act.go for the formats and the error they add, dotq8.go
// and dotk.go for what each kernel computes). This is what llama.cpp does
// on the CPU, and what MatVec, MatMul and MatVecRows use for quantized
// weights: integer multiply-adds run several times faster than decoding
// every weight to float32, fast enough to keep up with memory.

// ActivationType returns the format the mat-vec drivers convert x to for
// weights of type t: Q8_0 for Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0; Q8_K for
// Q4_K, Q5_K and Q6_K; F32 (x used as given, the exact DotRow kernels) for
// F32, F16, BF16 and Q8_K weights.
func ActivationType(t dtype.Type) dtype.Type {
	switch t {
	case dtype.Q4_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1, dtype.Q8_0:
		return dtype.Q8_0
	case dtype.Q4_K, dtype.Q5_K, dtype.Q6_K:
		return dtype.Q8_K
	}
	return dtype.F32
}

// QVec is a vector x prepared for the integer-activation row kernels of
// one weight type: its quants in GGUF's Q8_0 or Q8_K block layout, plus
// per-block data that every row's dot product would otherwise recompute
// (for Q8_0, each block's scale widened to float32; for Q4_0 weights, the
// quants rearranged for the assembly, see dotq8.go; for the pure-Go
// kernels, the quants as float32). Only what the kernels that run read is
// computed: the float32 quants while the pure-Go kernels are selected,
// the Q4_0 layout where the assembly can run, so a QVec is prepared for
// the kernels selected when Quantize or SetBlocks ran (tests that switch
// implementations prepare it again). The zero QVec is empty; Quantize and
// SetBlocks reuse its memory, so a QVec kept across calls allocates only
// when it has to grow.
type QVec struct {
	t      dtype.Type // the weight type v is prepared for
	at     dtype.Type // ActivationType(t)
	nb     int        // blocks
	blocks []byte     // nb blocks of type at
	d      []float32  // Q8_0: the nb block scales as float32
	y      []float32  // the quants as float32, for the generic kernels
	quads  []byte     // Q4_0 weights: q4Quads layout, 192 bytes per four blocks
	pure   bool       // y holds v's quants: v was prepared for the pure-Go kernels
}

// Quantize sets v to x quantized for weights of type t: by QuantizeQ8_0 or
// QuantizeQ8_K as ActivationType(t) says. It panics for a type whose
// activations stay float32 and for a len(x) that is not whole blocks.
func (v *QVec) Quantize(t dtype.Type, x []float32) {
	at := ActivationType(t)
	if at == dtype.F32 {
		panic(fmt.Sprintf("cpu: %s weights take float32 activations", t))
	}
	nb := checkQuantize(at, x, nil)
	v.grow(t, nb)
	if at == dtype.Q8_0 {
		quantizeQ8_0(x, v.blocks, nb)
	} else {
		quantizeQ8_K(x, v.blocks, nb)
	}
	v.derive()
}

// SetBlocks sets v, for weights of type t, to a copy of activation blocks
// of type ActivationType(t) (Q8_0 or Q8_K) as QuantizeQ8_0 or QuantizeQ8_K
// write them; len(blocks) must be a whole number of blocks. The quants
// must lie in [−127, 127], as the quantizers make them (the AVX2 kernels
// rely on it), and Q8_K's bsums must be the sums of its quants.
func (v *QVec) SetBlocks(t dtype.Type, blocks []byte) {
	at := ActivationType(t)
	if at == dtype.F32 {
		panic(fmt.Sprintf("cpu: %s weights take float32 activations", t))
	}
	ts := at.TypeSize()
	if len(blocks)%ts != 0 {
		panic(fmt.Sprintf("cpu: %d bytes are not whole %s blocks", len(blocks), at))
	}
	v.grow(t, len(blocks)/ts)
	copy(v.blocks, blocks)
	v.derive()
}

// Blocks returns v's quantized blocks (GGUF layout); they alias v.
func (v *QVec) Blocks() []byte { return v.blocks }

// Len returns the number of values v holds.
func (v *QVec) Len() int {
	if v.nb == 0 {
		return 0
	}
	return v.nb * v.at.BlockSize()
}

func (v *QVec) grow(t dtype.Type, nb int) {
	at := ActivationType(t)
	v.t, v.at, v.nb = t, at, nb
	v.blocks = growBytes(v.blocks, nb*at.TypeSize())
	if at == dtype.Q8_0 {
		if cap(v.d) < nb {
			v.d = make([]float32, nb)
		}
		v.d = v.d[:nb]
	}
	v.pure = !useAsm
	if v.pure {
		if n := nb * at.BlockSize(); cap(v.y) < n {
			v.y = make([]float32, n)
		}
		v.y = v.y[:nb*at.BlockSize()]
	}
	if t == dtype.Q4_0 && haveAVX2 {
		v.quads = growBytes(v.quads, (nb+3)/4*q4QuadBytes)
	}
}

func growBytes(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// derive computes the per-block data from the blocks: the float32 scales
// (Q8_0); the float32 quants of the pure-Go kernels while those are
// selected; the Q4_0 layout where the assembly can run (also while the
// pure-Go kernels are selected, which a test may undo before v is used).
func (v *QVec) derive() {
	if v.at == dtype.Q8_K {
		if v.pure {
			for i := 0; i < v.nb; i++ {
				b := (*[292]byte)(v.blocks[292*i:])
				y := (*[256]float32)(v.y[256*i:])
				for j := range y {
					y[j] = i8Table[b[4+j]]
				}
			}
		}
		return
	}
	for i := range v.d {
		v.d[i] = f16Table[binary.LittleEndian.Uint16(v.blocks[34*i:])]
	}
	if v.pure {
		for i := range v.d {
			b := (*[32]byte)(v.blocks[34*i+2:])
			y := (*[32]float32)(v.y[32*i:])
			for j := range y {
				y[j] = i8Table[b[j]]
			}
		}
	}
	if v.t == dtype.Q4_0 && haveAVX2 {
		q4Quads(v.quads, v.blocks, v.d, v.nb)
	}
}

// ys returns v's quants as float32, for the pure-Go kernels: v.y, or
// where v was prepared while the assembly kernels were selected (which do
// not read them; a test switched implementations since), a new decoded
// copy, so that v stays read-only for concurrent readers.
func (v *QVec) ys() []float32 {
	if v.pure {
		return v.y
	}
	bs, ts := v.at.BlockSize(), v.at.TypeSize()
	qoff := 2 // Q8_0: d f16 | qs[32]
	if v.at == dtype.Q8_K {
		qoff = 4 // d f32 | qs[256] | bsums
	}
	y := make([]float32, v.nb*bs)
	for i := range v.nb {
		for j, q := range v.blocks[ts*i+qoff : ts*i+qoff+bs] {
			y[bs*i+j] = i8Table[q]
		}
	}
	return y
}

// qdotFunc is an integer-activation row kernel: the dot product of the
// weights in w with v. The caller has checked that w covers v.
type qdotFunc func(w []byte, v *QVec) float32

// qdotFor returns the row kernel for weights of type t.
func qdotFor(t dtype.Type) qdotFunc {
	switch t {
	case dtype.Q4_0:
		return dotQ4_0Q8_0
	case dtype.Q4_1:
		return dotQ4_1Q8_0
	case dtype.Q5_0:
		return dotQ5_0Q8_0
	case dtype.Q5_1:
		return dotQ5_1Q8_0
	case dtype.Q8_0:
		return dotQ8_0Q8_0
	case dtype.Q4_K:
		return dotQ4_KQ8_K
	case dtype.Q5_K:
		return dotQ5_KQ8_K
	case dtype.Q6_K:
		return dotQ6_KQ8_K
	}
	panic(fmt.Sprintf("cpu: no integer-activation kernel for %s weights", t))
}

// qCheck returns the kernel for weights of type t with activations v and
// the bytes of weights that cover v, panicking on a mismatch.
func qCheck(t dtype.Type, v *QVec) (qdotFunc, int) {
	f := qdotFor(t)
	if v.nb > 0 && v.t != t {
		panic(fmt.Sprintf("cpu: activations prepared for %s weights used with %s", v.t, t))
	}
	return f, v.Len() / t.BlockSize() * t.TypeSize()
}

// DotRowQ8 returns the dot product of a row of weights of type t with v,
// which must have been prepared for t:
// Σ_c W[c]·x̂[c] over v's values, computed with exact integer sums per
// block as dotq8.go and dotk.go describe. row must hold at least v.Len()
// elements. It panics when t has no integer kernel.
//
// The result equals Σ_c W[c]·x̂[c] to float32 rounding; against the
// float32 x that was quantized, the error bound is that of q8act.go.
func DotRowQ8(t dtype.Type, row []byte, v *QVec) float32 {
	f, rb := qCheck(t, v)
	if len(row) < rb {
		panic(fmt.Sprintf("cpu: DotRowQ8: %s row of %d bytes is shorter than %d", t, len(row), rb))
	}
	return f(row, v)
}

// DotRowsQ8 computes dst[r] = DotRowQ8(t, rows[r*rowBytes:(r+1)*rowBytes], v)
// for r < len(dst), selecting the kernel once.
func DotRowsQ8(t dtype.Type, dst []float32, rows []byte, rowBytes int, v *QVec) {
	if len(dst) == 0 {
		return
	}
	f, rb := qCheck(t, v)
	if rowBytes < rb || len(rows) < (len(dst)-1)*rowBytes+rb {
		panic(fmt.Sprintf("cpu: DotRowsQ8: %d bytes hold fewer than %d rows of %d ≥ %d bytes", len(rows), len(dst), rowBytes, rb))
	}
	for r := range dst {
		dst[r] = f(rows[r*rowBytes:], v)
	}
}
