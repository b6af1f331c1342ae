//go:build amd64 && !noasm && gc

package cpu

import (
	"unsafe"

	"github.com/stokehq/stoke/models/dtype"
)

// Two rows at a time. The multi-input VNNI Q4_0 kernels are bound by
// their activation loads; their two-row versions (…R2VNNI, see
// _generate/vnni.go) load each activation piece once for two weight rows
// and give each row the one-row kernel's bits. Where they do not apply
// (no VNNI, other types or sizes) these return false and the caller goes
// row by row.

// qdotMulti2 sets dst[j] and dst[8+j] to qdotMulti's results for the rows
// w[:rb] and w[rb:2·rb] (rb ≥ the row's 18·b.nb bytes) and returns true,
// where a two-row kernel applies: two, four or eight Q4_0 inputs with
// VNNI.
func qdotMulti2(t dtype.Type, dst []float32, w []byte, rb int, b *qBatch) bool {
	if !useAsm || !useVNNI || t != dtype.Q4_0 {
		return false
	}
	_ = w[rb+18*b.nb-1]
	x := b.x[:(b.nb+3)/4*b.n*q4QuadBytes]
	switch b.n {
	case 8:
		dotQ4_0Q8_0x8R2VNNI(w, x, b.nb, rb, dst[:2*maxMulti])
	case 4:
		dotQ4_0Q8_0x4R2VNNI(w, x, b.nb, rb, dst[:2*maxMulti])
	case 2:
		dotQ4_0Q8_0x2R2VNNI(w, x, b.nb, rb, dst[:2*maxMulti])
	default:
		return false
	}
	return true
}

// multiPrefetches reports whether qdotMulti's kernel for type t and the
// inputs of b prefetches the rows two on itself (the VNNI Q4_0 ones,
// _generate/vnni.go), so that MatMul need not.
func multiPrefetches(t dtype.Type, b *qBatch) bool {
	return useAsm && useVNNI && t == dtype.Q4_0 && b.n > 1
}

// dotQ4_0Q8_0Acc2 is dotQ4_0Q8_0Acc for the rows w[:18·nb] and
// w[rb:rb+18·nb] into acc[0] and acc[1], where the two-row kernel
// applies (VNNI); it returns false otherwise.
func dotQ4_0Q8_0Acc2(acc *[2]q4Accs, w []byte, rb int, b *qBatch, b0, nb int) bool {
	if !useAsm || !useVNNI {
		return false
	}
	const stride = maxMulti * q4QuadBytes
	q0 := b0 / 4
	_ = w[rb+18*nb-1]
	dotQ4_0Q8_0x8AccR2VNNI(w, b.x[q0*stride:(q0+(nb+3)/4)*stride], nb, rb, unsafe.Slice(&acc[0][0], 2*len(acc[0])))
	return true
}
