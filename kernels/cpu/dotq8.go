package cpu

import (
	"encoding/binary"
	"math"
)

// Dot products of 32-element block weights (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
// with activations quantized to Q8_0 (QuantizeQ8_0). Per block, with
// weight quants q_j, weight scale d_w (and min m_w), activation quants y_j
// and activation scale d_x:
//
//	Q8_0, Q4_0, Q5_0:  d_w·d_x · Σ_j q_j·y_j            (q_j signed: int8, nibble−8, 5 bits−16)
//	Q4_1, Q5_1:        d_w·d_x · Σ_j q_j·y_j + m_w·d_x · Σ_j y_j   (q_j unsigned)
//
// The integer sums are exact. They are formed and rounded the way the
// AVX2 kernels (VPMADDUBSW/VPMADDWD) form them, and the generic twins here
// reproduce that order exactly, so both paths give the same bits. For
// Q8_0, Q4_1, Q5_0 and Q5_1 (Q4_0 groups its blocks by four, see below)
// the 32 products of block i are summed in eight lanes of four consecutive
// elements, s_k = Σ_{j=4k}^{4k+3} q_j·y_j, and lane k of accumulator
// a = i mod 4 (four independent chains) adds them in float32 without
// fused multiply-adds,
//
//	acc[a]_k += float32(s_k)·(d_w·d_x)       (then, for Q4_1/Q5_1,
//	acc[a]_k += float32(Σ_{j=4k}^{4k+3} y_j)·(m_w·d_x))
//
// and the result is hsum8 of (acc[0] + acc[1]) + (acc[2] + acc[3]).
// Activation quants must lie in [−127, 127], as QuantizeQ8_0 makes them
// (the AVX2 sign trick needs |y| ≤ 127). d_x comes widened to float32
// (QVec.d), so d_w·d_x is one float32 product of two exact values.
//
// The generic twins compute the lane sums in float32 from lookup tables
// (the quants as floats, QVec.y for the activations), which in pure Go is
// two to three times faster than integer decoding. This changes nothing:
// every product and partial sum is an integer of magnitude below 2²⁴, so
// float32 holds it exactly (whether or not the compiler fuses the
// multiply-adds), and float32(s_k) is the same float either way.

// hsum8 is the horizontal sum of eight lanes in the order of the AVX2
// reduction (VEXTRACTF128, VADDPS, VMOVHLPS, VADDPS, VMOVSHDUP, VADDSS).
func hsum8(a *[8]float32) float32 {
	l0, l1, l2, l3 := a[0]+a[4], a[1]+a[5], a[2]+a[6], a[3]+a[7]
	return (l0 + l2) + (l1 + l3)
}

// hsum4 is hsum8's tail for four lanes.
func hsum4(a *[4]float32) float32 {
	return (a[0] + a[2]) + (a[1] + a[3])
}

// blockAccs are the four 8-lane accumulators of the 32-element block
// kernels: block i adds into blockAccs[i%4].
type blockAccs [4][8]float32

// sum reduces the accumulators as the AVX2 kernels do.
func (a *blockAccs) sum() float32 {
	var c [8]float32
	for k := range c {
		c[k] = (a[0][k] + a[1][k]) + (a[2][k] + a[3][k])
	}
	return hsum8(&c)
}

func i8(b byte) int32 { return int32(int8(b)) }

// addLanes adds float32(s_k)·d to acc_k, unfused (s_k are exact integers).
func addLanes(acc, s *[8]float32, d float32) {
	for k := range acc {
		acc[k] += float32(s[k] * d)
	}
}

func dotQ8_0Q8_0Generic(w []byte, v *QVec) float32 {
	nb := v.nb
	w, ys, dx := w[:34*nb], v.ys()[:32*nb], v.d[:nb]
	lut := &i8Table
	var accs blockAccs
	for i := 0; i < nb; i++ {
		wb := (*[34]byte)(w[34*i:])
		y := (*[32]float32)(ys[32*i:])
		d := f16at(wb[0:]) * dx[i]
		acc := &accs[i&3]
		for k := 0; k < 8; k++ {
			e := 4 * k
			s := lut[wb[2+e&31]]*y[e&31] + lut[wb[3+e&31]]*y[(e+1)&31] +
				lut[wb[4+e&31]]*y[(e+2)&31] + lut[wb[5+e&31]]*y[(e+3)&31]
			acc[k&7] += float32(s * d)
		}
	}
	return accs.sum()
}

