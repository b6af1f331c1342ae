package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// genDotFloatMulti writes genDotFloat's kernel for inputs (2 or 3) inputs
// at once: each group of eight weights is loaded (and widened) once and
// fused-multiply-added into every input's accumulators, which take the
// same operations in the same order as genDotFloat's, so each result is
// the row kernel's bits. Input j's x starts stride·j bytes after x.
func genDotFloatMulti(base string, size, inputs int) {
	name := fmt.Sprintf("%sx%dAVX2", base, inputs)
	TEXT(name, NOSPLIT, "func(w []byte, x []float32, stride, n int, dst []float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes dst[j] = %sAVX2(w, x[j·stride/4:], n) for j < %d.", name, base, inputs))
	wp := Load(Param("w").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	st := Load(Param("stride"), GP64())
	n := Load(Param("n"), GP64())
	dst := Load(Param("dst").Base(), GP64())
	xm := func(j, off int) Mem {
		if j == 0 {
			return Mem{Base: xp, Disp: off}
		}
		return Mem{Base: xp, Index: st, Scale: uint8(j), Disp: off}
	}
	load := func(off int, d VecVirtual) { // 8 elements of w as floats
		m := Mem{Base: wp, Disp: off}
		switch size {
		case 4:
			VMOVUPS(m, d)
		case 2:
			if base == "dotF16" {
				VCVTPH2PS(m, d)
			} else {
				VPMOVZXWD(m, d)
				VPSLLD(U8(16), d, d)
			}
		}
	}
	acc := make([][]VecVirtual, inputs)
	for j := range acc {
		acc[j] = []VecVirtual{YMM(), YMM(), YMM(), YMM()}
		for _, a := range acc[j] {
			VXORPS(a, a, a)
		}
	}
	Label("loop32")
	CMPQ(n, U8(32))
	JL(LabelRef("loop8"))
	for i := 0; i < 4; i++ {
		t := YMM()
		load(8*size*i, t)
		for j := range acc {
			VFMADD231PS(xm(j, 32*i), t, acc[j][i])
		}
	}
	ADDQ(U32(32*size), wp)
	ADDQ(U32(128), xp)
	SUBQ(U8(32), n)
	JMP(LabelRef("loop32"))

	Label("loop8")
	CMPQ(n, U8(8))
	JL(LabelRef("reduce"))
	t := YMM()
	load(0, t)
	for j := range acc {
		VFMADD231PS(xm(j, 0), t, acc[j][0])
	}
	ADDQ(U32(8*size), wp)
	ADDQ(U8(32), xp)
	SUBQ(U8(8), n)
	JMP(LabelRef("loop8"))

	Label("reduce")
	r := make([]VecVirtual, inputs)
	for j, a := range acc {
		VADDPS(a[1], a[0], a[0])
		VADDPS(a[3], a[2], a[2])
		VADDPS(a[2], a[0], a[0])
		r[j] = hsum8(a[0])
	}

	Label("tail")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	e := XMM()
	switch {
	case size == 4:
		VMOVSS(Mem{Base: wp}, e)
	case base == "dotF16":
		g := GP32()
		MOVWLZX(Mem{Base: wp}, g)
		VMOVD(g, e)
		VCVTPH2PS(e, e)
	default:
		g := GP32()
		MOVWLZX(Mem{Base: wp}, g)
		SHLL(U8(16), g)
		VMOVD(g, e)
	}
	for j := range r {
		VFMADD231SS(xm(j, 0), e, r[j])
	}
	ADDQ(U8(size), wp)
	ADDQ(U8(4), xp)
	DECQ(n)
	JMP(LabelRef("tail"))

	Label("done")
	for j := range r {
		VMOVSS(r[j], Mem{Base: dst, Disp: 4 * j})
	}
	VZEROUPPER()
	RET()
}
