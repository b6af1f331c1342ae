package cpu

import "encoding/binary"

// Row kernels for the 32-element block types. Per block (layouts as in
// dtype.Dequantize):
//
//	Q4_0  d f16 | qs[16]               dot: d·Σ_j (q_j − 8)·x_j
//	Q4_1  d f16 | m f16 | qs[16]       dot: d·Σ_j q_j·x_j + m·Σ_j x_j
//	Q5_0  d f16 | qh u32 | qs[16]      dot: d·Σ_j (q_j − 16)·x_j
//	Q5_1  d f16 | m f16 | qh u32 | qs  dot: d·Σ_j q_j·x_j + m·Σ_j x_j
//	Q8_0  d f16 | qs[32] int8          dot: d·Σ_j q_j·x_j
//
// where element j < 16 takes the low nibble of qs[j] and element j+16 the
// high nibble, and for Q5 bit j of qh is the fifth bit of element j. The
// inner sums use four accumulators; q → float is a table load (for Q5, one
// load per byte of qs, indexed by the byte and its two fifth bits).

func dotQ4_0(row []byte, x []float32) float32 {
	nb := len(x) / 32
	row = row[:18*nb]
	lut := &q40Pairs
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[18]byte)(row[18*i:])
		xb := (*[32]float32)(x[32*i:])
		var s0, s1, s2, s3 float32
		for j := 0; j < 16; j += 2 {
			p, q := &lut[b[2+j]], &lut[b[3+j]]
			s0 += p[0] * xb[j]
			s1 += p[1] * xb[j+16]
			s2 += q[0] * xb[j+1]
			s3 += q[1] * xb[j+17]
		}
		sum += f16at(b[0:]) * ((s0 + s1) + (s2 + s3))
	}
	return sum
}

func dotQ4_1(row []byte, x, xs []float32) float32 {
	nb := len(x) / 32
	row = row[:20*nb]
	lut := &u4Pairs
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[20]byte)(row[20*i:])
		xb := (*[32]float32)(x[32*i:])
		var s0, s1, s2, s3 float32
		for j := 0; j < 16; j += 2 {
			p, q := &lut[b[4+j]], &lut[b[5+j]]
			s0 += p[0] * xb[j]
			s1 += p[1] * xb[j+16]
			s2 += q[0] * xb[j+1]
			s3 += q[1] * xb[j+17]
		}
		sum += f16at(b[0:])*((s0+s1)+(s2+s3)) + f16at(b[2:])*xsum(x, xs, i)
	}
	return sum
}

func dotQ5_0(row []byte, x []float32) float32 {
	nb := len(x) / 32
	row = row[:22*nb]
	lut := &q50Pairs
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[22]byte)(row[22*i:])
		xb := (*[32]float32)(x[32*i:])
		m := interleaveQH(binary.LittleEndian.Uint32(b[2:]))
		var s0, s1, s2, s3 float32
		for j := 0; j < 16; j += 2 {
			p := &lut[(uint32(b[6+j])|(m&3)<<8)&1023]
			q := &lut[(uint32(b[7+j])|(m&12)<<6)&1023]
			m >>= 4
			s0 += p[0] * xb[j]
			s1 += p[1] * xb[j+16]
			s2 += q[0] * xb[j+1]
			s3 += q[1] * xb[j+17]
		}
		sum += f16at(b[0:]) * ((s0 + s1) + (s2 + s3))
	}
	return sum
}

func dotQ5_1(row []byte, x, xs []float32) float32 {
	nb := len(x) / 32
	row = row[:24*nb]
	lut := &u5Pairs
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[24]byte)(row[24*i:])
		xb := (*[32]float32)(x[32*i:])
		m := interleaveQH(binary.LittleEndian.Uint32(b[4:]))
		var s0, s1, s2, s3 float32
		for j := 0; j < 16; j += 2 {
			p := &lut[(uint32(b[8+j])|(m&3)<<8)&1023]
			q := &lut[(uint32(b[9+j])|(m&12)<<6)&1023]
			m >>= 4
			s0 += p[0] * xb[j]
			s1 += p[1] * xb[j+16]
			s2 += q[0] * xb[j+1]
			s3 += q[1] * xb[j+17]
		}
		sum += f16at(b[0:])*((s0+s1)+(s2+s3)) + f16at(b[2:])*xsum(x, xs, i)
	}
	return sum
}