// Q4_0 weights go four blocks at a time, a quad X, Y, Z, W = blocks 4m to
// 4m+3, which lets the AVX2 kernel put all four into one vector of int32
// lanes and quarters its float work. Lane 2u+h (u = 0, 1, 2, 3 for X, Z,
// Y, W) holds the integer sum over the block's elements
//
//	E_0 = {0–3, 8–11, 16–19, 24–27}   (h = 0)
//	E_1 = {4–7, 12–15, 20–23, 28–31}  (h = 1)
//
// (the quants of bytes 0–3, 8–11 and 4–7, 12–15 of qs, both nibbles), and
// one accumulator takes the quads in order,
//
//	acc_2u+h += float32(s^b_h)·(d_w·d_x)^b
//
// A quad past the last block has zero quants and scales in its missing
// blocks, whose lanes add +0 (no lane can be −0, so this changes nothing).
// The result is hsum8(acc). The activations come rearranged for this
// (QVec.quads, see q4Quads).

// q4Lane is the first lane of block b of a quad.
var q4Lane = [4]int{0, 4, 2, 6}

// q4Sums returns the two lane sums of a Q4_0 block wb against y.
func q4Sums(wb *[18]byte, y *[32]float32) (s0, s1 float32) {
	lut := &q40Pairs
	for g := 0; g < 2; g++ {
		for k := 0; k < 4; k++ {
			j0, j1 := 8*g+k, 8*g+4+k
			p, q := &lut[wb[2+j0&15]], &lut[wb[2+j1&15]]
			s0 += p[0]*y[j0&15] + p[1]*y[16+j0&15]
			s1 += q[0]*y[j1&15] + q[1]*y[16+j1&15]
		}
	}
	return s0, s1
}

func dotQ4_0Q8_0Generic(w []byte, v *QVec) float32 {
	nb := v.nb
	w, ys, dx := w[:18*nb], v.ys()[:32*nb], v.d[:nb]
	var acc [8]float32
	for i := 0; i < nb; i++ {
		wb := (*[18]byte)(w[18*i:])
		s0, s1 := q4Sums(wb, (*[32]float32)(ys[32*i:]))
		d := f16at(wb[0:]) * dx[i]
		l := q4Lane[i&3]
		acc[l&7] += float32(s0 * d)
		acc[(l+1)&7] += float32(s1 * d)
	}
	return hsum8(&acc)
}

// dotQ4_0Q8_0MultiGeneric computes dst[j] = dotQ4_0Q8_0Generic(w, vs[j])
// for j < len(vs) ≤ maxMulti, decoding each weight block once.
func dotQ4_0Q8_0MultiGeneric(dst []float32, w []byte, vs []*QVec) {
	nb := vs[0].nb
	w = w[:18*nb]
	var acc [maxMulti][8]float32
	var q [32]float32
	lut := &q40Pairs
	var ys [maxMulti][]float32 // the inputs' quants as float32
	for k, v := range vs {
		ys[k&(maxMulti-1)] = v.ys()
	}
	for i := 0; i < nb; i++ {
		wb := (*[18]byte)(w[18*i:])
		for j, b := range (*[16]byte)(wb[2:]) {
			p := &lut[b]
			q[j], q[16+j] = p[0], p[1]
		}
		dw := f16at(wb[0:])
		l := q4Lane[i&3]
		for k, v := range vs {
			y := (*[32]float32)(ys[k&(maxMulti-1)][32*i:])
			var s0, s1 float32
			for e := 0; e < 4; e++ {
				s0 += q[e]*y[e] + q[8+e]*y[8+e] + q[16+e]*y[16+e] + q[24+e]*y[24+e]
				s1 += q[4+e]*y[4+e] + q[12+e]*y[12+e] + q[20+e]*y[20+e] + q[28+e]*y[28+e]
			}
			d := dw * v.d[i]
			a := &acc[k&(maxMulti-1)]
			a[l&7] += float32(s0 * d)
			a[(l+1)&7] += float32(s1 * d)
		}
	}
	for k := range vs {
		dst[k] = hsum8(&acc[k&(maxMulti-1)])
	}
}

