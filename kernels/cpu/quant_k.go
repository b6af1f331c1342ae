package cpu

// Row kernels for the 256-element super-block types (layouts as in
// dtype.Dequantize):
//
//	Q4_K  d | dmin | scales[12] | qs[128]          8 sub-blocks of 32
//	      dot: Σ_s d·sc_s·Σ_j q_j·x_j − dmin·m_s·Σ_j x_j
//	Q5_K  d | dmin | scales[12] | qh[32] | qs[128] same with 5-bit q
//	Q6_K  ql[128] | qh[64] | scales[16] int8 | d  16 sub-blocks of 16
//	      dot: d·Σ_s sc_s·Σ_j (q_j − 32)·x_j
//	Q8_K  d f32 | qs[256] int8 | bsums[16]        dot: d·Σ_j q_j·x_j
//
// In Q4_K/Q5_K, group g (64 elements) holds sub-blocks 2g (low nibbles of
// qs[32g:32g+32]) and 2g+1 (high nibbles); the 6-bit scales and mins are
// unpacked as dtype documents for get_scale_min_k4.

// unpackK4 returns the eight 6-bit scales and mins of a Q4_K/Q5_K block
// from its 12 packed bytes.
func unpackK4(q *[12]byte) (sc, m [8]uint8) {
	for j := 0; j < 4; j++ {
		sc[j] = q[j] & 63
		m[j] = q[j+4] & 63
		sc[j+4] = q[j+8]&0xF | (q[j]>>6)<<4
		m[j+4] = q[j+8]>>4 | (q[j+4]>>6)<<4
	}
	return sc, m
}

func dotQ4_K(row []byte, x, xs []float32) float32 {
	nb := len(x) / 256
	row = row[:144*nb]
	lut := &u4Pairs
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[144]byte)(row[144*i:])
		sc, m := unpackK4((*[12]byte)(b[4:]))
		var qsum, msum float32
		for g := 0; g < 4; g++ {
			xb := (*[64]float32)(x[256*i+64*g:])
			q := (*[32]byte)(b[16+32*g:])
			var s0, s1, s2, s3 float32
			for l := 0; l < 32; l += 2 {
				p, r := &lut[q[l]], &lut[q[l+1]]
				s0 += p[0] * xb[l]
				s1 += p[1] * xb[l+32]
				s2 += r[0] * xb[l+1]
				s3 += r[1] * xb[l+33]
			}
			k := 8*i + 2*g
			qsum += float32(sc[2*g&7])*(s0+s2) + float32(sc[(2*g+1)&7])*(s1+s3)
			msum += float32(m[2*g&7])*xsum(x, xs, k) + float32(m[(2*g+1)&7])*xsum(x, xs, k+1)
		}
		sum += f16at(b[0:])*qsum - f16at(b[2:])*msum
	}
	return sum
}

func dotQ5_K(row []byte, x, xs []float32) float32 {
	nb := len(x) / 256
	row = row[:176*nb]
	lut := &u5Pairs
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[176]byte)(row[176*i:])
		sc, m := unpackK4((*[12]byte)(b[4:]))
		qh := (*[32]byte)(b[16:])
		var qsum, msum float32
		for g := 0; g < 4; g++ {
			xb := (*[64]float32)(x[256*i+64*g:])
			q := (*[32]byte)(b[48+32*g:])
			sh := uint(2 * g)
			var s0, s1, s2, s3 float32
			for l := 0; l < 32; l += 2 {
				// bits 2g and 2g+1 of qh[l] are the fifth bits of the low and
				// high nibble of q[l]: exactly a u5Pairs h.
				p := &lut[(uint32(q[l])|(uint32(qh[l])>>sh&3)<<8)&1023]
				r := &lut[(uint32(q[l+1])|(uint32(qh[l+1])>>sh&3)<<8)&1023]
				s0 += p[0] * xb[l]
				s1 += p[1] * xb[l+32]
				s2 += r[0] * xb[l+1]
				s3 += r[1] * xb[l+33]
			}
			k := 8*i + 2*g
			qsum += float32(sc[2*g&7])*(s0+s2) + float32(sc[(2*g+1)&7])*(s1+s3)
			msum += float32(m[2*g&7])*xsum(x, xs, k) + float32(m[(2*g+1)&7])*xsum(x, xs, k+1)
		}
		sum += f16at(b[0:])*qsum - f16at(b[2:])*msum
	}
	return sum
}

func dotQ6_K(row []byte, x []float32) float32 {
	nb := len(x) / 256
	row = row[:210*nb]
	lut := &q6Table
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[210]byte)(row[210*i:])
		var acc float32
		for h := 0; h < 2; h++ {
			ql := (*[64]byte)(b[64*h:])
			qh := (*[32]byte)(b[128+32*h:])
			sc := (*[8]byte)(b[192+8*h:])
			xb := (*[128]float32)(x[256*i+128*h:])
			for half := 0; half < 2; half++ {
				var s0, s1, s2, s3 float32
				for l := 16 * half; l < 16*half+16; l++ {
					hb := uint32(qh[l])
					a, c := uint32(ql[l]), uint32(ql[l+32])
					s0 += lut[(a&15|(hb&3)<<4)&63] * xb[l]
					s1 += lut[(c&15|(hb>>2&3)<<4)&63] * xb[l+32]
					s2 += lut[(a>>4|(hb>>4&3)<<4)&63] * xb[l+64]
					s3 += lut[(c>>4|(hb>>6)<<4)&63] * xb[l+96]
				}
				acc += float32(int8(sc[half]))*s0 + float32(int8(sc[half+2]))*s1 +
					float32(int8(sc[half+4]))*s2 + float32(int8(sc[half+6]))*s3
			}
		}
		sum += f16at(b[208:]) * acc
	}
	return sum
}

