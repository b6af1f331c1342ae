package main

import (
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// ---- SiLU and the float32 exponential ----------------------------------------

// f32c is a float32 constant in memory, eight lanes.
func f32c(name string, v float32) Mem { return cF32(name, math.Float32bits(v)) }

// expPolyVec returns e^t for the eight floats of t (which it clobbers)
// with the operations of expPoly (silu.go) in its order, one instruction
// per operation: the clamp to [−87, 89], Cody–Waite reduction by k =
// round(t·log₂e) (two FMAs, exact), Cephes' expf polynomial by separate
// multiplies and adds, 2^k built in the exponent bits.
func expPolyVec(t VecVirtual) VecVirtual {
	z, k, r, y, r2 := YMM(), YMM(), YMM(), YMM(), YMM()
	VMAXPS(f32c("expLo", -87), t, t)
	VMINPS(f32c("expHi", 89), t, t)
	VMULPS(f32c("expLog2e", math.Log2E), t, z)
	VROUNDPS(U8(0), z, k) // to nearest even
	VMOVAPS(t, r)
	VFNMADD231PS(f32c("expC1", 0.693359375), k, r) // r = t − k·C1
	VFNMADD231PS(f32c("expC2", -2.12194440e-4), k, r)
	VMULPS(f32c("expP0", 1.9875691500e-4), r, y)
	for j, p := range []float32{1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1} {
		VADDPS(f32c("expP"+string(rune('1'+j)), p), y, y)
		if j < 4 {
			VMULPS(r, y, y)
		}
	}
	VMULPS(r, r, r2)
	VMULPS(r2, y, y)
	VADDPS(r, y, y)
	VADDPS(f32c("expOne", 1), y, y) // e^r
	VCVTPS2DQ(k, k)
	VPADDD(cDwords(127), k, k)
	VPSLLD(U8(23), k, k) // 2^k
	VMULPS(k, y, y)      // e^t
	return y
}

// genSiLU writes siluAVX2, SiLU on eight floats at a time with the
// operations of siluPoly (silu.go) in its order: t = −x, e^t by
// expPolyVec, x / (1 + e^t). Two vectors per step.
func genSiLU() {
	TEXT("siluAVX2", NOSPLIT, "func(x []float32, n int)")
	Pragma("noescape")
	Doc("siluAVX2 sets x[i] = siluPoly(x[i]) for i < n, n a multiple of 8 (len(x) ≥ n).")
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("n"), GP64())
	step := func(vs int) {
		for i := 0; i < vs; i++ {
			m := Mem{Base: xp, Disp: 32 * i}
			x, t := YMM(), YMM()
			VMOVUPS(m, x)
			VXORPS(cDwords(0x80000000), x, t) // t = −x
			y := expPolyVec(t)
			VADDPS(f32c("expOne", 1), y, y)
			VDIVPS(y, x, x)
			VMOVUPS(x, m)
		}
	}
	Label("silu16")
	CMPQ(n, U8(16))
	JL(LabelRef("silu8"))
	step(2)
	ADDQ(U8(64), xp)
	SUBQ(U8(16), n)
	JMP(LabelRef("silu16"))
	Label("silu8")
	CMPQ(n, U8(8))
	JL(LabelRef("siludone"))
	step(1)
	Label("siludone")
	VZEROUPPER()
	RET()
}

// genExpSub writes expSubAVX2, softmax's exponentials: x[i] =
// expPoly(x[i] − m) for i < n, n a multiple of 8.
func genExpSub() {
	TEXT("expSubAVX2", NOSPLIT, "func(x []float32, m float32, n int)")
	Pragma("noescape")
	Doc("expSubAVX2 sets x[i] = expPoly(x[i] − m) for i < n, n a multiple of 8 (len(x) ≥ n).")
	xp := Load(Param("x").Base(), GP64())
	mv := YMM()
	VBROADCASTSS(NewParamAddr("m", 24), mv)
	n := Load(Param("n"), GP64())
	Label("exp8")
	CMPQ(n, U8(8))
	JL(LabelRef("expdone"))
	t := YMM()
	VMOVUPS(Mem{Base: xp}, t)
	VSUBPS(mv, t, t)
	VMOVUPS(expPolyVec(t), Mem{Base: xp})
	ADDQ(U8(32), xp)
	SUBQ(U8(8), n)
	JMP(LabelRef("exp8"))
	Label("expdone")
	VZEROUPPER()
	RET()
}
