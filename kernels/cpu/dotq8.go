package cpu

import "encoding/binary"

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
// Q8_0, Q4_1, Q5_0 and Q5_1 (Q4_0 pairs its blocks, see below) the 32
// products of block i are summed in eight lanes of four consecutive
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
	w, ys, dx := w[:34*nb], v.y[:32*nb], v.d[:nb]
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

// Q4_0 weights go two blocks at a time, X = block 2m and Y = block 2m+1,
// which lets the AVX2 kernel put both into one vector and halves its float
// work. Per pair, the 32 products of a block are summed in four lanes of
// eight elements, {4k..4k+3} ∪ {16+4k..16+4k+3} (the elements whose quants
// share bytes 4k..4k+3 of qs), X in lanes 0–3 and Y in lanes 4–7:
//
//	acc[a]_k   += float32(s^X_k)·(d_w·d_x)^X     k < 4
//	acc[a]_4+k += float32(s^Y_k)·(d_w·d_x)^Y
//
// where a = m mod 4 for the pairs of the first ⌊nb/4⌋·4 blocks, a = 2 for
// a pair after them and a = 3 for a last odd block (its partner Y is
// empty: it adds +0, which changes no accumulator, as none can be −0).
// The activations come rearranged for this (QVec.pairs, see q4Pairs).

func dotQ4_0Q8_0Generic(w []byte, v *QVec) float32 {
	nb := v.nb
	w, ys, dx := w[:18*nb], v.y[:32*nb], v.d[:nb]
	lut := &q40Pairs
	var accs blockAccs
	full := nb &^ 3
	for i := 0; i < nb; i++ {
		a := (i >> 1) & 3
		if i >= full {
			a = 2 // the remainder pair
			if i&1 == 0 && i+1 == nb {
				a = 3 // a lone last block
			}
		}
		wb := (*[18]byte)(w[18*i:])
		y := (*[32]float32)(ys[32*i:])
		d := f16at(wb[0:]) * dx[i]
		acc := &accs[a]
		off := 4 * (i & 1) // X in lanes 0–3, Y in 4–7
		for k := 0; k < 4; k++ {
			e := 4 * k & 15
			p0, p1, p2, p3 := &lut[wb[2+e]], &lut[wb[2+(e+1)&15]], &lut[wb[2+(e+2)&15]], &lut[wb[2+(e+3)&15]]
			s := p0[0]*y[e] + p1[0]*y[(e+1)&15] + p2[0]*y[(e+2)&15] + p3[0]*y[(e+3)&15] +
				p0[1]*y[16+e] + p1[1]*y[16+(e+1)&15] + p2[1]*y[16+(e+2)&15] + p3[1]*y[16+(e+3)&15]
			acc[(off+k)&7] += float32(s * d)
		}
	}
	return accs.sum()
}

// q4PairBytes is the size of one pair of Q4_0-ready activation blocks.
const q4PairBytes = 96

// q4Pairs writes the activations of nb Q8_0 blocks in the layout of the
// Q4_0 kernel: for X = block 2m and Y = block 2m+1 (all zero past the last
// block) 96 bytes,
//
//	y_X[0:16] | y_Y[0:16] | y_X[16:32] | y_Y[16:32] | c[16] int16
//
// with c_j = 8·(y[2j] + y[2j+1] + y[16+2j] + y[17+2j]) of X for j < 8 and
// of Y (j−8) for j ≥ 8: the −8·Σy that turns Σ q·y of unsigned nibbles
// into Σ (q−8)·y, by pairs of int16 as VPMADDUBSW leaves them.
func q4Pairs(dst, blocks []byte, nb int) {
	for m := 0; m < (nb+1)/2; m++ {
		p := (*[q4PairBytes]byte)(dst[q4PairBytes*m:])
		clear(p[:])
		for h := 0; h < 2 && 2*m+h < nb; h++ {
			q := (*[32]byte)(blocks[34*(2*m+h)+2:])
			copy(p[16*h:16*h+16], q[:16])
			copy(p[32+16*h:48+16*h], q[16:])
			for j := 0; j < 8; j++ {
				c := 8 * (i8(q[2*j]) + i8(q[2*j+1]) + i8(q[16+2*j]) + i8(q[17+2*j]))
				binary.LittleEndian.PutUint16(p[64+16*h+2*j:], uint16(int16(c)))
			}
		}
	}
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
	w, ys, dx := w[:20*nb], v.y[:32*nb], v.d[:nb]
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
	w, ys, dx := w[:22*nb], v.y[:32*nb], v.d[:nb]
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
	w, ys, dx := w[:24*nb], v.y[:32*nb], v.d[:nb]
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
