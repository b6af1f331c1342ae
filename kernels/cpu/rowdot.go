package cpu

import (
	"fmt"

	"github.com/stokehq/stoke/models/dtype"
)

// The row kernels: one row of a weight matrix, in its stored type, against
// a float32 vector. Block layouts are documented on dtype.Dequantize; the
// per-type kernels are in quant_*.go.
//
// The dot products decode each block into registers and multiply by x in
// float32 (the activations are never quantized here). Block scales are
// factored out of the inner sums, e.g. for Q4_0
//
//	Σ_blocks d · Σ_j (q_j − 8)·x_j
//
// and for the types with a per-block min (Q4_1, Q5_1, Q4_K, Q5_K)
//
//	Σ_blocks d·Σ_j q_j·x_j + m·Σ_j x_j
//
// so the result equals Σ_c w[c]·x[c] up to float32 rounding (the tests
// bound the difference), not bit for bit. DequantizeRow, by contrast, is
// bit-exact with dtype.Dequantize.
//
// Types are not validated per call beyond what indexing costs: callers
// check Computable at load time, and an invalid type panics.

// DotRow returns Σ_c w[c]·x[c] where row holds len(x) elements of type t
// (len(x) is a multiple of t.BlockSize(); row is exactly RowBytes(len(x))
// long). It panics for a type that is not Computable or a row that is too
// short. DotRow(t, row, x) equals DotRows(t, dst[:1], row, len(row), x)
// bit for bit.
func DotRow(t dtype.Type, row []byte, x []float32) float32 {
	switch t {
	case dtype.F32:
		return dotF32(row, x)
	case dtype.F16:
		return dotF16(row, x)
	case dtype.BF16:
		return dotBF16(row, x)
	case dtype.Q4_0:
		return dotQ4_0(row, x)
	case dtype.Q4_1:
		return dotQ4_1(row, x, nil)
	case dtype.Q5_0:
		return dotQ5_0(row, x)
	case dtype.Q5_1:
		return dotQ5_1(row, x, nil)
	case dtype.Q8_0:
		return dotQ8_0(row, x)
	case dtype.Q4_K:
		return dotQ4_K(row, x, nil)
	case dtype.Q5_K:
		return dotQ5_K(row, x, nil)
	case dtype.Q6_K:
		return dotQ6_K(row, x)
	case dtype.Q8_K:
		return dotQ8_K(row, x)
	}
	panic(fmt.Sprintf("cpu: DotRow: cannot compute with %s", t))
}

// xsumMax is the most 32-element blocks of x whose sums DotRows keeps on
// the stack (x up to 32768 elements); longer rows sum x inline per row.
const xsumMax = 1024

// DotRows computes dst[r] = DotRow(t, rows[r*rowBytes:(r+1)*rowBytes], x)
// for r in [0, len(dst)): the per-chunk entry point of the mat-vec
// drivers. rowBytes must be t's RowBytes(len(x)) and rows at least
// len(dst)·rowBytes long. The type switch is done once, and for the types
// with a per-block min the block sums Σ x_j are computed once for all rows
// (exactly as DotRow computes them, so results stay bit-identical).
func DotRows(t dtype.Type, dst []float32, rows []byte, rowBytes int, x []float32) {
	if len(dst) == 0 {
		return
	}
	if rowBytes < 0 || len(rows)/max(rowBytes, 1) < len(dst) {
		panic(fmt.Sprintf("cpu: DotRows: %d bytes hold fewer than %d rows of %d bytes", len(rows), len(dst), rowBytes))
	}
	rb := rowBytes
	switch t {
	case dtype.F32:
		for r := range dst {
			dst[r] = dotF32(rows[r*rb:r*rb+rb], x)
		}
	case dtype.F16:
		for r := range dst {
			dst[r] = dotF16(rows[r*rb:r*rb+rb], x)
		}
	case dtype.BF16:
		for r := range dst {
			dst[r] = dotBF16(rows[r*rb:r*rb+rb], x)
		}
	case dtype.Q4_0:
		for r := range dst {
			dst[r] = dotQ4_0(rows[r*rb:r*rb+rb], x)
		}
	case dtype.Q4_1, dtype.Q5_1, dtype.Q4_K, dtype.Q5_K:
		dotRowsWithMins(t, dst, rows, rb, x)
	case dtype.Q5_0:
		for r := range dst {
			dst[r] = dotQ5_0(rows[r*rb:r*rb+rb], x)
		}
	case dtype.Q8_0:
		for r := range dst {
			dst[r] = dotQ8_0(rows[r*rb:r*rb+rb], x)
		}
	case dtype.Q6_K:
		for r := range dst {
			dst[r] = dotQ6_K(rows[r*rb:r*rb+rb], x)
		}
	case dtype.Q8_K:
		for r := range dst {
			dst[r] = dotQ8_K(rows[r*rb:r*rb+rb], x)
		}
	default:
		panic(fmt.Sprintf("cpu: DotRows: cannot compute with %s", t))
	}
}

// DequantizeRow decodes the len(dst) elements of type t in row into dst:
// the fast path of dtype.Dequantize, with the same results bit for bit
// (same formulas, same float32 operation order, no fused multiply-adds).
// It panics for a type that is not Computable or a row that is too short.
func DequantizeRow(t dtype.Type, row []byte, dst []float32) {
	switch t {
	case dtype.F32:
		decF32(row, dst)
	case dtype.F16:
		decF16(row, dst)
	case dtype.BF16:
		decBF16(row, dst)
	case dtype.Q4_0:
		decQ4_0(row, dst)
	case dtype.Q4_1:
		decQ4_1(row, dst)
	case dtype.Q5_0:
		decQ5_0(row, dst)
	case dtype.Q5_1:
		decQ5_1(row, dst)
	case dtype.Q8_0:
		decQ8_0(row, dst)
	case dtype.Q4_K:
		decQ4_K(row, dst)
	case dtype.Q5_K:
		decQ5_K(row, dst)
	case dtype.Q6_K:
		decQ6_K(row, dst)
	case dtype.Q8_K:
		decQ8_K(row, dst)
	default:
		panic(fmt.Sprintf("cpu: DequantizeRow: cannot decode %s", t))
	}
}

// dotRowsWithMins is DotRows for the types with a per-block min, which
// need Σ x_j per 32-element block: computed once here (on the stack, when
// x has at most xsumMax blocks) instead of once per row.
func dotRowsWithMins(t dtype.Type, dst []float32, rows []byte, rb int, x []float32) {
	var (
		buf [xsumMax]float32
		xs  []float32
	)
	if n := len(x) / 32; n <= xsumMax {
		xs = buf[:n]
		blockSums(x, xs)
	}
	switch t {
	case dtype.Q4_1:
		for r := range dst {
			dst[r] = dotQ4_1(rows[r*rb:r*rb+rb], x, xs)
		}
	case dtype.Q5_1:
		for r := range dst {
			dst[r] = dotQ5_1(rows[r*rb:r*rb+rb], x, xs)
		}
	case dtype.Q4_K:
		for r := range dst {
			dst[r] = dotQ4_K(rows[r*rb:r*rb+rb], x, xs)
		}
	case dtype.Q5_K:
		for r := range dst {
			dst[r] = dotQ5_K(rows[r*rb:r*rb+rb], x, xs)
		}
	}
}
