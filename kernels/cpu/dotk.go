package cpu

import "encoding/binary"

// Dot products of 256-element super-block weights (Q4_K, Q5_K, Q6_K) with
// activations quantized to Q8_K (QuantizeQ8_K: d_x float32, quants y_j,
// bsums). Per super-block (layouts in quant_k.go):
//
//	Q4_K, Q5_K:  d_x·d_w · Σ_s sc_s·Σ_{j∈s} q_j·y_j − d_x·dmin_w · Σ_s m_s·Σ_{j∈s} y_j   (8 sub-blocks of 32)
//	Q6_K:        d_x·d_w · Σ_s sc_s·Σ_{j∈s} (q_j − 32)·y_j                               (16 sub-blocks of 16)
//
// where Σ_{j∈s} y_j comes from the bsums (so they must be the sums of the
// quants, as QuantizeQ8_K writes them). As in dotq8.go the integer sums
// are exact and are split, rounded and reduced exactly as the AVX2 kernels
// do (the AVX-512 VNNI kernels of Q4_K and Q6_K form the same lanes), so
// the generic twins give the same bits:
//
//   - lane k < 8 holds Σ over the super-block's 32-element chunks c of
//     sc_{s(c,k)}·Σ_{j=4k}^{4k+3} q_{32c+j}·y_{32c+j} (for Q6_K the chunk's
//     lanes 0–3 and 4–7 have their own 16-element sub-block scale, q_j is
//     the unsigned 6-bit quant, and the offset is applied per lane from
//     the bsums: lane_k −= 32·(sc_{2k}·bsums[2k] + sc_{2k+1}·bsums[2k+1])),
//     and acc_k += float32(lane_k)·(d_x·d_w);
//   - for Q4_K/Q5_K, min lane k < 4 holds m_{2k}·b_{2k} + m_{2k+1}·b_{2k+1}
//     with b_s = bsums[2s] + bsums[2s+1] (int16 arithmetic, as VPHADDW),
//     and accm_k −= float32(minlane_k)·(d_x·dmin_w);
//   - the result is hsum8(acc) (+ hsum4(accm)).

// kMins adds the Q4_K/Q5_K min term of one super-block to accm: bs is the
// Q8_K bsums (32 bytes), m the eight 6-bit mins.
func kMins(accm *[4]float32, bs []byte, m *[8]uint8, dm float32) {
	bs = bs[:32]
	var b [8]int32
	for s := range b {
		b[s] = int32(int16(binary.LittleEndian.Uint16(bs[4*s:])) + int16(binary.LittleEndian.Uint16(bs[4*s+2:])))
	}
	for k := 0; k < 4; k++ {
		prod := int32(m[2*k])*b[2*k] + int32(m[2*k+1])*b[2*k+1]
		accm[k] -= float32(float32(prod) * dm)
	}
}

func dotQ4_KQ8_KGeneric(w []byte, v *QVec) float32 {
	nb := v.nb
	w, x, ys := w[:144*nb], v.blocks[:292*nb], v.ys()[:256*nb]
	lut := &u4Pairs
	var acc [8]float32
	var accm [4]float32
	for i := 0; i < nb; i++ {
		wb := (*[144]byte)(w[144*i:])
		xb := (*[292]byte)(x[292*i:])
		yd := f32at(xb[0:])
		d, dm := yd*f16at(wb[0:]), yd*f16at(wb[2:])
		sc, m := unpackK4((*[12]byte)(wb[4:]))
		var sumi [8]float32 // exact integers: |sumi_k| ≤ 8·63·4·15·128 < 2²⁴
		for g := 0; g < 4; g++ {
			q := (*[32]byte)(wb[16+32*g:])
			y := (*[64]float32)(ys[256*i+64*g:])
			s0, s1 := float32(sc[2*g&7]), float32(sc[(2*g+1)&7])
			for k := 0; k < 8; k++ {
				e := 4 * k & 31
				p0, p1, p2, p3 := &lut[q[e]], &lut[q[(e+1)&31]], &lut[q[(e+2)&31]], &lut[q[(e+3)&31]]
				lo := p0[0]*y[e] + p1[0]*y[(e+1)&31] + p2[0]*y[(e+2)&31] + p3[0]*y[(e+3)&31]
				hi := p0[1]*y[32+e] + p1[1]*y[32+(e+1)&31] + p2[1]*y[32+(e+2)&31] + p3[1]*y[32+(e+3)&31]
				sumi[k&7] += s0*lo + s1*hi
			}
		}
		addLanes(&acc, &sumi, d)
		kMins(&accm, xb[260:], &m, dm)
	}
	return hsum8(&acc) + hsum4(&accm)
}

