package cpu

import "math"

// The float32 exponential of SiLU and of attention's softmax.
// silu(x) = x·σ(x) = x / (1 + e^{−x}) runs on every element of the FFN's
// gate, and softmax on every attention score; a float64 math.Exp per
// element cost about a tenth of prefill. expPoly computes e^t in float32
// as Cephes' expf does, with operations that the vector kernels
// (siluAVX2, expSubAVX2; _generate/silu.go) perform one for one, so both
// give the same bits:
//
//	t ← min(max(t, −87), 89)       (below, e^t stays a normal float,
//	                                 under 1.7e−38; above, it is +Inf,
//	                                 as it is for t > ln(2¹²⁸) ≈ 88.72)
//	k = round_even(t·log₂e)
//	r = t − k·C₁ − k·C₂            (C₁ + C₂ = ln 2, C₁ with 9 bits: k·C₁
//	                                 and both steps exact, |r| ≤ ln2/2)
//	e^r ≈ 1 + r + r²·P(r)          (P Cephes' degree-5 fit, relative error
//	                                 under 1 ulp on |r| ≤ ln2/2)
//	e^t = e^r·2^k                  (2^k built in the exponent bits; for
//	                                 k = 128, t > 88.38, the bits of +Inf)
//
// The two reduction steps are fused multiply-adds in the assembly; in Go
// they are math.FMA in float64, whose result is the exact value (at most
// 37 significant bits), so its rounding to float32 is the FMA's. The
// polynomial uses separate multiplies and adds, each rounded to float32
// (the explicit conversions keep the compiler from fusing them). The
// clamps are VMAXPS and VMINPS, which give the bound for a NaN t.
func expPoly(t float32) float32 {
	const (
		lo, hi = -87, 89
		c1     = 0.693359375
		c2     = -2.12194440e-4
		p0     = 1.9875691500e-4
		p1     = 1.3981999507e-3
		p2     = 8.3334519073e-3
		p3     = 4.1665795894e-2
		p4     = 1.6666665459e-1
		p5     = 5.0000001201e-1
	)
	if !(t > lo) { // VMAXPS: lo unless t > lo
		t = lo
	}
	if !(t < hi) { // VMINPS
		t = hi
	}
	k := float32(math.RoundToEven(float64(float32(t * math.Log2E))))
	const c1f, c2f float32 = c1, c2 // the assembly's constants, rounded to float32
	r := float32(math.FMA(float64(k), -float64(c1f), float64(t)))
	r = float32(math.FMA(float64(k), -float64(c2f), float64(r)))
	y := float32(p0 * r)
	y = float32(float32(y+p1) * r)
	y = float32(float32(y+p2) * r)
	y = float32(float32(y+p3) * r)
	y = float32(float32(y+p4) * r)
	y = y + p5
	y = float32(y * float32(r*r))
	y = y + r
	y = y + 1
	return float32(y * math.Float32frombits(uint32(int32(k)+127)<<23))
}

// siluPoly returns x / (1 + expPoly(−x)), within about 2 ulp of
// x/(1 + e^{−x}) where that is above 1e−36 in magnitude. For x < −88.38
// it is −0 (x·e^x is under 4e−37 in magnitude there), and for x = −Inf
// NaN (−Inf/+Inf), as x·(1/(1 + e^{−x})) gives with a float64 or CUDA
// exponential.
func siluPoly(x float32) float32 {
	return x / (expPoly(-x) + 1)
}

// siluGo applies siluPoly to every element of x.
func siluGo(x []float32) {
	for i, v := range x {
		x[i] = siluPoly(v)
	}
}

// expSubGo sets x[i] = expPoly(x[i] − m).
func expSubGo(x []float32, m float32) {
	for i, v := range x {
		x[i] = expPoly(v - m)
	}
}
