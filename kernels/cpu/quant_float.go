package cpu

import (
	"encoding/binary"
	"math"
)

// Row kernels for the plain float types F32, F16 (IEEE binary16, decoded by
// f16Table) and BF16 (the top half of a float32), with float32 x. The
// generic twins run four independent accumulators over eight elements per
// step:
//
//	s_k = Σ_{i ≡ k, k+4 (mod 8)} w[i]·x[i],  result (s0 + s1) + (s2 + s3) + tail
//
// The AVX2 kernels (dotf_amd64.s) use fused multiply-adds into four
// 8-lane accumulators, so the two agree to float rounding, not bit for bit:
// both are within a few ulps·n of Σ|w·x| of the exact sum.

// dotF32Generic returns Σ w[i]·x[i] for the little-endian float32 row.
func dotF32Generic(row []byte, x []float32) float32 {
	n := len(x)
	row = row[:4*n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= n; i += 8 {
		b := (*[32]byte)(row[4*i:])
		xx := (*[8]float32)(x[i:])
		s0 += f32at(b[0:]) * xx[0]
		s1 += f32at(b[4:]) * xx[1]
		s2 += f32at(b[8:]) * xx[2]
		s3 += f32at(b[12:]) * xx[3]
		s0 += f32at(b[16:]) * xx[4]
		s1 += f32at(b[20:]) * xx[5]
		s2 += f32at(b[24:]) * xx[6]
		s3 += f32at(b[28:]) * xx[7]
	}
	for ; i < n; i++ {
		s0 += f32at(row[4*i:]) * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// dotF16Generic returns Σ w[i]·x[i] for the little-endian binary16 row.
func dotF16Generic(row []byte, x []float32) float32 {
	n := len(x)
	row = row[:2*n]
	t := &f16Table
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= n; i += 8 {
		b := (*[16]byte)(row[2*i:])
		xx := (*[8]float32)(x[i:])
		s0 += t[binary.LittleEndian.Uint16(b[0:])] * xx[0]
		s1 += t[binary.LittleEndian.Uint16(b[2:])] * xx[1]
		s2 += t[binary.LittleEndian.Uint16(b[4:])] * xx[2]
		s3 += t[binary.LittleEndian.Uint16(b[6:])] * xx[3]
		s0 += t[binary.LittleEndian.Uint16(b[8:])] * xx[4]
		s1 += t[binary.LittleEndian.Uint16(b[10:])] * xx[5]
		s2 += t[binary.LittleEndian.Uint16(b[12:])] * xx[6]
		s3 += t[binary.LittleEndian.Uint16(b[14:])] * xx[7]
	}
	for ; i < n; i++ {
		s0 += t[binary.LittleEndian.Uint16(row[2*i:])] * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func bf16(b []byte) float32 { return math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16) }

// dotBF16Generic returns Σ w[i]·x[i] for the little-endian bfloat16 row.
func dotBF16Generic(row []byte, x []float32) float32 {
	n := len(x)
	row = row[:2*n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= n; i += 8 {
		b := (*[16]byte)(row[2*i:])
		xx := (*[8]float32)(x[i:])
		s0 += bf16(b[0:]) * xx[0]
		s1 += bf16(b[2:]) * xx[1]
		s2 += bf16(b[4:]) * xx[2]
		s3 += bf16(b[6:]) * xx[3]
		s0 += bf16(b[8:]) * xx[4]
		s1 += bf16(b[10:]) * xx[5]
		s2 += bf16(b[12:]) * xx[6]
		s3 += bf16(b[14:]) * xx[7]
	}
	for ; i < n; i++ {
		s0 += bf16(row[2*i:]) * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func decF32(row []byte, dst []float32) {
	row = row[:4*len(dst)]
	for i := range dst {
		dst[i] = f32at(row[4*i:])
	}
}

func decF16(row []byte, dst []float32) {
	row = row[:2*len(dst)]
	for i := range dst {
		dst[i] = f16Table[binary.LittleEndian.Uint16(row[2*i:])]
	}
}

func decBF16(row []byte, dst []float32) {
	row = row[:2*len(dst)]
	for i := range dst {
		dst[i] = bf16(row[2*i:])
	}
}
