package dtype

import (
	"encoding/binary"
	"math"
)

// The 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0. Layouts and
// formulas are in Dequantize's doc comment; each function here handles
// exactly one block.

// decodeQ4_0: d f16 | qs[16]; x[j] = d·(lo−8), x[j+16] = d·(hi−8).
func decodeQ4_0(b []byte, y []float32) {
	d := F16ToF32(le16(b))
	qs := b[2:18]
	for j := 0; j < 16; j++ {
		y[j] = float32(int32(qs[j]&0xF)-8) * d
		y[j+16] = float32(int32(qs[j]>>4)-8) * d
	}
}

// decodeQ4_1: d f16 | m f16 | qs[16]; x[j] = d·lo + m, x[j+16] = d·hi + m.
func decodeQ4_1(b []byte, y []float32) {
	d := F16ToF32(le16(b))
	m := F16ToF32(le16(b[2:]))
	qs := b[4:20]
	for j := 0; j < 16; j++ {
		y[j] = float32(float32(qs[j]&0xF)*d) + m
		y[j+16] = float32(float32(qs[j]>>4)*d) + m
	}
}

// decodeQ5_0: d f16 | qh u32 | qs[16]; the fifth bit of element j is bit j
// of qh; x = d·(q − 16).
func decodeQ5_0(b []byte, y []float32) {
	d := F16ToF32(le16(b))
	qh := binary.LittleEndian.Uint32(b[2:])
	qs := b[6:22]
	for j := 0; j < 16; j++ {
		h0 := int32(qh>>j&1) << 4
		h1 := int32(qh>>(j+16)&1) << 4
		y[j] = float32(int32(qs[j]&0xF)|h0-16) * d
		y[j+16] = float32(int32(qs[j]>>4)|h1-16) * d
	}
}

// decodeQ5_1: d f16 | m f16 | qh u32 | qs[16]; x = d·q + m.
func decodeQ5_1(b []byte, y []float32) {
	d := F16ToF32(le16(b))
	m := F16ToF32(le16(b[2:]))
	qh := binary.LittleEndian.Uint32(b[4:])
	qs := b[8:24]
	for j := 0; j < 16; j++ {
		h0 := int32(qh>>j&1) << 4
		h1 := int32(qh>>(j+16)&1) << 4
		y[j] = float32(float32(int32(qs[j]&0xF)|h0)*d) + m
		y[j+16] = float32(float32(int32(qs[j]>>4)|h1)*d) + m
	}
}

// decodeQ8_0: d f16 | qs[32] int8; x[j] = d·qs[j].
func decodeQ8_0(b []byte, y []float32) {
	d := F16ToF32(le16(b))
	for j := 0; j < 32; j++ {
		y[j] = float32(int8(b[2+j])) * d
	}
}

// absMax returns the element of largest magnitude (the first one on ties)
// and that magnitude, as ggml's "if (amax < fabsf(v))" loops do.
func absMax(x []float32) (max, amax float32) {
	for _, v := range x {
		if a := abs32(v); amax < a {
			amax, max = a, v
		}
	}
	return max, amax
}

// minMax is ggml's min/max scan starting from ±FLT_MAX.
func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

func inverse(d float32) float32 {
	if d != 0 {
		return 1 / d
	}
	return 0
}

// encodeQ4_0 is quantize_row_q4_0_ref: d = max/−8 where max is the signed
// value of largest magnitude, q = min(15, trunc(x/d + 8.5)).
func encodeQ4_0(x []float32, b []byte) {
	max, _ := absMax(x[:32])
	d := max / -8
	id := inverse(d)
	put16(b, F32ToF16(d))
	for j := 0; j < 16; j++ {
		x0 := float32(x[j] * id)
		x1 := float32(x[j+16] * id)
		q0 := clampInt(truncInt(x0+8.5), 0, 15)
		q1 := clampInt(truncInt(x1+8.5), 0, 15)
		b[2+j] = uint8(q0) | uint8(q1)<<4
	}
}

// encodeQ4_1 is quantize_row_q4_1_ref: d = (max−min)/15, m = min,
// q = min(15, trunc((x−min)/d + 0.5)).
func encodeQ4_1(x []float32, b []byte) {
	lo, hi := minMax(x[:32])
	d := (hi - lo) / 15
	id := inverse(d)
	put16(b, F32ToF16(d))
	put16(b[2:], F32ToF16(lo))
	for j := 0; j < 16; j++ {
		x0 := float32((x[j] - lo) * id)
		x1 := float32((x[j+16] - lo) * id)
		q0 := clampInt(truncInt(x0+0.5), 0, 15)
		q1 := clampInt(truncInt(x1+0.5), 0, 15)
		b[4+j] = uint8(q0) | uint8(q1)<<4
	}
}

// encodeQ5_0 is quantize_row_q5_0_ref: d = max/−16,
// q = min(31, trunc(x/d + 16.5)); bit 4 of q goes to qh.
func encodeQ5_0(x []float32, b []byte) {
	max, _ := absMax(x[:32])
	d := max / -16
	id := inverse(d)
	put16(b, F32ToF16(d))
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := float32(x[j] * id)
		x1 := float32(x[j+16] * id)
		q0 := uint32(clampInt(truncInt(x0+16.5), 0, 31))
		q1 := uint32(clampInt(truncInt(x1+16.5), 0, 31))
		b[6+j] = uint8(q0&0xF) | uint8(q1&0xF)<<4
		qh |= (q0 >> 4) << j
		qh |= (q1 >> 4) << (j + 16)
	}
	binary.LittleEndian.PutUint32(b[2:], qh)
}

// encodeQ5_1 is quantize_row_q5_1_ref: d = (max−min)/31, m = min,
// q = trunc((x−min)/d + 0.5).
func encodeQ5_1(x []float32, b []byte) {
	lo, hi := minMax(x[:32])
	d := (hi - lo) / 31
	id := inverse(d)
	put16(b, F32ToF16(d))
	put16(b[2:], F32ToF16(lo))
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := float32((x[j] - lo) * id)
		x1 := float32((x[j+16] - lo) * id)
		q0 := uint32(clampInt(truncInt(x0+0.5), 0, 31))
		q1 := uint32(clampInt(truncInt(x1+0.5), 0, 31))
		b[8+j] = uint8(q0&0xF) | uint8(q1&0xF)<<4
		qh |= (q0 >> 4) << j
		qh |= (q1 >> 4) << (j + 16)
	}
	binary.LittleEndian.PutUint32(b[4:], qh)
}

// encodeQ8_0 is quantize_row_q8_0_ref: d = amax/127, q = roundf(x/d)
// (round half away from zero).
func encodeQ8_0(x []float32, b []byte) {
	var amax float32
	for _, v := range x[:32] {
		if a := abs32(v); !(amax > a) { // MAX(amax, fabsf(v))
			amax = a
		}
	}
	d := amax / 127
	id := inverse(d)
	put16(b, F32ToF16(d))
	for j := 0; j < 32; j++ {
		b[2+j] = uint8(roundI8(x[j] * id))
	}
}

// roundI8 is roundf followed by a conversion to int8 for values in range;
// out-of-range values (only from non-finite input) saturate, NaN gives 0.
func roundI8(f float32) int8 {
	r := math.Round(float64(f))
	switch {
	case r != r:
		return 0
	case r > 127:
		return 127
	case r < -128:
		return -128
	}
	return int8(r)
}
