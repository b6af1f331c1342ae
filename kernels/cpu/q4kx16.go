package cpu

import (
	"encoding/binary"
	"math"

	"github.com/stokehq/stoke/models/dtype"
)

// Packed Q4_K: the packed Q4_0 idea (q4x16.go) for the most common
// k-quant. The row-layout Q4_K kernels reduce each row's products in
// eight lanes per input, then scale, convert and add every lane; with
// sixteen rows interleaved, one row per dword lane, a 32-element
// sub-block's products for sixteen rows are eight VPDPBUSD against the
// input's quants broadcast, one VPMULLD applies the sixteen rows'
// sub-block scales, and the float steps come once per super-block of 256
// elements for sixteen rows.
//
// Layout: a rows×cols Q4_K matrix (rows a multiple of 16, cols of 256)
// is rows/16 groups of sixteen rows; group g holds the same bytes as rows
// 16g…16g+15 of the row layout, so a matrix packs in place. A group is
// cols/256 super-block units of 2304 bytes, unit b holding super-block b
// of its sixteen rows:
//
//	[0, 32)               the rows' f16 scales d_r, row r at 2r
//	[32, 64)              the rows' f16 min scales dmin_r, row r at 32+2r
//	[64+16k, 80+16k)      for k < 12: byte k of the rows' packed 6-bit
//	                      sub-block scales and mins, row r at 64+16k+r
//	[256+512c+64k, +64)   for c < 4, k < 8: bytes 4k…4k+3 of the rows'
//	                      32 quant bytes of chunk c, row r at 4r
//
// Quant byte e of chunk c holds element 64c+e of the super-block in its
// low nibble (sub-block 2c) and element 64c+32+e in its high one
// (sub-block 2c+1), as in the row layout, and the scale bytes are the
// row layout's twelve (unpackK4 reads them), one plane per byte so that
// sixteen rows' scale s decodes in one register.
//
// Arithmetic. With input j quantized to Q8_K (scale d_y, quants y), let
// b_s = Σ_{e<32} y_{32s+e}, and for row r and super-block b with
// sub-block scales sc_s and mins m_s (6-bit integers)
//
//	I = Σ_{s<8} sc_s·Σ_{e<32} q_{32s+e}·y_{32s+e}   (exact: |I| < 2³¹)
//	M = Σ_{s<8} m_s·b_s                              (exact)
//	t = float32(I)·(d_r·d_y),  u = float32(M)·(dmin_r·d_y)
//	acc = acc + (t − u)
//
// super-blocks in order from acc = 0, each · − + one float32 rounding (no
// fused multiply-add). The row-layout kernels round the same sums in
// another order, so a packed matrix gives results a few ulps from the
// row layout's, and every packed path gives dotQ4Kx16Generic's bits.
//
// Without AVX-512 the AVX2 kernels take the sixteen rows as two halves of
// eight dword lanes, and a sub-block's products as VPMADDUBSW words added
// in int16 (exact: at most 8·2·15·128 = 30720 in magnitude), which one
// VPMADDWD against the words (sc_s, sc_s) turns into sc_s·Σ q·y: I and M
// are the same exact integers, the float step the same roundings.

// q4kx16Unit is the bytes of one super-block of a group: sixteen Q4_K
// blocks.
const q4kx16Unit = Q4x16Rows * 144

// q4kx16In is the bytes of one input's super-block in the packed kernels'
// input layout (q4kx16Put): 256 quants, four int16 pairs of sub-block
// sums, the scale.
const q4kx16In = 256 + 16 + 4

// Q4Kx16Packable reports whether a rows×cols Q4_K matrix can be packed:
// rows a multiple of 16, cols of 256.
func Q4Kx16Packable(rows, cols int) bool {
	return rows > 0 && cols > 0 && rows%Q4x16Rows == 0 && cols%256 == 0
}

