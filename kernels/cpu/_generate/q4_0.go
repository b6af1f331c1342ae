package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// ---- Q4_0 -------------------------------------------------------------------

// Q4_0 weights go four blocks at a time, a quad X, Y, Z, W (blocks 4q to
// 4q+3), with the activations in the q4Quads layout of dotq8.go (192 bytes
// per quad and input). The 64 bytes of nibbles of a quad are loaded as
// R1 = [X | Y] and R2 = [Z | W] (one block per 128-bit lane) and
// interleaved by quadwords,
//
//	A = [X0–7, Z0–7 | Y0–7, W0–7]    B = [X8–15, Z8–15 | Y8–15, W8–15]
//
// so that every quadword of A, B and their high nibbles belongs to one
// block, the same one in all four vectors (X, Z, Y, W). The four
// VPMADDUBSW products with the matching activations therefore add up, as
// int16, to four words per block (8 products each, |·| ≤ 15240), the
// −8·Σy correction comes off, and one VPMADDWD, VCVTDQ2PS, VMULPS and
// VADDPS serve all four blocks: dwords 0–1 hold X, 2–3 Z, 4–5 Y, 6–7 W.
// One accumulator per input takes every quad in order.

const q4QuadBytes = 192

// q4Consts are the constants of the Q4_0 kernels, in registers or, for the
// multi-input kernels that need the registers, in memory.
type q4Consts struct {
	m4, ones Op
	idx      func() VecVirtual // [0 0 2 2 1 1 3 3], in a register
}

func newQ4Consts(inRegs bool) q4Consts {
	m4, ones := Op(cBytes(0x0f)), Op(cWords(1))
	idxc := constant("idxq4", dwords32(0, 0, 2, 2, 1, 1, 3, 3))
	c := q4Consts{m4: m4, ones: ones}
	if !inRegs {
		c.idx = func() VecVirtual {
			r := YMM()
			VMOVDQU(idxc, r)
			return r
		}
		return c
	}
	r1, r2, r3 := YMM(), YMM(), YMM()
	VMOVDQU(m4, r1)
	VMOVDQU(ones, r2)
	VMOVDQU(idxc, r3)
	c.m4, c.ones = r1, r2
	c.idx = func() VecVirtual { return r3 }
	return c
}

// q4Decode loads the count (1–4) blocks of a quad at wb and returns the
// nibble vectors that meet the activations at offsets 0, 32, 64 and 96 of
// the quad: A's low nibbles (elements 0–7 of each block), A's high ones
// (16–23), B's low (8–15) and B's high (24–31). Missing blocks are zeros;
// nothing past the count blocks is read.
func q4Decode(wb Mem, count int, c q4Consts) [4]VecVirtual {
	var r1, r2 Register
	if count == 1 {
		x := XMM()
		VMOVDQU(wb.Offset(2), x)
		r1 = x.AsY()
	} else {
		r1 = YMM()
		VBROADCASTI128(wb.Offset(2), r1)
		VINSERTI128(U8(1), wb.Offset(20), r1, r1)
	}
	switch {
	case count <= 2:
		r2 = YMM()
		VPXOR(r2, r2, r2)
	case count == 3:
		x := XMM()
		VMOVDQU(wb.Offset(38), x)
		r2 = x.AsY()
	default:
		r2 = YMM()
		VBROADCASTI128(wb.Offset(38), r2)
		VINSERTI128(U8(1), wb.Offset(56), r2, r2)
	}
	a, b, ah, bh := YMM(), YMM(), YMM(), YMM()
	VPUNPCKLQDQ(r2, r1, a)
	VPUNPCKHQDQ(r2, r1, b)
	VPSRLW(U8(4), a, ah)
	VPAND(c.m4, ah, ah)
	VPAND(c.m4, a, a)
	VPSRLW(U8(4), b, bh)
	VPAND(c.m4, bh, bh)
	VPAND(c.m4, b, b)
	return [4]VecVirtual{a, ah, b, bh}
}

// q4Scales returns [d_X d_X d_Z d_Z d_Y d_Y d_W d_W], the f16 scales of
// the count blocks at base+off widened (0 for missing blocks).
func q4Scales(base Register, off, count int, c q4Consts) VecVirtual {
	var g GPVirtual
	if count == 4 {
		g = halves4(base, off, 18)
	} else {
		g = GP64()
		MOVWQZX(Mem{Base: base, Disp: off}, g)
		for j := 1; j < count; j++ {
			t := GP64()
			MOVWQZX(Mem{Base: base, Disp: off + 18*j}, t)
			SHLQ(U8(16*j), t)
			ORQ(t, g)
		}
	}
	s := XMM()
	VMOVQ(g, s)
	VCVTPH2PS(s, s)
	dw := YMM()
	VPERMPS(s.AsY(), c.idx(), dw)
	return dw
}

