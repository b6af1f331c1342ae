package cpu

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func dotQ4_0B(row []byte, x []float32) float32 {
	nb := len(x) / 32
	row = row[:18*nb]
	lut := &q40Pairs
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[18]byte)(row[18*i:])
		xb := (*[32]float32)(x[32*i:])
		var s0, s1, s2, s3 float32
		for j := 0; j < 16; j += 2 {
			p, q := lut[b[2+j]], lut[b[3+j]]
			s0 += p[0] * xb[j]
			s1 += p[1] * xb[j+16]
			s2 += q[0] * xb[j+1]
			s3 += q[1] * xb[j+17]
		}
		sum += f16at(b[0:]) * ((s0 + s1) + (s2 + s3))
	}
	return sum
}

func dotQ4_0D(row []byte, x []float32) float32 {
	nb := len(x) / 32
	row = row[:18*nb]
	lut := &q40Pairs
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[18]byte)(row[18*i:])
		xb := (*[32]float32)(x[32*i:])
		var s0, s1, s2, s3 float32
		for h := 0; h < 2; h++ {
			w := binary.LittleEndian.Uint64(b[2+8*h:])
			xl := (*[8]float32)(xb[8*h:])
			xh := (*[8]float32)(xb[16+8*h:])
			p := lut[uint8(w)]
			s0 += p[0] * xl[0]
			s1 += p[1] * xh[0]
			p = lut[uint8(w>>8)]
			s2 += p[0] * xl[1]
			s3 += p[1] * xh[1]
			p = lut[uint8(w>>16)]
			s0 += p[0] * xl[2]
			s1 += p[1] * xh[2]
			p = lut[uint8(w>>24)]
			s2 += p[0] * xl[3]
			s3 += p[1] * xh[3]
			p = lut[uint8(w>>32)]
			s0 += p[0] * xl[4]
			s1 += p[1] * xh[4]
			p = lut[uint8(w>>40)]
			s2 += p[0] * xl[5]
			s3 += p[1] * xh[5]
			p = lut[uint8(w>>48)]
			s0 += p[0] * xl[6]
			s1 += p[1] * xh[6]
			p = lut[uint8(w>>56)]
			s2 += p[0] * xl[7]
			s3 += p[1] * xh[7]
		}
		sum += f16at(b[0:]) * ((s0 + s1) + (s2 + s3))
	}
	return sum
}

// E: CVTSI2SS style
func dotQ4_0E(row []byte, x []float32) float32 {
	nb := len(x) / 32
	row = row[:18*nb]
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[18]byte)(row[18*i:])
		xb := (*[32]float32)(x[32*i:])
		var s0, s1, s2, s3 float32
		for j := 0; j < 16; j += 2 {
			q0, q1 := int32(b[2+j]), int32(b[3+j])
			s0 += float32(q0&15-8) * xb[j]
			s1 += float32(q0>>4-8) * xb[j+16]
			s2 += float32(q1&15-8) * xb[j+1]
			s3 += float32(q1>>4-8) * xb[j+17]
		}
		sum += f16at(b[0:]) * ((s0 + s1) + (s2 + s3))
	}
	return sum
}

func benchVariant(b *testing.B, f func([]byte, []float32) float32) {
	const cols = 4096
	r := rand.New(rand.NewPCG(1, 2))
	rows := 32
	rb := 18 * cols / 32
	w := make([]byte, rows*rb)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	for off := 0; off < len(w); off += 18 {
		w[off+1] = 0x3c
	}
	x := make([]float32, cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	b.SetBytes(int64(len(w)))
	var s float32
	for b.Loop() {
		for k := 0; k < rows; k++ {
			s += f(w[k*rb:(k+1)*rb], x)
		}
	}
	_ = s
}

func BenchmarkZQ4A(b *testing.B) { benchVariant(b, dotQ4_0) }
func BenchmarkZQ4B(b *testing.B) { benchVariant(b, dotQ4_0B) }
func BenchmarkZQ4D(b *testing.B) { benchVariant(b, dotQ4_0D) }
func BenchmarkZQ4E(b *testing.B) { benchVariant(b, dotQ4_0E) }

func TestZVariants(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	w := make([]byte, 18*8)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	for off := 0; off < len(w); off += 18 {
		w[off+1] = 0x3c
	}
	x := make([]float32, 256)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	a := dotQ4_0(w, x)
	for _, f := range []func([]byte, []float32) float32{dotQ4_0B, dotQ4_0D, dotQ4_0E} {
		if d := f(w, x) - a; d > 1e-3 || d < -1e-3 {
			t.Fatal(d)
		}
	}
}
