package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// ---- Q4_0 tiles -------------------------------------------------------------

// genDotQ4_0Tile writes dotQ4_0Q8_0x8AccAVX2, the kernel of MatMul's Q4_0
// tiles (q4tile.go): the quad loop of dotQ4_0Q8_0x8AVX2 over a slice of a
// row, its eight accumulators loaded from acc at the start and stored back
// at the end instead of reduced. A row cut into slices of whole quads and
// run slice after slice gives each accumulator the products of the
// one-call kernel in the same order; the caller reduces them (hsum8)
// after the last slice.
//
// The register tile is the multi-input kernel's, one row by eight inputs:
// the eight accumulators, the four nibble vectors of the decoded quad,
// its scales and three temporaries fill the sixteen YMM registers, so the
// constants stay in memory. A tile of more rows would need an accumulator
// per (row, input) and four nibble vectors per row; measured on Zen 5,
// the quad's thirteen ALU operations per (row, input), not its loads,
// bound the kernel (a version with every operand in registers ran no
// faster), so a bigger register tile would not pay. What the tiles gain
// is cache reuse: the inputs' activations of a slice stay in L1 while
// every row of the tile passes over them.
func genDotQ4_0Tile() {
	const inputs = 8
	TEXT("dotQ4_0Q8_0x8AccAVX2", NOSPLIT, "func(w, x []byte, nb int, acc []float32)")
	Pragma("noescape")
	Doc("dotQ4_0Q8_0x8AccAVX2 is dotQ4_0Q8_0AccGeneric for 8 inputs: x holds their q4Quads interleaved by quad, from the slice's first quad; acc their 8×8 accumulators.")
	wp := Load(Param("w").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("nb"), GP64())
	ap := Load(Param("acc").Base(), GP64())
	c := newQ4Consts(false)
	acc := make([]VecVirtual, inputs)
	for j := range acc {
		acc[j] = YMM()
		VMOVUPS(Mem{Base: ap, Disp: 32 * j}, acc[j])
	}
	stride := q4QuadBytes * inputs
	quad := func(k, count int) {
		dw := q4Scales(wp, 72*k, count, c)
		q := q4Decode(Mem{Base: wp, Disp: 72 * k}, count, c)
		for j := range acc {
			q4Input(q, Mem{Base: xp, Disp: stride*k + q4QuadBytes*j}, dw, acc[j], c)
		}
	}
	Label("tquad2")
	CMPQ(n, U8(8))
	JL(LabelRef("tquad1"))
	quad(0, 4)
	quad(1, 4)
	ADDQ(U32(144), wp)
	ADDQ(U32(2*stride), xp)
	SUBQ(U8(8), n)
	JMP(LabelRef("tquad2"))

	Label("tquad1")
	CMPQ(n, U8(4))
	JL(LabelRef("ttail"))
	quad(0, 4)
	ADDQ(U32(72), wp)
	ADDQ(U32(stride), xp)
	SUBQ(U8(4), n)

	Label("ttail") // 0–3 blocks left
	CMPQ(n, U8(2))
	JL(LabelRef("ttail1"))
	JE(LabelRef("ttail2"))
	quad(0, 3)
	JMP(LabelRef("tdone"))
	Label("ttail2")
	quad(0, 2)
	JMP(LabelRef("tdone"))
	Label("ttail1")
	TESTQ(n, n)
	JZ(LabelRef("tdone"))
	quad(0, 1)

	Label("tdone")
	for j, a := range acc {
		VMOVUPS(a, Mem{Base: ap, Disp: 32 * j})
	}
	VZEROUPPER()
	RET()
}
