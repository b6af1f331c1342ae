package cpu

import (
	"encoding/binary"
	"math"

	"github.com/stokehq/stoke/models/dtype"
)

// Packed Q6_K: the packed Q4_K layout (q4kx16.go) for Q6_K, the type of
// the output head and of half the layers' attn_v and ffn_down in
// llama.cpp's Q4_K_M files, so that a Q4_K_M model runs packed whole.
//
// Layout: a rows×cols Q6_K matrix (rows a multiple of 16, cols of 256)
// is rows/16 groups of sixteen rows; group g holds the same bytes as rows
// 16g…16g+15 of the row layout, so a matrix packs in place. A group is
// cols/256 super-block units of 3360 bytes, unit b holding super-block b
// of its sixteen rows:
//
//	[0, 32)              the rows' f16 scales d_r, row r at 2r
//	[32+16k, 48+16k)     for k < 16: the rows' int8 scale of sub-block k
//	                     (elements 16k…16k+15), row r at 32+16k+r
//	[288+64v, 352+64v)   for v < 32: the rows' low-bit bytes ql 4v…4v+3,
//	                     row r at 4r
//	[2336+64v, 2400+64v) for v < 16: the rows' high-bit bytes qh 4v…4v+3,
//	                     row r at 4r
//
// In the row layout (ggml's block_q6_K: ql[128], qh[64], scales[16], d),
// element 128h + 32t + l (h < 2, t < 4, l < 32) of a super-block is the
// unsigned 6-bit q = (low or high nibble of ql[64h + 32(t&1) + l], as
// t < 2 or not) | ((qh[32h + l] >> 2t) & 3) << 4, and its weight is
// d·sc_k·(q − 32), k = its 16-element sub-block.
//
// Arithmetic. With input j quantized to Q8_K (scale d_y, quants y, and
// bsums bs_k the sums of its sixteen-element sub-blocks), for row r and
// super-block b
//
//	I = Σ_{k<16} sc_k·(Σ_{e<16} q_{16k+e}·y_{16k+e} − 32·bs_k)   (exact)
//	acc = acc + float32(I)·(d_r·d_y)
//
// super-blocks in order from acc = 0, each · and + one float32 rounding.
// |I| ≤ 16·128·16·32·128 < 2³¹. Every packed path gives dotQ6Kx16Generic's
// bits; the row layout rounds the same sums in another order.

// q6kx16Unit is the bytes of one super-block of a group: sixteen Q6_K
// blocks.
const q6kx16Unit = Q4x16Rows * 210

// q6kx16In is the bytes of one input's super-block in the packed Q6_K
// kernels' input layout (q6kx16Put): 256 quants, sixteen int32 −32·bs_k,
// the scale.
const q6kx16In = 256 + 64 + 4

// PackQ6Kx16 packs the rows×cols Q6_K matrix w, in the row layout, into
// the packed layout, in place. It panics if the shape is not packable
// (PackableX16) or w holds fewer bytes.
func PackQ6Kx16(w []byte, rows, cols int) { repackQ6Kx16(w, rows, cols, true) }

// UnpackQ6Kx16 undoes PackQ6Kx16, in place.
func UnpackQ6Kx16(w []byte, rows, cols int) { repackQ6Kx16(w, rows, cols, false) }

// q6kMoves are the runs of bytes a Q6_K block moves by packing
// (kMove).
func q6kMoves() []kMove {
	mv := []kMove{{208, 2, 0, 2}} // d
	for k := range 16 {
		mv = append(mv, kMove{192 + k, 1, 32 + 16*k, 1}) // scale k
	}
	for v := range 32 {
		mv = append(mv, kMove{4 * v, 4, 288 + 64*v, 4}) // ql
	}
	for v := range 16 {
		mv = append(mv, kMove{128 + 4*v, 4, 2336 + 64*v, 4}) // qh
	}
	return mv
}

func repackQ6Kx16(w []byte, rows, cols int, pack bool) {
	repackK(dtype.Q6_K, w, rows, cols, q6kMoves(), pack)
}

// q6kx16Put writes input j of ni, the nb Q8_K blocks q, into x, the
// packed Q6_K kernels' layout of the ni inputs: per super-block, the
// inputs' 256 quants one after another, then each input's −32·bs_k
// (k < 16) as little-endian int32, then its scale d_y as a float32
// (q6kx16In bytes per input and super-block).
func q6kx16Put(x []byte, ni, j int, q []byte, nb int) {
	unit := q6kx16In * ni
	x, q = x[:nb*unit], q[:292*nb]
	for b := range nb {
		u := x[b*unit : (b+1)*unit]
		blk := (*[292]byte)(q[292*b:])
		copy(u[256*j:256*j+256], blk[4:260])
		for k := range 16 {
			bs := int32(int16(binary.LittleEndian.Uint16(blk[260+2*k:])))
			binary.LittleEndian.PutUint32(u[256*ni+64*j+4*k:], uint32(-32*bs))
		}
		copy(u[320*ni+4*j:320*ni+4*j+4], blk[0:4])
	}
}

// dotQ6Kx16Generic sets dst[j·stride + r], for the ni inputs j of x
// (q6kx16Put's layout, nb super-blocks) and the sixteen rows r of the
// packed Q6_K group w, to the packed arithmetic's result (see above).
func dotQ6Kx16Generic(ni int, w, x []byte, nb, stride int, dst []float32) {
	w, x = w[:nb*q6kx16Unit], x[:nb*q6kx16In*ni]
	var acc [maxMulti][Q4x16Rows]float32
	var q [Q4x16Rows][256]int32
	for b := range nb {
		u := w[b*q6kx16Unit : (b+1)*q6kx16Unit]
		for r := range Q4x16Rows {
			for h := range 2 {
				for t := range 4 {
					for l := range 32 {
						lb := 64*h + 32*(t&1) + l
						hb := 32*h + l
						ql := u[288+64*(lb/4)+4*r+lb%4]
						qh := u[2336+64*(hb/4)+4*r+hb%4]
						nib := ql & 15
						if t >= 2 {
							nib = ql >> 4
						}
						q[r][128*h+32*t+l] = int32(nib | (qh>>(2*t))&3<<4)
					}
				}
			}
		}
		xu := x[b*q6kx16In*ni : (b+1)*q6kx16In*ni]
		for j := range ni {
			y := xu[256*j : 256*j+256]
			dy := math.Float32frombits(binary.LittleEndian.Uint32(xu[320*ni+4*j:]))
			a := &acc[j]
			for r := range Q4x16Rows {
				var I int32
				for k := range 16 {
					s := int32(binary.LittleEndian.Uint32(xu[256*ni+64*j+4*k:])) // −32·bs_k
					for e, v := range y[16*k : 16*k+16] {
						s += q[r][16*k+e] * int32(int8(v))
					}
					I += int32(int8(u[32+16*k+r])) * s
				}
				t := float32(float32(I) * float32(f16at(u[2*r:])*dy))
				a[r] = float32(a[r] + t)
			}
		}
	}
	for j := range ni {
		copy(dst[j*stride:j*stride+Q4x16Rows], acc[j][:])
	}
}