// q4QuadBytes is the size of one quad of Q4_0-ready activation blocks.
const q4QuadBytes = 192

// q4Quads writes the activations of nb Q8_0 blocks in the layout of the
// Q4_0 kernel: per quad X, Y, Z, W (blocks 4m to 4m+3, all zero past the
// last block) 192 bytes,
//
//	yA[32] | yB[32] | yC[32] | yD[32] | c[16] int16 | dx[8] float32
//
// where quarter u (8 bytes) of yA, yB, yC, yD holds elements 0–7, 16–23,
// 8–15 and 24–31 of block (X, Z, Y, W)[u]; word 4u+k of c is 8·Σ y_e over
// e ∈ {2k, 2k+1, 8+2k, 9+2k, 16+2k, 17+2k, 24+2k, 25+2k} of that block
// (the −8·Σy that turns Σ q·y of unsigned nibbles into Σ (q−8)·y, by
// words as the kernel leaves them); and dx is the blocks' activation
// scales d_x as float32 in the lane order of the result, X X Z Z Y Y W W.
func q4Quads(dst, blocks []byte, d []float32, nb int) {
	full := nb / 4
	for m := range full {
		p := (*[q4QuadBytes]byte)(dst[q4QuadBytes*m:])
		b := (*[4 * 34]byte)(blocks[4*34*m:])
		dm := (*[4]float32)(d[4*m:])
		q4QuadBlock(p, 0, (*[32]byte)(b[2:]), dm[0])
		q4QuadBlock(p, 1, (*[32]byte)(b[2*34+2:]), dm[2])
		q4QuadBlock(p, 2, (*[32]byte)(b[34+2:]), dm[1])
		q4QuadBlock(p, 3, (*[32]byte)(b[3*34+2:]), dm[3])
	}
	if full*4 == nb {
		return
	}
	p := (*[q4QuadBytes]byte)(dst[q4QuadBytes*full:])
	clear(p[:])
	for u, b := range [4]int{0, 2, 1, 3} {
		if i := 4*full + b; i < nb {
			q4QuadBlock(p, u, (*[32]byte)(blocks[34*i+2:]), d[i])
		}
	}
}

// q4QuadBlock writes block (X, Z, Y, W)[u] of a quad in q4Quads' layout:
// its quants q, the words of c and its scale d.
func q4QuadBlock(p *[q4QuadBytes]byte, u int, q *[32]byte, d float32) {
	const (
		bias = 0x8080808080808080 // int8 + 128: the quants as unsigned bytes
		even = 0x00ff00ff00ff00ff // the even bytes of each word
		high = 0x8000800080008000 // the top bit of each word
		off  = 0x2000200020002000 // 8·(8·128) per word: the bias of 8·s
	)
	u8 := 8 * (u & 3)
	e0 := binary.LittleEndian.Uint64(q[0:])
	e1 := binary.LittleEndian.Uint64(q[8:])
	e2 := binary.LittleEndian.Uint64(q[16:])
	e3 := binary.LittleEndian.Uint64(q[24:])
	binary.LittleEndian.PutUint64(p[u8:], e0)
	binary.LittleEndian.PutUint64(p[32+u8:], e2)
	binary.LittleEndian.PutUint64(p[64+u8:], e1)
	binary.LittleEndian.PutUint64(p[96+u8:], e3)
	// Word k of s is Σ (q_e + 128) over bytes 2k and 2k+1 of the four
	// quarters, at most 2040, so 8·s fits a word and 8·Σ q_e = 8·s − 8192
	// is taken modulo 2¹⁶ word by word (every word of 8·s | high is at
	// least 0x8000: nothing borrows across words).
	e0, e1, e2, e3 = e0^bias, e1^bias, e2^bias, e3^bias
	s := e0&even + e0>>8&even + e1&even + e1>>8&even + e2&even + e2>>8&even + e3&even + e3>>8&even
	binary.LittleEndian.PutUint64(p[128+u8:], (((s<<3)|high)-off)^high)
	bits := uint64(math.Float32bits(d))
	binary.LittleEndian.PutUint64(p[160+u8:], bits|bits<<32)
}

