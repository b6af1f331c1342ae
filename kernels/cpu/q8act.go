package cpu

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/stokehq/stoke/models/dtype"
)

// Activation quantization: the vector x of a mat-vec with quantized weights
// is itself quantized to 8 bits once per call, so that the row kernels can
// multiply integers (see DotRowQ8). The two formats are GGUF's:
//
//	Q8_0  34 bytes per 32 values:   d f16 | qs[32] int8            x̂_j = d·qs_j
//	Q8_K  292 bytes per 256 values: d f32 | qs[256] int8 | bsums[16] int16
//	                                x̂_j = d·qs_j, bsums[k] = Σ_{j<16} qs[16k+j]
//
// Quantization error. Q8_K: |x_j − x̂_j| ≤ |d|/2 per value (d kept in
// float32; the float rounding of d and of x·(1/d) adds a few ulps). Q8_0:
// d is rounded to f16 (relative error ≤ 2⁻¹¹ for a normal half) and
// |qs_j| ≤ 127, so |x_j − x̂_j| ≤ d/2 + 127·d·2⁻¹¹ < 0.563·d, d =
// max_j|x_j|/127 (looser when d is an f16 subnormal, that is when
// max|x| < 127·2⁻¹⁴ ≈ 7.8e-3). A dot product with weights w therefore moves by at
// most Σ_j |w_j|·|x_j − x̂_j| ≤ Σ_blocks (Σ_{j∈block} |w_j|)·0.563·d_block
// (for Q8_K, 0.5·|d_block|): about 0.4% of a block's largest activation per
// element, and much less on average since the errors have random signs.

// QuantizeQ8_0 quantizes x to Q8_0 blocks in dst exactly as ggml's AVX2
// quantize_row_q8_0 (the activation quantizer llama.cpp uses on x86):
// per block of 32, amax = max_j |x_j|, d = amax/127 stored as f16 (round to
// nearest even), and qs_j = round(x_j·id) with id = 127/amax (0 when
// amax = 0), rounded to nearest with ties to even; a value that does not
// fit becomes −128 (so ±Inf and NaN inputs give −128, as VCVTPS2DQ plus
// saturating packs do). Note that ggml's reference quantize_row_q8_0_ref,
// which dtype.Quantize follows, multiplies by 1/d and rounds ties away from
// zero: the two differ in the last bit of a few quants.
//
// len(x) must be a multiple of 32 and len(dst) at least 34·len(x)/32.
func QuantizeQ8_0(x []float32, dst []byte) {
	nb := checkQuantize(dtype.Q8_0, x, dst)
	quantizeQ8_0(x, dst, nb)
}

// QuantizeQ8_K quantizes x to Q8_K blocks in dst exactly as ggml's
// quantize_row_q8_K_ref (what llama.cpp runs on x86) and dtype.Quantize do,
// byte for byte: per block of 256, max is the first value of largest
// magnitude, iscale = −127/max, qs_j = min(127, nearest_int(iscale·x_j))
// (nearest_int rounds ties to even by the 1.5·2²³ trick), d = 1/iscale,
// and bsums hold the sums of each 16 quants. A block of zeros gives d = 0
// and zero quants and sums.
//
// len(x) must be a multiple of 256 and len(dst) at least 292·len(x)/256.
func QuantizeQ8_K(x []float32, dst []byte) {
	nb := checkQuantize(dtype.Q8_K, x, dst)
	quantizeQ8_K(x, dst, nb)
}

// checkQuantize validates the lengths for a quantization of x to type t and
// returns the number of blocks (a nil dst is not checked).
func checkQuantize(t dtype.Type, x []float32, dst []byte) int {
	bs, ts := t.BlockSize(), t.TypeSize()
	if len(x)%bs != 0 {
		panic(fmt.Sprintf("cpu: cannot quantize %d values to %s blocks of %d", len(x), t, bs))
	}
	nb := len(x) / bs
	if dst != nil && len(dst) < nb*ts {
		panic(fmt.Sprintf("cpu: %d bytes cannot hold %d %s blocks", len(dst), nb, t))
	}
	return nb
}

// cvtI32 is x86's VCVTPS2DQ applied to an integer-valued float: the value
// as an int32, or math.MinInt32 ("integer indefinite") when it does not
// fit or is NaN.
func cvtI32(f float32) int32 {
	if !(f >= -2147483648 && f < 2147483648) {
		return math.MinInt32
	}
	return int32(f)
}

// satI8 narrows like the signed saturating packs VPACKSSDW + VPACKSSWB.
func satI8(v int32) int8 { return int8(max(-128, min(127, v))) }

func quantizeQ8_0Generic(x []float32, dst []byte, nb int) {
	x, dst = x[:32*nb], dst[:34*nb]
	for i := 0; i < nb; i++ {
		xb := (*[32]float32)(x[32*i:])
		b := (*[34]byte)(dst[34*i:])
		var amax float32
		for _, v := range xb {
			if a := float32(math.Abs(float64(v))); a > amax { // VMAXPS(|x|, amax): NaN skipped
				amax = a
			}
		}
		d := amax / 127
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		binary.LittleEndian.PutUint16(b[0:], dtype.F32ToF16(d))
		for j, v := range xb {
			r := float32(math.RoundToEven(float64(float32(v * id))))
			b[2+j] = byte(satI8(cvtI32(r)))
		}
	}
}

// nearestInt is ggml's nearest_int: round to nearest, ties to even, by
// adding 1.5·2²³ and reading the low mantissa bits (garbage, as in C, for
// |f| > 2²² and NaN).
func nearestInt(f float32) int32 {
	v := f + 12582912
	return int32(math.Float32bits(v)&0x007fffff) - 0x00400000
}

func quantizeQ8_KGeneric(x []float32, dst []byte, nb int) {
	x, dst = x[:256*nb], dst[:292*nb]
	for i := 0; i < nb; i++ {
		xb := (*[256]float32)(x[256*i:])
		b := (*[292]byte)(dst[292*i:])
		var mx, amax float32
		for _, v := range xb {
			if a := float32(math.Abs(float64(v))); amax < a {
				amax, mx = a, v
			}
		}
		if amax == 0 {
			clear(b[:])
			continue
		}
		iscale := -127 / mx
		for j, v := range xb {
			b[4+j] = byte(int8(min(127, nearestInt(float32(iscale*v)))))
		}
		for k := 0; k < 16; k++ {
			var s int32
			for _, q := range b[4+16*k : 4+16*k+16] {
				s += int32(int8(q))
			}
			binary.LittleEndian.PutUint16(b[260+2*k:], uint16(int16(s)))
		}
		binary.LittleEndian.PutUint32(b[0:], math.Float32bits(1/iscale))
	}
}