func dotQ8_0(row []byte, x []float32) float32 {
	nb := len(x) / 32
	row = row[:34*nb]
	lut := &i8Table
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[34]byte)(row[34*i:])
		xb := (*[32]float32)(x[32*i:])
		var s0, s1, s2, s3 float32
		for j := 0; j < 32; j += 4 {
			s0 += lut[b[2+j]] * xb[j]
			s1 += lut[b[3+j]] * xb[j+1]
			s2 += lut[b[4+j]] * xb[j+2]
			s3 += lut[b[5+j]] * xb[j+3]
		}
		sum += f16at(b[0:]) * ((s0 + s1) + (s2 + s3))
	}
	return sum
}

// The decoders repeat dtype's reference formulas with the same float32
// operation order; float32(a*b) keeps a product from being fused with the
// following addition.

func decQ4_0(row []byte, dst []float32) {
	nb := len(dst) / 32
	row = row[:18*nb]
	lut := &q40Pairs
	for i := 0; i < nb; i++ {
		b := (*[18]byte)(row[18*i:])
		y := (*[32]float32)(dst[32*i:])
		d := f16at(b[0:])
		for j := 0; j < 16; j++ {
			p := &lut[b[2+j]]
			y[j] = p[0] * d
			y[j+16] = p[1] * d
		}
	}
}

func decQ4_1(row []byte, dst []float32) {
	nb := len(dst) / 32
	row = row[:20*nb]
	lut := &u4Pairs
	for i := 0; i < nb; i++ {
		b := (*[20]byte)(row[20*i:])
		y := (*[32]float32)(dst[32*i:])
		d, m := f16at(b[0:]), f16at(b[2:])
		for j := 0; j < 16; j++ {
			p := &lut[b[4+j]]
			y[j] = float32(p[0]*d) + m
			y[j+16] = float32(p[1]*d) + m
		}
	}
}

func decQ5_0(row []byte, dst []float32) {
	nb := len(dst) / 32
	row = row[:22*nb]
	lut := &q50Table
	for i := 0; i < nb; i++ {
		b := (*[22]byte)(row[22*i:])
		y := (*[32]float32)(dst[32*i:])
		d := f16at(b[0:])
		qh := binary.LittleEndian.Uint32(b[2:])
		for j := 0; j < 16; j++ {
			q := uint32(b[6+j])
			y[j] = lut[(q&15|(qh>>j&1)<<4)&31] * d
			y[j+16] = lut[(q>>4|(qh>>(j+16)&1)<<4)&31] * d
		}
	}
}

func decQ5_1(row []byte, dst []float32) {
	nb := len(dst) / 32
	row = row[:24*nb]
	lut := &u5Table
	for i := 0; i < nb; i++ {
		b := (*[24]byte)(row[24*i:])
		y := (*[32]float32)(dst[32*i:])
		d, m := f16at(b[0:]), f16at(b[2:])
		qh := binary.LittleEndian.Uint32(b[4:])
		for j := 0; j < 16; j++ {
			q := uint32(b[8+j])
			y[j] = float32(lut[(q&15|(qh>>j&1)<<4)&31]*d) + m
			y[j+16] = float32(lut[(q>>4|(qh>>(j+16)&1)<<4)&31]*d) + m
		}
	}
}

func decQ8_0(row []byte, dst []float32) {
	nb := len(dst) / 32
	row = row[:34*nb]
	lut := &i8Table
	for i := 0; i < nb; i++ {
		b := (*[34]byte)(row[34*i:])
		y := (*[32]float32)(dst[32*i:])
		d := f16at(b[0:])
		for j := 0; j < 32; j++ {
			y[j] = lut[b[2+j]] * d
		}
	}
}
