package cpu

import (
	"encoding/binary"
	"math"

	"github.com/stokehq/stoke/models/dtype"
)

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
func PackQ8x16(w []byte, rows, cols int) { repackQ8x16(w, rows, cols, true) }

// UnpackQ8x16 undoes PackQ8x16, in place.
func UnpackQ8x16(w []byte, rows, cols int) { repackQ8x16(w, rows, cols, false) }

func repackQ8x16(w []byte, rows, cols int, pack bool) {
	rb := checkPacked(dtype.Q8_0, w, rows, cols)
	nb := cols / 32
	tmp := make([]byte, Q4x16Rows*rb)
	for g := 0; g < rows/Q4x16Rows; g++ {
		grp := w[g*Q4x16Rows*rb : (g+1)*Q4x16Rows*rb]
		copy(tmp, grp)
		for r := range Q4x16Rows {
			for b := range nb {
				if pack {
					src := tmp[r*rb+34*b : r*rb+34*b+34]
					u := grp[b*q8x16Unit : (b+1)*q8x16Unit]
					u[2*r], u[2*r+1] = src[0], src[1]
					for k := range 8 {
						copy(u[32+64*k+4*r:32+64*k+4*r+4], src[2+4*k:6+4*k])
					}
				} else {
					dst := grp[r*rb+34*b : r*rb+34*b+34]
					u := tmp[b*q8x16Unit : (b+1)*q8x16Unit]
					dst[0], dst[1] = u[2*r], u[2*r+1]
					for k := range 8 {
						copy(dst[2+4*k:6+4*k], u[32+64*k+4*r:32+64*k+4*r+4])
					}
				}
			}
		}
	}
}

// dotQ8x16Generic is dotQ4x16Generic for packed Q8_0 rows: dst[j·stride +
// r] for the ni inputs j of x (q4x16Put's layout; the −128·Σy there is
// the VNNI kernels' and not needed here) and the sixteen rows r of the
// group w.
func dotQ8x16Generic(ni int, w, x []byte, nb, stride int, dst []float32) {
	w, x = w[:nb*q8x16Unit], x[:nb*40*ni]
	var acc [maxMulti][Q4x16Rows]float32
	var q [Q4x16Rows][32]int32
	for b := range nb {
		u := w[b*q8x16Unit : (b+1)*q8x16Unit]
		for r := range Q4x16Rows {
			for k := range 8 {
				for i, c := range u[32+64*k+4*r : 32+64*k+4*r+4] {
					q[r][4*k+i] = int32(int8(c))
				}
			}
		}
		xu := x[b*40*ni : (b+1)*40*ni]
		for j := range ni {
			y := xu[32*j : 32*j+32]
			dy := math.Float32frombits(binary.LittleEndian.Uint32(xu[36*ni+4*j:]))
			a := &acc[j]
			for r := range Q4x16Rows {
				s := int32(0)
				for e, v := range y {
					s += q[r][e] * int32(int8(v))
				}
				d := f16at(u[2*r:]) * dy
				t := float32(float32(s) * d)
				a[r] = float32(a[r] + t)
			}
		}
	}
	for j := range ni {
		copy(dst[j*stride:j*stride+Q4x16Rows], acc[j][:])
	}
}

// MatMulQ8x16Set is MatMulQ4x16Set for Q8_0 matrices packed by
// PackQ8x16.
func (p *Pool) MatMulQ8x16Set(ps []Q4x16Product, cols int, x []float32, n int) {
	p.matMulPacked(dtype.Q8_0, ps, cols, x, n)
}

// MatMulQ8x16 is MatMulQ4x16 for a Q8_0 matrix packed by PackQ8x16.
func (p *Pool) MatMulQ8x16(dst []float32, w []byte, rows, cols int, x []float32, n int) {
	p.MatMulQ8x16Set([]Q4x16Product{{Dst: dst, W: w, Rows: rows}}, cols, x, n)
}