func dotQ8_K(row []byte, x []float32) float32 {
	nb := len(x) / 256
	row = row[:292*nb]
	lut := &i8Table
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[292]byte)(row[292*i:])
		qs := (*[256]byte)(b[4:])
		xb := (*[256]float32)(x[256*i:])
		var s0, s1, s2, s3 float32
		for j := 0; j < 256; j += 4 {
			s0 += lut[qs[j]] * xb[j]
			s1 += lut[qs[j+1]] * xb[j+1]
			s2 += lut[qs[j+2]] * xb[j+2]
			s3 += lut[qs[j+3]] * xb[j+3]
		}
		sum += f32at(b[0:]) * ((s0 + s1) + (s2 + s3))
	}
	return sum
}

// Decoders, bit-exact with dtype.Dequantize: Q4_K/Q5_K compute
// (d·sc)·q − (dmin·m) and Q6_K (d·sc)·q, each product rounded.

func decQ4_K(row []byte, dst []float32) {
	nb := len(dst) / 256
	row = row[:144*nb]
	lut := &u4Pairs
	for i := 0; i < nb; i++ {
		b := (*[144]byte)(row[144*i:])
		d, dmin := f16at(b[0:]), f16at(b[2:])
		sc, m := unpackK4((*[12]byte)(b[4:]))
		for g := 0; g < 4; g++ {
			y := (*[64]float32)(dst[256*i+64*g:])
			q := (*[32]byte)(b[16+32*g:])
			d1, m1 := float32(d*float32(sc[2*g&7])), float32(dmin*float32(m[2*g&7]))
			d2, m2 := float32(d*float32(sc[(2*g+1)&7])), float32(dmin*float32(m[(2*g+1)&7]))
			for l := 0; l < 32; l++ {
				p := &lut[q[l]]
				y[l] = float32(d1*p[0]) - m1
				y[l+32] = float32(d2*p[1]) - m2
			}
		}
	}
}

func decQ5_K(row []byte, dst []float32) {
	nb := len(dst) / 256
	row = row[:176*nb]
	lut := &u5Table
	for i := 0; i < nb; i++ {
		b := (*[176]byte)(row[176*i:])
		d, dmin := f16at(b[0:]), f16at(b[2:])
		sc, m := unpackK4((*[12]byte)(b[4:]))
		qh := (*[32]byte)(b[16:])
		for g := 0; g < 4; g++ {
			y := (*[64]float32)(dst[256*i+64*g:])
			q := (*[32]byte)(b[48+32*g:])
			sh := uint(2 * g)
			d1, m1 := float32(d*float32(sc[2*g&7])), float32(dmin*float32(m[2*g&7]))
			d2, m2 := float32(d*float32(sc[(2*g+1)&7])), float32(dmin*float32(m[(2*g+1)&7]))
			for l := 0; l < 32; l++ {
				h := uint32(qh[l]) >> sh
				ql := uint32(q[l])
				y[l] = float32(d1*lut[(ql&15|(h&1)<<4)&31]) - m1
				y[l+32] = float32(d2*lut[(ql>>4|(h&2)<<3)&31]) - m2
			}
		}
	}
}

func decQ6_K(row []byte, dst []float32) {
	nb := len(dst) / 256
	row = row[:210*nb]
	lut := &q6Table
	for i := 0; i < nb; i++ {
		b := (*[210]byte)(row[210*i:])
		d := f16at(b[208:])
		for h := 0; h < 2; h++ {
			ql := (*[64]byte)(b[64*h:])
			qh := (*[32]byte)(b[128+32*h:])
			sc := (*[8]byte)(b[192+8*h:])
			y := (*[128]float32)(dst[256*i+128*h:])
			for l := 0; l < 32; l++ {
				is := l / 16
				hb := uint32(qh[l])
				a, c := uint32(ql[l]), uint32(ql[l+32])
				y[l] = d * float32(int8(sc[is&7])) * lut[(a&15|(hb&3)<<4)&63]
				y[l+32] = d * float32(int8(sc[(is+2)&7])) * lut[(c&15|(hb>>2&3)<<4)&63]
				y[l+64] = d * float32(int8(sc[(is+4)&7])) * lut[(a>>4|(hb>>4&3)<<4)&63]
				y[l+96] = d * float32(int8(sc[(is+6)&7])) * lut[(c>>4|(hb>>6)<<4)&63]
			}
		}
	}
}

func decQ8_K(row []byte, dst []float32) {
	nb := len(dst) / 256
	row = row[:292*nb]
	lut := &i8Table
	for i := 0; i < nb; i++ {
		b := (*[292]byte)(row[292*i:])
		d := f32at(b[0:])
		y := (*[256]float32)(dst[256*i:])
		for j := 0; j < 256; j++ {
			y[j] = d * lut[b[4+j]]
		}
	}
}