// q4Input adds one input's share of a quad to acc: the activations of the
// quad at xq, the weights decoded in q, their scales in dw.
func q4Input(q [4]VecVirtual, xq Mem, dw, acc VecVirtual, c q4Consts) {
	t, u := YMM(), YMM()
	VPMADDUBSW(xq, q[0], t)
	for k := 1; k < 4; k++ {
		VPMADDUBSW(xq.Offset(32*k), q[k], u)
		VPADDW(u, t, t) // |·| ≤ 8·15·127: no int16 overflow
	}
	VPSUBW(xq.Offset(128), t, t)
	VPMADDWD(c.ones, t, t)
	sv := YMM()
	VMULPS(xq.Offset(160), dw, sv) // d_w·d_x, lane by lane
	accumulate(acc, t, sv)
}

// genDotQ4_0 writes the Q4_0 kernel for one input (inputs = 0: the row
// kernel, qSig) or for inputs (2, 4 or 8) inputs at once (multiSig), the
// quads of the inputs interleaved in x. With pf (inputs = 0; the sparse
// kernels, axpy.go) the row kernel takes a fifth argument, pf []byte, and
// prefetches it alongside w, the same offsets; the arithmetic is the same
// instructions.
func genDotQ4_0(inputs int, pf bool) {
	var wp, xp, n, dst Register
	var pfp GPVirtual
	ni := max(inputs, 1)
	switch {
	case pf:
		wp, xp, _, n = dotPrologueSig("dotQ4_0Q8_0pfAVX2", "dotQ4_0Q8_0pfAVX2 is dotQ4_0Q8_0AVX2(w, x, d, nb) that also prefetches the 18·nb bytes at pf, as it reads w.",
			"func(w, x []byte, d []float32, nb int, pf []byte) float32")
		pfp = GP64()
		Load(Param("pf").Base(), pfp)
	case inputs == 0:
		wp, xp, _, n = dotPrologue("dotQ4_0Q8_0AVX2", "dotQ4_0Q8_0AVX2 is dotQ4_0Q8_0Generic; x is the q4Quads layout.")
	default:
		name := fmt.Sprintf("dotQ4_0Q8_0x%dAVX2", inputs)
		wp, xp, _, n, dst = multiPrologue(name, fmt.Sprintf("%s is dotQ4_0Q8_0MultiGeneric for %d inputs; x holds their q4Quads interleaved by quad.", name, inputs), false)
	}
	c := newQ4Consts(inputs <= 2)
	acc := make([]VecVirtual, ni)
	for j := range acc {
		acc[j] = YMM()
		VXORPS(acc[j], acc[j], acc[j])
	}
	stride := q4QuadBytes * ni
	quad := func(k, count int) {
		dw := q4Scales(wp, 72*k, count, c)
		q := q4Decode(Mem{Base: wp, Disp: 72 * k}, count, c)
		for j := range acc {
			q4Input(q, Mem{Base: xp, Disp: stride*k + q4QuadBytes*j}, dw, acc[j], c)
		}
	}
	Label("quad2")
	CMPQ(n, U8(8))
	JL(LabelRef("quad1"))
	if pf {
		for l := 0; l < 144; l += 64 {
			PREFETCHT0(Mem{Base: pfp, Disp: l})
		}
		ADDQ(U32(144), pfp)
	}
	quad(0, 4)
	quad(1, 4)
	ADDQ(U32(144), wp)
	ADDQ(U32(2*stride), xp)
	SUBQ(U8(8), n)
	JMP(LabelRef("quad2"))

	Label("quad1")
	if pf { // the rest of pf, under 144 bytes
		for l := 0; l < 144; l += 64 {
			PREFETCHT0(Mem{Base: pfp, Disp: l})
		}
	}
	CMPQ(n, U8(4))
	JL(LabelRef("tail"))
	quad(0, 4)
	ADDQ(U32(72), wp)
	ADDQ(U32(stride), xp)
	SUBQ(U8(4), n)

	Label("tail") // 0–3 blocks left
	CMPQ(n, U8(2))
	JL(LabelRef("tail1"))
	JE(LabelRef("tail2"))
	quad(0, 3)
	JMP(LabelRef("done"))
	Label("tail2")
	quad(0, 2)
	JMP(LabelRef("done"))
	Label("tail1")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	quad(0, 1)

	Label("done")
	if inputs == 0 {
		dotEpilogue(acc[0])
		return
	}
	for j, a := range acc {
		VMOVSS(hsum8(a), Mem{Base: dst, Disp: 4 * j})
	}
	VZEROUPPER()
	RET()
}

// multiSig is the signature of the multi-input kernels: the row w against
// the inputs whose activations x (and, for the Q8_0-activation kernels
// other than Q4_0, their scales d) hold interleaved; the results go to dst.
const multiSig = "func(w, x []byte, d []float32, nb int, dst []float32)"

// multiPrologue starts a multi-input kernel and returns the registers of w,
// x, d (when withD) nb and dst.
func multiPrologue(name, doc string, withD bool) (wp, xp, dp, n, dst Register) {
	TEXT(name, NOSPLIT, multiSig)
	Pragma("noescape")
	Doc(doc)
	wp = Load(Param("w").Base(), GP64())
	xp = Load(Param("x").Base(), GP64())
	if withD {
		dp = Load(Param("d").Base(), GP64())
	}
	n = Load(Param("nb"), GP64())
	dst = Load(Param("dst").Base(), GP64())
	return
}