// pairsDot adds the lanes of one 32-element block whose quants come as
// table pairs p[j] = {element j, element j+16} for j < 16:
// acc_k += float32(s_k)·d, then, for m != nil, acc_k += float32(Σy)·m.
func pairsDot(acc *[8]float32, p *[16]*[2]float32, y *[32]float32, d float32, m *float32) {
	for k := 0; k < 4; k++ {
		e := 4 * k & 15
		p0, p1, p2, p3 := p[e], p[(e+1)&15], p[(e+2)&15], p[(e+3)&15]
		lo := p0[0]*y[e] + p1[0]*y[(e+1)&15] + p2[0]*y[(e+2)&15] + p3[0]*y[(e+3)&15]
		hi := p0[1]*y[16+e] + p1[1]*y[16+(e+1)&15] + p2[1]*y[16+(e+2)&15] + p3[1]*y[16+(e+3)&15]
		acc[k&3] += float32(lo * d)
		if m != nil {
			acc[k&3] += float32((y[e] + y[(e+1)&15] + y[(e+2)&15] + y[(e+3)&15]) * *m)
		}
		acc[4+k&3] += float32(hi * d)
		if m != nil {
			acc[4+k&3] += float32((y[16+e] + y[16+(e+1)&15] + y[16+(e+2)&15] + y[16+(e+3)&15]) * *m)
		}
	}
}

func dotQ4_1Q8_0Generic(w []byte, v *QVec) float32 {
	nb := v.nb
	w, ys, dx := w[:20*nb], v.ys()[:32*nb], v.d[:nb]
	var accs blockAccs
	var p [16]*[2]float32
	for i := 0; i < nb; i++ {
		wb := (*[20]byte)(w[20*i:])
		for j, b := range (*[16]byte)(wb[4:]) {
			p[j] = &u4Pairs[b]
		}
		m := f16at(wb[2:]) * dx[i]
		pairsDot(&accs[i&3], &p, (*[32]float32)(ys[32*i:]), f16at(wb[0:])*dx[i], &m)
	}
	return accs.sum()
}

func dotQ5_0Q8_0Generic(w []byte, v *QVec) float32 {
	nb := v.nb
	w, ys, dx := w[:22*nb], v.ys()[:32*nb], v.d[:nb]
	var accs blockAccs
	var p [16]*[2]float32
	for i := 0; i < nb; i++ {
		wb := (*[22]byte)(w[22*i:])
		h := interleaveQH(binary.LittleEndian.Uint32(wb[2:]))
		for j, b := range (*[16]byte)(wb[6:]) {
			p[j] = &q50Pairs[(uint32(b)|h>>(2*uint(j))&3<<8)&1023]
		}
		pairsDot(&accs[i&3], &p, (*[32]float32)(ys[32*i:]), f16at(wb[0:])*dx[i], nil)
	}
	return accs.sum()
}

func dotQ5_1Q8_0Generic(w []byte, v *QVec) float32 {
	nb := v.nb
	w, ys, dx := w[:24*nb], v.ys()[:32*nb], v.d[:nb]
	var accs blockAccs
	var p [16]*[2]float32
	for i := 0; i < nb; i++ {
		wb := (*[24]byte)(w[24*i:])
		h := interleaveQH(binary.LittleEndian.Uint32(wb[4:]))
		for j, b := range (*[16]byte)(wb[8:]) {
			p[j] = &u5Pairs[(uint32(b)|h>>(2*uint(j))&3<<8)&1023]
		}
		m := f16at(wb[2:]) * dx[i]
		pairsDot(&accs[i&3], &p, (*[32]float32)(ys[32*i:]), f16at(wb[0:])*dx[i], &m)
	}
	return accs.sum()
}

