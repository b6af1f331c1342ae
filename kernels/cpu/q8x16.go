package cpu

import "github.com/stokehq/stoke/models/dtype"

// Packed Q8_0: the packed Q4_0 layout (q4x16.go) for Q8_0 matrices. A
// group of sixteen rows holds the same bytes as in the row layout, as
// cols/32 block units of 544 bytes:
//
//	[0, 32)             the rows' f16 scales d_r, row r at 2r
//	[32+64k, 96+64k)    for k < 8: the rows' quants 4k…4k+3, row r at 4r
//
// and the arithmetic is packed Q4_0's with s_b = Σ_{e<32} q_{r,b,e}·y_{b,e}
// (q the signed quants): one integer per row, block and input, then
// acc = acc + float32(s_b)·(d_{r,b}·d_{y,b}), one rounding each. The VNNI
// kernels bias the quants to unsigned (q+128) and start each lane from
// −128·Σy. On the 2-core development machine (BenchmarkMatMulQ8x16) eight
// inputs ran at 3.2–3.9× the row layout's multiply-adds per second from
// cache and 2.3–2.5× from memory, one input at 2.2× from cache and
// 0.96–1.05× from memory (bound by it either way); eight streams of the
// 1B Q8_0 model decoded at 217–259 tok/s against 95–117. Packing pays
// only where the VNNI kernels run (Q8x16Pays): AVX2's VPMADDUBSW would
// saturate on q+128.

// q8x16Unit is the bytes of one block of a group: sixteen Q8_0 blocks.
const q8x16Unit = Q4x16Rows * 34

// Q8x16Pays reports whether packing Q8_0 matrices speeds this CPU up:
// where the VNNI kernels run.
func Q8x16Pays() bool { return useAsm && useVNNI }

// PackQ8x16 packs the rows×cols Q8_0 matrix w, in the row layout, into
// the packed layout, in place. It panics if the shape is not packable
// (Q4x16Packable) or w holds fewer bytes.
func PackQ8x16(w []byte, rows, cols int) { repackX16(dtype.Q8_0, w, rows, cols, true) }

// UnpackQ8x16 undoes PackQ8x16, in place.
func UnpackQ8x16(w []byte, rows, cols int) { repackX16(dtype.Q8_0, w, rows, cols, false) }

// dotQ8x16Generic is dotQ4x16Generic for packed Q8_0 rows.
func dotQ8x16Generic(ni int, w, x []byte, nb, stride int, dst []float32) {
	dotX16Generic(dtype.Q8_0, ni, w, x, nb, stride, dst)
}

// MatMulQ8x16Set is MatMulQ4x16Set for Q8_0 matrices packed by
// PackQ8x16.
func (p *Pool) MatMulQ8x16Set(ps []Q4x16Product, cols int, x []float32, n int) {
	p.MatMulPackedSet(dtype.Q8_0, ps, cols, x, n)
}

// MatMulQ8x16 is MatMulQ4x16 for a Q8_0 matrix packed by PackQ8x16.
func (p *Pool) MatMulQ8x16(dst []float32, w []byte, rows, cols int, x []float32, n int) {
	p.MatMulQ8x16Set([]Q4x16Product{{Dst: dst, W: w, Rows: rows}}, cols, x, n)
}