func dotQ5_KQ8_KGeneric(w []byte, v *QVec) float32 {
	nb := v.nb
	w, x, ys := w[:176*nb], v.blocks[:292*nb], v.ys()[:256*nb]
	lut := &u5Pairs
	var acc [8]float32
	var accm [4]float32
	for i := 0; i < nb; i++ {
		wb := (*[176]byte)(w[176*i:])
		xb := (*[292]byte)(x[292*i:])
		yd := f32at(xb[0:])
		d, dm := yd*f16at(wb[0:]), yd*f16at(wb[2:])
		sc, m := unpackK4((*[12]byte)(wb[4:]))
		qh := (*[32]byte)(wb[16:])
		var sumi [8]float32 // exact integers: |sumi_k| ≤ 8·63·4·31·128 < 2²⁴
		for g := 0; g < 4; g++ {
			q := (*[32]byte)(wb[48+32*g:])
			y := (*[64]float32)(ys[256*i+64*g:])
			s0, s1 := float32(sc[2*g&7]), float32(sc[(2*g+1)&7])
			sh := uint(2*g) & 7
			// bits 2g and 2g+1 of qh[l] are the fifth bits of the low and
			// high nibble of q[l]: exactly a u5Pairs h.
			pair := func(l int) *[2]float32 {
				return &lut[(uint32(q[l&31])|(uint32(qh[l&31])>>sh&3)<<8)&1023]
			}
			for k := 0; k < 8; k++ {
				e := 4 * k & 31
				p0, p1, p2, p3 := pair(e), pair(e+1), pair(e+2), pair(e+3)
				lo := p0[0]*y[e] + p1[0]*y[(e+1)&31] + p2[0]*y[(e+2)&31] + p3[0]*y[(e+3)&31]
				hi := p0[1]*y[32+e] + p1[1]*y[32+(e+1)&31] + p2[1]*y[32+(e+2)&31] + p3[1]*y[32+(e+3)&31]
				sumi[k&7] += s0*lo + s1*hi
			}
		}
		addLanes(&acc, &sumi, d)
		kMins(&accm, xb[260:], &m, dm)
	}
	return hsum8(&acc) + hsum4(&accm)
}

