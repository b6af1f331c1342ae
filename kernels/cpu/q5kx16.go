package cpu

import "github.com/stokehq/stoke/models/dtype"

// Packed Q5_K: the packed Q4_K layout (q4kx16.go) with the quants' fifth
// bits, for llama.cpp's Q5_K_M files (Q5_K, and Q6_K where Q4_K_M has
// it). A group of sixteen rows holds the same bytes as in the row layout,
// as cols/256 super-block units of 2816 bytes:
//
//	[0, 32), [32, 64), [64, 256)   d, dmin and the twelve scale-byte
//	                               planes, as packed Q4_K
//	[256+64v, 320+64v)             for v < 8: the rows' qh bytes 4v…4v+3,
//	                               row r at 4r
//	[768+512c+64k, +64)            for c < 4, k < 8: bytes 4k…4k+3 of the
//	                               rows' 32 quant bytes of chunk c, row r
//	                               at 4r
//
// In the row layout (d, dmin, scales[12], qh[32], qs[128]) element
// 64c + e (e < 32) of a super-block is the low nibble of qs[32c + e] with
// bit 2c of qh[e] as its fifth bit, element 64c + 32 + e the high nibble
// with bit 2c+1. The arithmetic is packed Q4_K's with these 5-bit quants
// (|I| ≤ 8·63·32·31·128 < 2³¹, still exact), on the same inputs
// (q4kx16Put), and every packed path gives dotQ5Kx16Generic's bits.
//
// Without AVX-512 the AVX2 kernels are packed Q4_K's with the fifth bits
// ORed into the nibbles; a VPMADDUBSW word now reaches 2·31·128 = 7936
// in magnitude, so a sub-block's products are two int16 sums of four
// steps (at most 31744 each), each scaled by its own VPMADDWD and added
// in int32: I and M the same exact integers, the float step the same
// roundings.

// q5kx16Unit is the bytes of one super-block of a group: sixteen Q5_K
// blocks.
const q5kx16Unit = Q4x16Rows * 176

// PackQ5Kx16 packs the rows×cols Q5_K matrix w, in the row layout, into
// the packed layout, in place. It panics if the shape is not packable
// (PackableX16) or w holds fewer bytes.
func PackQ5Kx16(w []byte, rows, cols int) {
	repackK(dtype.Q5_K, w, rows, cols, q4kMoves(true), true)
}

// UnpackQ5Kx16 undoes PackQ5Kx16, in place.
func UnpackQ5Kx16(w []byte, rows, cols int) {
	repackK(dtype.Q5_K, w, rows, cols, q4kMoves(true), false)
}

// dotQ5Kx16Generic is dotQ4Kx16Generic for packed Q5_K rows.
func dotQ5Kx16Generic(ni int, w, x []byte, nb, stride int, dst []float32) {
	dotK45x16Generic(true, ni, w, x, nb, stride, dst)
}
