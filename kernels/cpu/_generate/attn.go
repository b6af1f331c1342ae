package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// ---- attention --------------------------------------------------------------

// Attention over an f32 cache called Dot and Axpy once per position, on
// rows of headDim (64) floats: the calls, and Axpy's load and store of the
// output for every position, cost more than the arithmetic. These two
// kernels take all positions of one (token, head) in one call, with the
// same operations per element as Dot and Axpy, in the same order, so the
// bits do not change. Both need hd a multiple of 8.

// genAttnScores writes attnScoresAVX2: s[j] = scale · dotF32AVX2(q, k[j·stride:], hd)
// for j < n, each dot with dotF32AVX2's accumulators and order (four
// 8-lane FMA accumulators over 32 elements a step, then 8 at a time into
// the first, (a0 + a1) + (a2 + a3), hsum8).
func genAttnScores() {
	TEXT("attnScoresAVX2", NOSPLIT, "func(s, q, k []float32, stride, hd, n int, scale float32)")
	Pragma("noescape")
	Doc("attnScoresAVX2 sets s[j] = scale·Σ_{i<hd} q[i]·k[j·stride+i] for j < n, each sum as dotF32AVX2's; hd is a multiple of 8.")
	sp := Load(Param("s").Base(), GP64())
	qp := Load(Param("q").Base(), GP64())
	kp := Load(Param("k").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	hd := Load(Param("hd"), GP64())
	n := Load(Param("n"), GP64())
	scale := Load(Param("scale"), XMM())
	SHLQ(U8(2), stride) // bytes
	Label("row")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	wp, xp, c := GP64(), GP64(), GP64()
	MOVQ(qp, wp)
	MOVQ(kp, xp)
	MOVQ(hd, c)
	acc := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for _, a := range acc {
		VXORPS(a, a, a)
	}
	Label("loop32")
	CMPQ(c, U8(32))
	JL(LabelRef("loop8"))
	for i, a := range acc {
		t := YMM()
		VMOVUPS(Mem{Base: wp, Disp: 32 * i}, t)
		VFMADD231PS(Mem{Base: xp, Disp: 32 * i}, t, a)
	}
	ADDQ(U32(128), wp)
	ADDQ(U32(128), xp)
	SUBQ(U8(32), c)
	JMP(LabelRef("loop32"))
	Label("loop8")
	TESTQ(c, c)
	JZ(LabelRef("reduce"))
	t := YMM()
	VMOVUPS(Mem{Base: wp}, t)
	VFMADD231PS(Mem{Base: xp}, t, acc[0])
	ADDQ(U8(32), wp)
	ADDQ(U8(32), xp)
	SUBQ(U8(8), c)
	JMP(LabelRef("loop8"))
	Label("reduce")
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	r := hsum8(acc[0])
	VMULSS(scale, r, r)
	VMOVSS(r, Mem{Base: sp})
	ADDQ(U8(4), sp)
	ADDQ(stride, kp)
	DECQ(n)
	JMP(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}

// genAttnValues writes attnValuesAVX2: o[i] = Σ_{j<n} p[j]·v[j·stride+i]
// for i < hd, the terms added in order of j from zero by one fused
// multiply-add each, as a zeroed o and n calls of axpyF32AVX2 give; o
// stays in registers, 32 floats (then 8) at a time, over all j.
func genAttnValues() {
	TEXT("attnValuesAVX2", NOSPLIT, "func(o, p, v []float32, stride, hd, n int)")
	Pragma("noescape")
	Doc("attnValuesAVX2 sets o[i] = Σ_{j<n} p[j]·v[j·stride+i] for i < hd, summed in order of j with fused multiply-adds; hd is a multiple of 8.")
	op := Load(Param("o").Base(), GP64())
	pp := Load(Param("p").Base(), GP64())
	vp := Load(Param("v").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	hd := Load(Param("hd"), GP64())
	n := Load(Param("n"), GP64())
	SHLQ(U8(2), stride)
	chunk := func(name string, vecs int, next string) {
		Label(name)
		CMPQ(hd, U8(8*vecs))
		JL(LabelRef(next))
		acc := make([]VecVirtual, vecs)
		for i := range acc {
			acc[i] = YMM()
			VXORPS(acc[i], acc[i], acc[i])
		}
		j, pj, vj := GP64(), GP64(), GP64()
		MOVQ(n, j)
		MOVQ(pp, pj)
		MOVQ(vp, vj)
		Label(name + "j")
		TESTQ(j, j)
		JZ(LabelRef(name + "store"))
		a := YMM()
		VBROADCASTSS(Mem{Base: pj}, a)
		for i := range acc {
			VFMADD231PS(Mem{Base: vj, Disp: 32 * i}, a, acc[i])
		}
		ADDQ(U8(4), pj)
		ADDQ(stride, vj)
		DECQ(j)
		JMP(LabelRef(name + "j"))
		Label(name + "store")
		for i := range acc {
			VMOVUPS(acc[i], Mem{Base: op, Disp: 32 * i})
		}
		ADDQ(U32(32*vecs), op)
		ADDQ(U32(32*vecs), vp)
		SUBQ(U8(8*vecs), hd)
		JMP(LabelRef(name))
	}
	chunk("v32", 4, "v8")
	chunk("v8", 1, "vdone")
	Label("vdone")
	VZEROUPPER()
	RET()
}