func dotQ6_KQ8_KGeneric(w []byte, v *QVec) float32 {
	nb := v.nb
	w, x, ys := w[:210*nb], v.blocks[:292*nb], v.ys()[:256*nb]
	lut := &q6Table
	var acc [8]float32
	for i := 0; i < nb; i++ {
		wb := (*[210]byte)(w[210*i:])
		xb := (*[292]byte)(x[292*i:])
		d := f32at(xb[0:]) * f16at(wb[208:])
		// sumi_k = Σ sc·Σ (q−32)·y and ty_k = Σ sc·Σ y over the lane's
		// elements, both exact integers in float32 (|·| ≤ 2²⁴)
		var sumi, ty [8]float32
		for h := 0; h < 2; h++ {
			ql := (*[64]byte)(wb[64*h:])
			qh := (*[32]byte)(wb[128+32*h:])
			sc := (*[8]byte)(wb[192+8*h:])
			y := (*[128]float32)(ys[256*i+128*h:])
			// Element l < 32 of chunk c (32 elements each) is: c = 0 the low
			// nibble of ql[l], 1 of ql[l+32], 2 the high nibble of ql[l],
			// 3 of ql[l+32]; bits 2c, 2c+1 of qh[l] on top. Lane k of a
			// chunk holds l = 4k..4k+3, with sub-block scale sc[2c + k/4].
			for k := 0; k < 8; k++ {
				var s0, s1, s2, s3, t0, t1, t2, t3 float32
				for j := 0; j < 4; j++ {
					l := (4*k + j) & 31
					a, b, hb := uint32(ql[l]), uint32(ql[l+32]), uint32(qh[l])
					s0 += lut[(a&15|(hb&3)<<4)&63] * y[l]
					s1 += lut[(b&15|(hb>>2&3)<<4)&63] * y[32+l]
					s2 += lut[(a>>4|(hb>>4&3)<<4)&63] * y[64+l]
					s3 += lut[(b>>4|(hb>>6)<<4)&63] * y[96+l]
					t0 += y[l]
					t1 += y[32+l]
					t2 += y[64+l]
					t3 += y[96+l]
				}
				half := k >> 2 & 1
				c0, c1, c2, c3 := i8Table[sc[half]], i8Table[sc[2+half]], i8Table[sc[4+half]], i8Table[sc[6+half]]
				sumi[k&7] += c0*s0 + c1*s1 + c2*s2 + c3*s3
				ty[k&7] += c0*t0 + c1*t1 + c2*t2 + c3*t3
			}
		}
		// The assembly sums the unsigned quants, Σ sc·Σ q·y = sumi + 32·ty,
		// and takes 32·(sc_2k·bsum_2k + sc_2k+1·bsum_2k+1) off lane k.
		var lanes [8]float32
		for k := range lanes {
			c := i8(wb[192+2*k&15])*int32(int16(binary.LittleEndian.Uint16(xb[260+4*k&31:]))) +
				i8(wb[193+2*k&15])*int32(int16(binary.LittleEndian.Uint16(xb[262+4*k&31:])))
			lanes[k] = float32(int32(sumi[k]) + 32*int32(ty[k]) - 32*c)
		}
		addLanes(&acc, &lanes, d)
	}
	return hsum8(&acc)
}

// The multi-input twins: dst[j] = the row kernel's result for vs[j], for
// j < len(vs) ≤ maxMulti, each super-block's weights decoded once.

// k45Multi is the multi-input twin of the Q4_K (five = false) and Q5_K
// kernels.
func k45Multi(dst []float32, w []byte, vs []*QVec, five bool) {
	nb := vs[0].nb
	wsize, qoff := 144, 16
	if five {
		wsize, qoff = 176, 48
	}
	w = w[:wsize*nb]
	var acc [maxMulti][8]float32
	var accm [maxMulti][4]float32
	var p [128]*[2]float32     // per 64-element group g, p[32g+l] = the pair of byte l
	var ys [maxMulti][]float32 // the inputs' quants as float32
	for k, v := range vs {
		ys[k&(maxMulti-1)] = v.ys()
	}
	for i := 0; i < nb; i++ {
		wb := w[wsize*i : wsize*(i+1)]
		dw, dmw := f16at(wb[0:]), f16at(wb[2:])
		sc, m := unpackK4((*[12]byte)(wb[4:]))
		for g := 0; g < 4; g++ {
			q := (*[32]byte)(wb[qoff+32*g:])
			for l, b := range q {
				if five {
					h := uint32(wb[16+l]) >> (2 * uint(g)) & 3
					p[32*g+l] = &u5Pairs[(uint32(b)|h<<8)&1023]
				} else {
					p[32*g+l] = &u4Pairs[b]
				}
			}
		}
		for k, v := range vs {
			xb := (*[292]byte)(v.blocks[292*i:])
			yd := f32at(xb[0:])
			var sumi [8]float32
			for g := 0; g < 4; g++ {
				y := (*[64]float32)(ys[k&(maxMulti-1)][256*i+64*g:])
				pg := (*[32]*[2]float32)(p[32*g:])
				s0, s1 := float32(sc[2*g&7]), float32(sc[(2*g+1)&7])
				for l := 0; l < 8; l++ {
					e := 4 * l
					p0, p1, p2, p3 := pg[e], pg[e+1], pg[e+2], pg[e+3]
					lo := p0[0]*y[e] + p1[0]*y[e+1] + p2[0]*y[e+2] + p3[0]*y[e+3]
					hi := p0[1]*y[32+e] + p1[1]*y[33+e] + p2[1]*y[34+e] + p3[1]*y[35+e]
					sumi[l] += s0*lo + s1*hi
				}
			}
			a := k & (maxMulti - 1)
			addLanes(&acc[a], &sumi, yd*dw)
			kMins(&accm[a], xb[260:], &m, yd*dmw)
		}
	}
	for k := range vs {
		a := k & (maxMulti - 1)
		dst[k] = hsum8(&acc[a]) + hsum4(&accm[a])
	}
}