// Q4Kx16Pays reports whether packing Q4_K matrices speeds this CPU up:
// where the packed kernels run in assembly (AVX-512 VNNI, or AVX2).
// Elsewhere the row layout's kernels are far faster than the packed
// pure-Go twin (about 1 GMAC/s). With AVX2 alone (STOKE_NOVNNI=1 on the
// development machine, 2 threads) the packed kernels ran eight inputs at
// 1.7–2.3× the row layout's multiply-adds per second, in cache and from
// memory, and one input at 0.7–3.3×, mostly above 1.1× (noisy;
// BenchmarkMatMulQ4Kx16).
func Q4Kx16Pays() bool { return useAsm && haveAVX2 }

// PackQ4Kx16 packs the rows×cols Q4_K matrix w, in the row layout, into
// the packed layout, in place. It panics if the shape is not packable or
// w holds fewer bytes.
func PackQ4Kx16(w []byte, rows, cols int) { repackQ4Kx16(w, rows, cols, true) }

// UnpackQ4Kx16 undoes PackQ4Kx16, in place.
func UnpackQ4Kx16(w []byte, rows, cols int) { repackQ4Kx16(w, rows, cols, false) }

func repackQ4Kx16(w []byte, rows, cols int, pack bool) {
	repackK(dtype.Q4_K, w, rows, cols, q4kMoves(false), pack)
}

// q4kMoves are the runs of bytes a Q4_K block (or, five, a Q5_K block)
// moves by packing (kMove).
func q4kMoves(five bool) []kMove {
	mv := []kMove{{0, 2, 0, 2}, {2, 2, 32, 2}} // d, dmin
	for k := range 12 {
		mv = append(mv, kMove{4 + k, 1, 64 + 16*k, 1}) // scale byte k
	}
	qs, dst := 16, 256
	if five {
		for v := range 8 {
			mv = append(mv, kMove{16 + 4*v, 4, 256 + 64*v, 4}) // qh
		}
		qs, dst = 48, 768
	}
	for c := range 4 {
		for k := range 8 {
			mv = append(mv, kMove{qs + 32*c + 4*k, 4, dst + 512*c + 64*k, 4}) // qs
		}
	}
	return mv
}

// kMove is a run of bytes a block moves by packing: n bytes at src in
// the row layout's block go to dst + r·step in its unit, r the row's
// place in its group of sixteen.
type kMove struct{ src, n, dst, step int }

// repackK packs (pack) or unpacks, in place, the rows×cols matrix w of
// type t (any packed type: Q4_0 and Q8_0 by repackX16, the k-quants) by
// the moves of its blocks: a unit holds the same bytes as the sixteen
// rows' blocks.
func repackK(t dtype.Type, w []byte, rows, cols int, moves []kMove, pack bool) {
	rb := checkPacked(t, w, rows, cols)
	nb, bs := cols/t.BlockSize(), t.TypeSize()
	unit := Q4x16Rows * bs
	tmp := make([]byte, Q4x16Rows*rb)
	for g := 0; g < rows/Q4x16Rows; g++ {
		grp := w[g*Q4x16Rows*rb : (g+1)*Q4x16Rows*rb]
		copy(tmp, grp)
		for r := range Q4x16Rows {
			for b := range nb {
				row, u := grp[r*rb+bs*b:r*rb+bs*(b+1)], tmp[b*unit:(b+1)*unit]
				if pack {
					row, u = tmp[r*rb+bs*b:r*rb+bs*(b+1)], grp[b*unit:(b+1)*unit]
				}
				for _, m := range moves {
					d := m.dst + r*m.step
					if pack {
						copy(u[d:d+m.n], row[m.src:m.src+m.n])
					} else {
						copy(row[m.src:m.src+m.n], u[d:d+m.n])
					}
				}
			}
		}
	}
}