// The multi-input twins: dst[j] = the row kernel's result for vs[j], for
// j < len(vs) ≤ maxMulti, each weight block decoded once. Every input has
// its own accumulators, which take the row kernel's products in the row
// kernel's order.

func dotQ8_0Q8_0MultiGeneric(dst []float32, w []byte, vs []*QVec) {
	nb := vs[0].nb
	w = w[:34*nb]
	var accs [maxMulti]blockAccs
	var q [32]float32
	var ys [maxMulti][]float32 // the inputs' quants as float32
	for k, v := range vs {
		ys[k&(maxMulti-1)] = v.ys()
	}
	for i := 0; i < nb; i++ {
		wb := (*[34]byte)(w[34*i:])
		for j, b := range (*[32]byte)(wb[2:]) {
			q[j] = i8Table[b]
		}
		dw := f16at(wb[0:])
		for k, v := range vs {
			y := (*[32]float32)(ys[k&(maxMulti-1)][32*i:])
			d := dw * v.d[i]
			acc := &accs[k&(maxMulti-1)][i&3]
			for l := 0; l < 8; l++ {
				e := 4 * l
				s := q[e]*y[e] + q[e+1]*y[e+1] + q[e+2]*y[e+2] + q[e+3]*y[e+3]
				acc[l] += float32(s * d)
			}
		}
	}
	for k := range vs {
		dst[k] = accs[k&(maxMulti-1)].sum()
	}
}

// pairsMulti is the multi-input twin of the pairsDot kernels: Q4_1
// (wsize 20), Q5_0 (22) and Q5_1 (24).
func pairsMulti(dst []float32, w []byte, vs []*QVec, wsize int) {
	nb := vs[0].nb
	w = w[:wsize*nb]
	var accs [maxMulti]blockAccs
	var p [16]*[2]float32
	var ys [maxMulti][]float32 // the inputs' quants as float32
	for k, v := range vs {
		ys[k&(maxMulti-1)] = v.ys()
	}
	for i := 0; i < nb; i++ {
		wb := w[wsize*i : wsize*(i+1)]
		dw, mw := f16at(wb[0:]), f16at(wb[2:])
		switch wsize {
		case 20:
			for j, b := range (*[16]byte)(wb[4:]) {
				p[j] = &u4Pairs[b]
			}
		case 22:
			h := interleaveQH(binary.LittleEndian.Uint32(wb[2:]))
			for j, b := range (*[16]byte)(wb[6:]) {
				p[j] = &q50Pairs[(uint32(b)|h>>(2*uint(j))&3<<8)&1023]
			}
		case 24:
			h := interleaveQH(binary.LittleEndian.Uint32(wb[4:]))
			for j, b := range (*[16]byte)(wb[8:]) {
				p[j] = &u5Pairs[(uint32(b)|h>>(2*uint(j))&3<<8)&1023]
			}
		}
		for k, v := range vs {
			var m *float32
			mm := mw * v.d[i]
			if wsize != 22 {
				m = &mm
			}
			pairsDot(&accs[k&(maxMulti-1)][i&3], &p, (*[32]float32)(ys[k&(maxMulti-1)][32*i:]), dw*v.d[i], m)
		}
	}
	for k := range vs {
		dst[k] = accs[k&(maxMulti-1)].sum()
	}
}

func dotQ4_1Q8_0MultiGeneric(dst []float32, w []byte, vs []*QVec) { pairsMulti(dst, w, vs, 20) }
func dotQ5_0Q8_0MultiGeneric(dst []float32, w []byte, vs []*QVec) { pairsMulti(dst, w, vs, 22) }
func dotQ5_1Q8_0MultiGeneric(dst []float32, w []byte, vs []*QVec) { pairsMulti(dst, w, vs, 24) }
