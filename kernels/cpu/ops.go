package cpu

import "math"

// Element-wise and reduction kernels on float32 vectors. Unless a comment
// says otherwise, all slices of one call must have the same length (a
// mismatch panics) and dst may be the same slice as an input (element i of
// the result depends only on element i of the inputs, or the whole input is
// read before dst is written).

// RMSNorm computes dst[i] = x[i] · 1/√(Σ_j x[j]²/n + eps) · w[i], n = len(x),
// as ggml's rms_norm followed by mul: the sum of squares is accumulated in
// float64, the mean, square root and scale are float32 (1/sqrtf(mean+eps)),
// and x[i]·scale is rounded before it is multiplied by w[i]. A nil w means
// w[i] = 1.
func RMSNorm(dst, x, w []float32, eps float32) {
	checkLen("RMSNorm dst", len(dst), len(x))
	if w != nil {
		checkLen("RMSNorm w", len(w), len(x))
	}
	if len(x) == 0 {
		return
	}
	var sum float64
	for _, v := range x {
		sum += float64(v) * float64(v)
	}
	mean := float32(sum / float64(len(x)))
	scale := 1 / sqrt32(mean+eps)
	if w == nil {
		for i, v := range x {
			dst[i] = v * scale
		}
		return
	}
	w = w[:len(x)]
	for i, v := range x {
		dst[i] = (v * scale) * w[i]
	}
}

// sqrt32 is C's sqrtf: the float64 square root of a float32 rounds to the
// correctly rounded float32 result.
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// LayerNorm computes dst[i] = (x[i] − μ) / √(σ² + eps) · w[i] + b[i] with
// μ = Σ x[j]/n and σ² = Σ (x[j] − μ)²/n, n = len(x), both sums in float64 as
// ggml's norm does. A nil w means w[i] = 1, a nil b means b[i] = 0.
func LayerNorm(dst, x, w, b []float32, eps float32) {
	checkLen("LayerNorm dst", len(dst), len(x))
	if w != nil {
		checkLen("LayerNorm w", len(w), len(x))
	}
	if b != nil {
		checkLen("LayerNorm b", len(b), len(x))
	}
	if len(x) == 0 {
		return
	}
	var sum float64
	for _, v := range x {
		sum += float64(v)
	}
	mean := float32(sum / float64(len(x)))
	var sum2 float64
	for _, v := range x {
		d := v - mean
		sum2 += float64(d) * float64(d)
	}
	variance := float32(sum2 / float64(len(x)))
	scale := 1 / sqrt32(variance+eps)
	for i, v := range x {
		y := (v - mean) * scale
		if w != nil {
			y *= w[i]
		}
		if b != nil {
			y += b[i]
		}
		dst[i] = y
	}
}

// Softmax replaces x in place by x[i] = e^{x[i] − m} / Σ_j e^{x[j] − m},
// m = max_j x[j] (which makes it overflow-free); exponentials are computed
// and summed in float64. −Inf entries become 0; if every entry is −Inf the
// result is NaN.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	m := x[0]
	for _, v := range x[1:] {
		m = max(m, v)
	}
	var sum float64
	for i, v := range x {
		e := math.Exp(float64(v - m))
		sum += e
		x[i] = float32(e)
	}
	inv := float32(1 / sum)
	for i := range x {
		x[i] *= inv
	}
}

// SiLU replaces x in place by x[i] = x[i] / (1 + e^{−x[i]}), in float32
// with a polynomial exponential (siluPoly, silu.go) within about 2 ulp
// of the exact value, vectorized where the assembly runs.
func SiLU(x []float32) {
	siluSlice(x)
}

func silu(v float32) float32 { return siluPoly(v) }

// GELU replaces x in place by the tanh approximation that ggml uses,
// x[i] = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), computed in float64,
// with ggml's clamps x ≤ −10 → 0 and x ≥ 10 → x. (ggml's CPU backend may
// instead look the value up in a table indexed by x rounded to f16; the
// formula is what that table holds.)
func GELU(x []float32) {
	const (
		sqrt2OverPi = 0.79788456080286535587989211986876
		coefA       = 0.044715
	)
	for i, v := range x {
		switch {
		case v <= -10:
			x[i] = 0
		case v >= 10:
		default:
			f := float64(v)
			x[i] = float32(0.5 * f * (1 + math.Tanh(sqrt2OverPi*f*(1+coefA*f*f))))
		}
	}
}

// ReLU replaces x in place by x[i] = max(x[i], 0).
func ReLU(x []float32) {
	for i, v := range x {
		if !(v > 0) {
			x[i] = 0
		}
	}
}

// SwiGLU computes dst[i] = silu(gate[i]) · up[i], silu as in SiLU.
func SwiGLU(dst, gate, up []float32) {
	checkLen("SwiGLU gate", len(gate), len(dst))
	checkLen("SwiGLU up", len(up), len(dst))
	for i := range dst {
		dst[i] = silu(gate[i]) * up[i]
	}
}

// Add computes dst[i] = a[i] + b[i].
func Add(dst, a, b []float32) {
	checkLen("Add a", len(a), len(dst))
	checkLen("Add b", len(b), len(dst))
	for i := range dst {
		dst[i] = a[i] + b[i]
	}
}

// Mul computes dst[i] = a[i] · b[i].
func Mul(dst, a, b []float32) {
	checkLen("Mul a", len(a), len(dst))
	checkLen("Mul b", len(b), len(dst))
	for i := range dst {
		dst[i] = a[i] * b[i]
	}
}

// Scale computes x[i] = s · x[i] in place.
func Scale(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

// AddInPlace computes dst[i] += x[i].
func AddInPlace(dst, x []float32) {
	checkLen("AddInPlace x", len(x), len(dst))
	for i := range dst {
		dst[i] += x[i]
	}
}

// Axpy computes dst[i] += a · x[i] (with fused multiply-adds on AVX2, so
// the result may differ from the unfused one by rounding).
func Axpy(dst []float32, a float32, x []float32) {
	checkLen("Axpy x", len(x), len(dst))
	axpyF32(dst, a, x)
}

func axpyF32Generic(dst []float32, a float32, x []float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += a * x[i]
	}
}

// Dot returns Σ_i a[i]·b[i], summed in float32 in interleaved partial sums
// (so the result may differ from a sequential sum by rounding): four, or
// on AVX2 four 8-lane FMA accumulators as the F32 row kernel.
func Dot(a, b []float32) float32 {
	checkLen("Dot b", len(b), len(a))
	return dotF32s(a, b)
}

func dotF32sGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		aa, bb := a[i:i+4:i+4], b[i:i+4:i+4]
		s0 += aa[0] * bb[0]
		s1 += aa[1] * bb[1]
		s2 += aa[2] * bb[2]
		s3 += aa[3] * bb[3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