// q4kx16Put writes input j of ni, the nb Q8_K blocks q (QuantizeQ8_K's
// layout), into x, the packed kernels' layout of the ni inputs: per
// super-block, the inputs' 256 quants one after another, then each
// input's sub-block sums b_s as four little-endian dwords, b_{2k} in the
// low and b_{2k+1} in the high int16 of dword k, then its scale d_y as a
// float32 (q4kx16In bytes per input and super-block).
func q4kx16Put(x []byte, ni, j int, q []byte, nb int) {
	unit := q4kx16In * ni
	x, q = x[:nb*unit], q[:292*nb]
	for b := range nb {
		u := x[b*unit : (b+1)*unit]
		blk := (*[292]byte)(q[292*b:])
		copy(u[256*j:256*j+256], blk[4:260])
		for k := range 4 {
			var p [2]int16
			for h := range 2 {
				s := 2*k + h
				p[h] = int16(binary.LittleEndian.Uint16(blk[260+4*s:])) + int16(binary.LittleEndian.Uint16(blk[262+4*s:]))
			}
			binary.LittleEndian.PutUint32(u[256*ni+16*j+4*k:], uint32(uint16(p[0]))|uint32(uint16(p[1]))<<16)
		}
		copy(u[272*ni+4*j:272*ni+4*j+4], blk[0:4])
	}
}

// dotQ4Kx16Generic sets dst[j·stride + r], for the ni inputs j of x
// (q4kx16Put's layout, nb super-blocks) and the sixteen rows r of the
// packed Q4_K group w, to the packed arithmetic's result (see above).
func dotQ4Kx16Generic(ni int, w, x []byte, nb, stride int, dst []float32) {
	dotK45x16Generic(false, ni, w, x, nb, stride, dst)
}

// dotK45x16Generic is dotQ4Kx16Generic for packed Q4_K or (five) Q5_K
// rows (dotQ5Kx16Generic).
func dotK45x16Generic(five bool, ni int, w, x []byte, nb, stride int, dst []float32) {
	unit, qs := q4kx16Unit, 256
	if five {
		unit, qs = q5kx16Unit, 768
	}
	w, x = w[:nb*unit], x[:nb*q4kx16In*ni]
	var acc [maxMulti][Q4x16Rows]float32
	var q [Q4x16Rows][256]int32
	var sc, m [Q4x16Rows][8]uint8
	for b := range nb {
		u := w[b*unit : (b+1)*unit]
		for r := range Q4x16Rows {
			var s [12]byte
			for k := range s {
				s[k] = u[64+16*k+r]
			}
			sc[r], m[r] = unpackK4(&s)
			for c := range 4 {
				for k := range 8 {
					for i, v := range u[qs+512*c+64*k+4*r : qs+512*c+64*k+4*r+4] {
						lo, hi := int32(v&15), int32(v>>4)
						if five { // bits 2c and 2c+1 of qh byte 4k+i
							h := int32(u[256+64*k+4*r+i])
							lo |= (h >> (2 * c) & 1) << 4
							hi |= (h >> (2*c + 1) & 1) << 4
						}
						q[r][64*c+4*k+i], q[r][64*c+32+4*k+i] = lo, hi
					}
				}
			}
		}
		xu := x[b*q4kx16In*ni : (b+1)*q4kx16In*ni]
		for j := range ni {
			y := xu[256*j : 256*j+256]
			var bs [8]int32
			for k := range 4 {
				p := binary.LittleEndian.Uint32(xu[256*ni+16*j+4*k:])
				bs[2*k], bs[2*k+1] = int32(int16(p)), int32(int16(p>>16))
			}
			dy := math.Float32frombits(binary.LittleEndian.Uint32(xu[272*ni+4*j:]))
			a := &acc[j]
			for r := range Q4x16Rows {
				var I, M int32
				for s := range 8 {
					ss := int32(0)
					for e, v := range y[32*s : 32*s+32] {
						ss += q[r][32*s+e] * int32(int8(v))
					}
					I += int32(sc[r][s]) * ss
					M += int32(m[r][s]) * bs[s]
				}
				t := float32(float32(I) * float32(f16at(u[2*r:])*dy))
				v := float32(float32(M) * float32(f16at(u[32+2*r:])*dy))
				a[r] = float32(a[r] + float32(t-v))
			}
		}
	}
	for j := range ni {
		copy(dst[j*stride:j*stride+Q4x16Rows], acc[j][:])
	}
}