func dotQ4_KQ8_KMultiGeneric(dst []float32, w []byte, vs []*QVec) { k45Multi(dst, w, vs, false) }
func dotQ5_KQ8_KMultiGeneric(dst []float32, w []byte, vs []*QVec) { k45Multi(dst, w, vs, true) }

func dotQ6_KQ8_KMultiGeneric(dst []float32, w []byte, vs []*QVec) {
	nb := vs[0].nb
	w = w[:210*nb]
	lut := &q6Table
	var acc [maxMulti][8]float32
	var q [256]float32         // element 128h + 32c + l: the quant − 32 (see dotQ6_KQ8_KGeneric)
	var ys [maxMulti][]float32 // the inputs' quants as float32
	for k, v := range vs {
		ys[k&(maxMulti-1)] = v.ys()
	}
	for i := 0; i < nb; i++ {
		wb := (*[210]byte)(w[210*i:])
		for h := 0; h < 2; h++ {
			ql := (*[64]byte)(wb[64*h:])
			qh := (*[32]byte)(wb[128+32*h:])
			qq := (*[128]float32)(q[128*h:])
			for l := 0; l < 32; l++ {
				a, b, hb := uint32(ql[l]), uint32(ql[l+32]), uint32(qh[l])
				qq[l] = lut[(a&15|(hb&3)<<4)&63]
				qq[32+l] = lut[(b&15|(hb>>2&3)<<4)&63]
				qq[64+l] = lut[(a>>4|(hb>>4&3)<<4)&63]
				qq[96+l] = lut[(b>>4|(hb>>6)<<4)&63]
			}
		}
		dw := f16at(wb[208:])
		for k, v := range vs {
			xb := (*[292]byte)(v.blocks[292*i:])
			var sumi, ty [8]float32
			for h := 0; h < 2; h++ {
				sc := (*[8]byte)(wb[192+8*h:])
				y := (*[128]float32)(ys[k&(maxMulti-1)][256*i+128*h:])
				qq := (*[128]float32)(q[128*h:])
				for l8 := 0; l8 < 8; l8++ {
					var s0, s1, s2, s3, t0, t1, t2, t3 float32
					for j := 0; j < 4; j++ {
						l := (4*l8 + j) & 31
						s0 += qq[l] * y[l]
						s1 += qq[32+l] * y[32+l]
						s2 += qq[64+l] * y[64+l]
						s3 += qq[96+l] * y[96+l]
						t0 += y[l]
						t1 += y[32+l]
						t2 += y[64+l]
						t3 += y[96+l]
					}
					half := l8 >> 2 & 1
					c0, c1, c2, c3 := i8Table[sc[half]], i8Table[sc[2+half]], i8Table[sc[4+half]], i8Table[sc[6+half]]
					sumi[l8&7] += c0*s0 + c1*s1 + c2*s2 + c3*s3
					ty[l8&7] += c0*t0 + c1*t1 + c2*t2 + c3*t3
				}
			}
			var lanes [8]float32
			for l := range lanes {
				c := i8(wb[192+2*l&15])*int32(int16(binary.LittleEndian.Uint16(xb[260+4*l&31:]))) +
					i8(wb[193+2*l&15])*int32(int16(binary.LittleEndian.Uint16(xb[262+4*l&31:])))
				lanes[l] = float32(int32(sumi[l]) + 32*int32(ty[l]) - 32*c)
			}
			addLanes(&acc[k&(maxMulti-1)], &lanes, f32at(xb[0:])*dw)
		}
	}
	for k := range vs {
		dst[k] = hsum8(&acc[k&(maxMulti-1)])
	}
}
