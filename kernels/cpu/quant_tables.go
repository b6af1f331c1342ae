package cpu

import (
	"encoding/binary"
	"math"

	"github.com/stokehq/stoke/models/dtype"
)

// Lookup tables shared by the row kernels, built once at init. Turning a
// quant into a float by one load from L1 is cheaper in pure Go than the
// shifts, masks and int→float conversion it replaces.
var (
	// f16Table[h] = dtype.F16ToF32(h) for every half (256 KiB).
	f16Table [1 << 16]float32

	// nibble pairs: byte b → {lo, hi} as floats, plain and offset by −8.
	u4Pairs  [256][2]float32 // {b & 15, b >> 4}
	q40Pairs [256][2]float32 // {(b & 15) − 8, (b >> 4) − 8}

	// 5-bit pairs: index b | h<<8 (b a byte of nibbles, h two fifth
	// bits: bit 0 for the low nibble, bit 1 for the high one) →
	// {b&15 | (h&1)<<4, b>>4 | (h>>1)<<4}, plain and offset by −16.
	u5Pairs  [1024][2]float32
	q50Pairs [1024][2]float32

	i8Table  [256]float32 // float32(int8(b))
	u5Table  [32]float32  // v
	q50Table [32]float32  // v − 16
	q6Table  [64]float32  // v − 32
)

func init() {
	for h := range f16Table {
		f16Table[h] = dtype.F16ToF32(uint16(h))
	}
	for b := 0; b < 256; b++ {
		lo, hi := b&15, b>>4
		u4Pairs[b] = [2]float32{float32(lo), float32(hi)}
		q40Pairs[b] = [2]float32{float32(lo - 8), float32(hi - 8)}
		i8Table[b] = float32(int8(b))
	}
	for i := 0; i < 1024; i++ {
		b, h := i&255, i>>8
		lo, hi := b&15|(h&1)<<4, b>>4|(h>>1)<<4
		u5Pairs[i] = [2]float32{float32(lo), float32(hi)}
		q50Pairs[i] = [2]float32{float32(lo - 16), float32(hi - 16)}
	}
	for v := 0; v < 32; v++ {
		u5Table[v] = float32(v)
		q50Table[v] = float32(v - 16)
	}
	for v := 0; v < 64; v++ {
		q6Table[v] = float32(v - 32)
	}
}

// interleaveQH returns the 32 fifth bits of a Q5_0/Q5_1 block (bit j of qh
// belongs to element j, bit j+16 to element j+16) reordered so that bits
// 2j and 2j+1 are those of elements j and j+16, the pair that shares byte
// qs[j]: the h of a u5Pairs/q50Pairs index.
func interleaveQH(qh uint32) uint32 {
	return spreadBits16(qh) | spreadBits16(qh>>16)<<1
}

// spreadBits16 moves bit k of the low 16 bits of v to bit 2k.
func spreadBits16(v uint32) uint32 {
	v &= 0xffff
	v = (v | v<<8) & 0x00ff00ff
	v = (v | v<<4) & 0x0f0f0f0f
	v = (v | v<<2) & 0x33333333
	v = (v | v<<1) & 0x55555555
	return v
}

// f16at decodes the half at b[0:2].
func f16at(b []byte) float32 { return f16Table[binary.LittleEndian.Uint16(b)] }

// f32at decodes the float32 at b[0:4].
func f32at(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

// sum32 returns Σ x[0:32] in a fixed order. Every kernel that needs a
// block sum of x uses it (directly or through blockSums), so DotRow and
// DotRows agree bit for bit.
func sum32(x *[32]float32) float32 {
	var s0, s1, s2, s3 float32
	for j := 0; j < 32; j += 4 {
		s0 += x[j]
		s1 += x[j+1]
		s2 += x[j+2]
		s3 += x[j+3]
	}
	return (s0 + s1) + (s2 + s3)
}

// blockSums sets xs[k] = sum32(x[32k:32k+32]) for k < len(xs).
func blockSums(x, xs []float32) {
	for k := range xs {
		xs[k] = sum32((*[32]float32)(x[32*k:]))
	}
}

// xsum returns the sum of 32-element block k of x: precomputed in xs when
// the caller has it, else computed now.
func xsum(x, xs []float32, k int) float32 {
	if xs != nil {
		return xs[k]
	}
	return sum32((*[32]float32)(x[32*k:]))
}
