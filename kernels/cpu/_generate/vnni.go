package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// ---- AVX-512 VNNI -----------------------------------------------------------

// The VNNI kernels compute what the AVX2 Q4_0, Q8_0, Q4_K and Q6_K kernels
// compute, the same bits. Q4_0 and Q8_0 use VPDPBUSD: for every dword lane
// k of an accumulator a,
//
//	a_k += Σ_{i<4} u_{4k+i}·s_{4k+i}     (u unsigned bytes, s signed bytes)
//
// exactly (no int16 step, no saturation), in one instruction where AVX2
// takes VPMADDUBSW, VPMADDWD and an add. A dword lane covers the same four
// bytes that VPMADDUBSW and VPMADDWD sum into it, and integer sums are
// exact in any order, so every lane holds the integer the AVX2 kernel
// forms; the float steps (VCVTDQ2PS, the scale products, the VADDPS into
// the accumulators) are the AVX2 kernel's, in its order, lane for lane.
//
// Q4_0: the nibbles q ∈ [0, 15] are the unsigned side and the activations
// y the signed one, and Σ (q−8)·y = Σ q·y − 8·Σ y. The q4Quads layout
// already holds 8·Σ y by words (c, two words per dword lane), so a lane
// starts at −(c_2k + c_2k+1), one VPMADDWD of c with words of −1, and four
// VPDPBUSD add Σ q·y over the quad's four nibble vectors: five integer
// instructions per input and quad where AVX2 needs nine.
//
// The row kernel (MatVec) works on Y registers in the q4Quads layout. The
// multi-input kernels (MatMul, q4tile) take the inputs two by two in Z
// registers: the low 256 bits are input 2p, the high ones input 2p+1, so
// a Z accumulator is two inputs' AVX2 accumulators side by side, each
// taking its products in the AVX2 order. The weights, decoded once per
// quad, are the same for both halves ([A | A]). For one load to fetch a
// pair's activations they come interleaved by 32 bytes rather than by
// quad (q4VNNIUnit): per quad, piece p (yA, yB, yC, yD, c, dx of
// q4Quads, 32 bytes each) of every input in turn, piece p of input j at
// 32·(inputs·p + j).
//
// Q8_0: VPDPBUSD takes |w| and y with w's sign, as the AVX2 kernel's
// VPMADDUBSW does, into a zeroed lane.
//
// Q4_K, Q6_K: the sub-block scales multiply pairs of VPMADDUBSW words, so
// the kernels keep VPMADDUBSW and fold VPMADDWD and the add into one
// VPDPWSSD (words by words into dwords, exact), on 64 elements per Z
// register (genDotQ4_KVNNI, genDotQ6_KVNNI).
//
// The kernels use all 32 vector registers of AVX-512, so every vector
// instruction in them has an EVEX form (VPANDD, not VPAND); the Go side
// calls them only where the CPU has AVX512F, BW, VL and VNNI.

// vpdpbusd emits VPDPBUSD, which avo v0.5.0 lacks: acc_k += Σ_{i<4}
// u_{4k+i}·s_{4k+i} over the dwords of acc, u unsigned bytes (a register),
// s signed bytes (a register or memory).
func vpdpbusd(s, u, acc Op) { vnniDot("VPDPBUSD", s, u, acc) }

// vpdpwssd emits VPDPWSSD, which avo v0.5.0 lacks too: acc_k += a_{2k}·b_{2k}
// + a_{2k+1}·b_{2k+1} over the dwords of acc, a and b signed words (b a
// register, a a register or memory), exactly (no saturation).
func vpdpwssd(a, b, acc Op) { vnniDot("VPDPWSSD", a, b, acc) }

func vnniDot(opcode string, s, u, acc Op) {
	isa := []string{"AVX512VNNI"}
	if acc.(Register).Size() < 64 {
		isa = append(isa, "AVX512VL")
	}
	Instruction(&ir.Instruction{
		Opcode:   opcode,
		Operands: []Op{s, u, acc},
		Inputs:   []Op{s, u, acc},
		Outputs:  []Op{acc},
		ISA:      isa,
	})
}

// vnniVec is a Y or Z register: the width of a VNNI kernel.
func vnniVec(zmm bool) VecVirtual {
	if zmm {
		return ZMM()
	}
	return YMM()
}

// zeroVec returns a Y or Z register set to zero, by VPSUBD, which avo
// knows to read nothing (for VPXORD it takes the register as live before).
// A register that the
// kernel writes only in part (its X or Y half) and then reads whole must
// start so: avo's liveness does not know that a VEX or EVEX write zeroes
// the bits above it, takes the rest as live from the function's entry
// and keeps the register out of every other allocation.
func zeroVec(zmm bool) VecVirtual {
	r := vnniVec(zmm)
	VPSUBD(r, r, r)
	return r
}

// widen repeats the 32 bytes b to n bytes.
func widen(b []byte, n int) []byte {
	var r []byte
	for len(r) < n {
		r = append(r, b...)
	}
	return r
}

// q4VConsts are the constants of the VNNI Q4_0 kernels, in registers:
// bytes 0x0f, words −1 and the scale permutation [0 0 2 2 1 1 3 3].
type q4VConsts struct {
	m4, neg1, idx VecVirtual
	nidx          VecVirtual // Z registers only: q4VDecode's word permutation
}

func newQ4VConsts(zmm bool) q4VConsts {
	n, sfx := 32, "y"
	if zmm {
		n, sfx = 64, "z"
	}
	load := func(name string, b []byte) VecVirtual {
		r := vnniVec(zmm)
		m := constant(name+sfx, widen(b, n))
		VMOVDQU64(m, r)
		return r
	}
	c := q4VConsts{
		m4:   load("vb0f", bytes32(0x0f)),
		neg1: load("vwffff", words32(0xffff)),
		idx:  load("vidxq4", dwords32(0, 0, 2, 2, 1, 1, 3, 3)),
	}
	if zmm {
		var w []byte
		for _, i := range []uint16{1, 2, 3, 4, 19, 20, 21, 22, 10, 11, 12, 13, 28, 29, 30, 31} {
			w = append(w, byte(i), byte(i>>8))
		}
		c.nidx = load("vidxnib", w)
	}
	return c
}

// q4VScales is q4Scales in EVEX-encodable instructions, widened to Z
// registers (the same eight scales in both halves) when zmm.
//
// A whole quad's scales, the f16 words at bytes 0, 18, 36 and 54, are one
// VPERMW of the quad's first 64 bytes, which places them in q4Scales'
// order [0 0 2 2 1 1 3 3] (twice, when zmm), and one VCVTPH2PS: two
// instructions where the general path takes thirteen.
func q4VScales(base Register, off, count int, c q4VConsts, zmm bool) VecVirtual {
	if count == 4 {
		var w []byte
		for range 2 {
			for _, i := range []uint16{0, 0, 18, 18, 9, 9, 27, 27} {
				w = append(w, byte(i), byte(i>>8))
			}
		}
		w = widen(w, 64)
		idx, h, dw := ZMM(), ZMM(), vnniVec(zmm)
		VMOVDQU64(constant("vidxs4", w), idx)
		VPERMW(Mem{Base: base, Disp: off}, idx, h)
		if zmm {
			VCVTPH2PS(h.AsY(), dw)
		} else {
			VCVTPH2PS(h.AsX(), dw)
		}
		return dw
	}
	var g GPVirtual
	{
		g = GP64()
		MOVWQZX(Mem{Base: base, Disp: off}, g)
		for j := 1; j < count; j++ {
			t := GP64()
			MOVWQZX(Mem{Base: base, Disp: off + 18*j}, t)
			SHLQ(U8(16*j), t)
			ORQ(t, g)
		}
	}
	s := zeroVec(zmm)
	VMOVQ(g, s.AsX())
	VCVTPH2PS(s.AsX(), s.AsX())
	dw := vnniVec(zmm)
	VPERMPS(s, c.idx, dw)
	return dw
}

// q4VDecode is q4Decode in EVEX-encodable instructions; when zmm, each
// nibble vector v comes as [v | v], the 128-bit rows loaded into both
// halves (R1 = [X | Y | X | Y]).
//
// A whole quad in Z registers takes two VPERMWs: its 16-byte rows lie at
// even offsets (2, 20, 38, 56), and the eight-byte pieces that the
// unpacks below put together (bytes 0–7 of blocks 0 and 2, of 1 and 3;
// then bytes 8–15) are words 1–4, 19–22, 10–13, 28–31 of the quad's
// first 64 bytes and, for bytes 8–15, of the 64 bytes from byte 8: two
// loads and two permutes where the general path takes eight shuffles.
func q4VDecode(wb Mem, count int, c q4VConsts, zmm bool) [4]VecVirtual {
	if count == 4 && zmm {
		a, b := ZMM(), ZMM()
		VPERMW(wb, c.nidx, a)
		VPERMW(wb.Offset(8), c.nidx, b)
		ah, bh := ZMM(), ZMM()
		VPSRLW(U8(4), a, ah)
		VPANDD(c.m4, ah, ah)
		VPANDD(c.m4, a, a)
		VPSRLW(U8(4), b, bh)
		VPANDD(c.m4, bh, bh)
		VPANDD(c.m4, b, b)
		return [4]VecVirtual{a, ah, b, bh}
	}
	// pair loads the blocks at off and off+18 (when two) into the
	// 128-bit lanes of a register: [lo | hi] or [lo | hi | lo | hi].
	pair := func(off int, two bool) VecVirtual {
		var r VecVirtual
		if two {
			r = vnniVec(zmm)
			VBROADCASTI32X4(wb.Offset(off), r)
		} else {
			r = zeroVec(zmm)
			VINSERTI32X4(U8(0), wb.Offset(off), r, r)
			if zmm {
				VINSERTI32X4(U8(2), wb.Offset(off), r, r)
			}
			return r
		}
		VINSERTI32X4(U8(1), wb.Offset(off+18), r, r)
		if zmm {
			VINSERTI32X4(U8(3), wb.Offset(off+18), r, r)
		}
		return r
	}
	r1 := pair(2, count >= 2)
	var r2 VecVirtual
	if count <= 2 {
		r2 = zeroVec(zmm)
	} else {
		r2 = pair(38, count == 4)
	}
	a, b := vnniVec(zmm), vnniVec(zmm)
	VPUNPCKLQDQ(r2, r1, a)
	VPUNPCKHQDQ(r2, r1, b)
	ah, bh := vnniVec(zmm), vnniVec(zmm)
	VPSRLW(U8(4), a, ah)
	VPANDD(c.m4, ah, ah)
	VPANDD(c.m4, a, a)
	VPSRLW(U8(4), b, bh)
	VPANDD(c.m4, bh, bh)
	VPANDD(c.m4, b, b)
	return [4]VecVirtual{a, ah, b, bh}
}

// q4VInput adds one input's (or, in Z registers, one pair's) share of a
// quad to acc: piece(p) addresses piece p of its activations (yA, yB, yC,
// yD, c, dx), q the decoded nibbles, dw their scales.
func q4VInput(q [4]VecVirtual, piece func(p int) Mem, dw, acc VecVirtual, c q4VConsts, zmm bool) {
	t := vnniVec(zmm)
	VPMADDWD(piece(4), c.neg1, t) // −8·Σy by dword lane
	for p := 0; p < 4; p++ {
		vpdpbusd(piece(p), q[p], t) // + Σ q·y: Σ (q−8)·y, exact
	}
	sv := vnniVec(zmm)
	VMULPS(piece(5), dw, sv) // d_w·d_x, lane by lane
	VCVTDQ2PS(t, t)
	VMULPS(sv, t, t)
	VADDPS(t, acc, acc)
}

// hsum8V is hsum8 in EVEX-encodable instructions.
func hsum8V(acc VecVirtual) VecVirtual {
	l, m := XMM(), XMM()
	VEXTRACTF32X4(U8(1), acc, l)
	VADDPS(l, acc.AsX(), l)
	VMOVHLPS(l, l, m)
	VADDPS(m, l, l)
	VMOVSHDUP(l, m)
	VADDSS(m, l, l)
	return l
}

// genDotQ4_0VNNI writes the VNNI Q4_0 kernels: the row kernel (inputs =
// 0; Y registers, qSig, the q4Quads layout), the multi-input kernels
// (inputs 2, 4 or 8; Z registers, multiSig) and, with tile, the eight-input
// kernel of MatMul's tiles (dotQ4_0Q8_0x8AccAVX2's signature). The
// multi-input kernels read the inputs interleaved by 32 bytes (see
// above). The loop is genDotQ4_0's: quads two at a time, then one, then
// a tail of one to three blocks. The multi-input kernels, which only
// MatMul calls, on a matrix's whole rows (18·nb bytes each, one after
// another), prefetch as they read a row the same blocks two rows on (see
// genDotQ4_0VNNIRows2): with two inputs a 5632×2048 product from DRAM
// ran at half its speed from cache without them.
func genDotQ4_0VNNI(inputs int, tile bool) {
	var wp, xp, n, dst, ap Register
	zmm := inputs > 0
	switch {
	case tile:
		TEXT("dotQ4_0Q8_0x8AccVNNI", NOSPLIT, "func(w, x []byte, nb int, acc []float32)")
		Pragma("noescape")
		Doc("dotQ4_0Q8_0x8AccVNNI is dotQ4_0Q8_0x8AccAVX2 with AVX-512 VNNI; x holds the inputs interleaved by 32 bytes (q4VNNIUnit).")
		wp = Load(Param("w").Base(), GP64())
		xp = Load(Param("x").Base(), GP64())
		n = Load(Param("nb"), GP64())
		ap = Load(Param("acc").Base(), GP64())
	case inputs == 0:
		wp, xp, _, n = dotPrologue("dotQ4_0Q8_0VNNI", "dotQ4_0Q8_0VNNI is dotQ4_0Q8_0AVX2 with AVX-512 VNNI.")
	default:
		name := fmt.Sprintf("dotQ4_0Q8_0x%dVNNI", inputs)
		wp, xp, _, n, dst = multiPrologue(name, fmt.Sprintf("%s is dotQ4_0Q8_0x%dAVX2 with AVX-512 VNNI; x holds the inputs interleaved by 32 bytes (q4VNNIUnit).", name, inputs), false)
	}
	ni := max(inputs, 1)
	var ahead Register // multi-input: from a block to the same block two rows on
	if inputs > 0 && !tile {
		ahead = GP64()
		IMUL3Q(U32(2*18), n, ahead)
	}
	c := newQ4VConsts(zmm)
	acc := make([]VecVirtual, max(ni/2, 1))
	for p := range acc {
		acc[p] = vnniVec(zmm)
		if tile {
			VMOVUPS(Mem{Base: ap, Disp: 64 * p}, acc[p])
		} else {
			VPSUBD(acc[p], acc[p], acc[p])
		}
	}
	stride := q4QuadBytes * ni
	quad := func(k, count int) {
		dw := q4VScales(wp, 72*k, count, c, zmm)
		q := q4VDecode(Mem{Base: wp, Disp: 72 * k}, count, c, zmm)
		for p := range acc {
			piece := func(i int) Mem {
				if !zmm {
					return Mem{Base: xp, Disp: stride*k + 32*i}
				}
				return Mem{Base: xp, Disp: stride*k + 32*(ni*i+2*p)}
			}
			q4VInput(q, piece, dw, acc[p], c, zmm)
		}
	}
	Label("vquad2")
	CMPQ(n, U8(8))
	JL(LabelRef("vquad1"))
	if ahead != nil {
		for l := 0; l < 144; l += 64 {
			PREFETCHT0(Mem{Base: wp, Index: ahead, Scale: 1, Disp: l})
		}
	}
	quad(0, 4)
	quad(1, 4)
	ADDQ(U32(144), wp)
	ADDQ(U32(2*stride), xp)
	SUBQ(U8(8), n)
	JMP(LabelRef("vquad2"))

	Label("vquad1")
	CMPQ(n, U8(4))
	JL(LabelRef("vtail"))
	quad(0, 4)
	ADDQ(U32(72), wp)
	ADDQ(U32(stride), xp)
	SUBQ(U8(4), n)

	Label("vtail") // 0–3 blocks left
	CMPQ(n, U8(2))
	JL(LabelRef("vtail1"))
	JE(LabelRef("vtail2"))
	quad(0, 3)
	JMP(LabelRef("vdone"))
	Label("vtail2")
	quad(0, 2)
	JMP(LabelRef("vdone"))
	Label("vtail1")
	TESTQ(n, n)
	JZ(LabelRef("vdone"))
	quad(0, 1)

	Label("vdone")
	switch {
	case tile:
		for p, a := range acc {
			VMOVUPS(a, Mem{Base: ap, Disp: 64 * p})
		}
	case inputs == 0:
		r := hsum8V(acc[0])
		b, err := ReturnIndex(0).Resolve()
		if err != nil {
			panic(err)
		}
		VMOVSS(r, b.Addr)
	default:
		for p, a := range acc {
			hi := YMM()
			VEXTRACTF64X4(U8(1), a, hi)
			VMOVSS(hsum8V(a.AsY().(VecVirtual)), Mem{Base: dst, Disp: 8 * p})
			VMOVSS(hsum8V(hi), Mem{Base: dst, Disp: 8*p + 4})
		}
	}
	VZEROUPPER()
	RET()
}

// genDotQ8_0VNNI writes the VNNI Q8_0 kernels, legacyLoop's row kernel
// (inputs = 0) and two-input kernel with genDotQ8_0's operations, except
// that one VPDPBUSD of |w| and y·sign(w) into a zeroed lane replaces
// VPMADDUBSW and VPMADDWD. The loop keeps to sixteen vector registers,
// like the AVX2 one, so VPSIGNB (which has no EVEX form) stays encodable.
func genDotQ8_0VNNI(inputs int) {
	legacyLoop(legacyKernel{name: "dotQ8_0Q8_0", wsize: 34, isa: "VNNI", decode: func(wb Mem) func(xb Mem, dv, mv, acc VecVirtual) {
		qw, aw := YMM(), YMM()
		VMOVDQU(wb.Offset(2), qw)
		VPSIGNB(qw, qw, aw)
		return func(xb Mem, dv, _, acc VecVirtual) {
			qx, t := YMM(), YMM()
			VMOVDQU(xb.Offset(2), qx)
			VPSIGNB(qw, qx, qx)
			VPXOR(t, t, t)
			vpdpbusd(qx, aw, t) // Σ_4 |w|·y·sign(w) = Σ_4 w·y
			accumulate(acc, t, dv)
		}
	}}, inputs)
}

// genDotQ8_0VNNIPairs writes dotQ8_0Q8_0x<inputs>VNNI (inputs 2, 4 or 8),
// MatMul's Q8_0 kernels with VNNI: legacyLoop's operations for every
// input, in its order, with the inputs two by two in Z registers (input
// 2p in the low half, 2p+1 in the high one). The activations come as q8
// VNNI batches lay them out (q8VNNIQuants): per block, the 32 quants of
// every input in turn, so a pair's are one 64-byte load; d is
// legacyLoop's (per eight blocks, each input's eight scales, so a pair's
// sixteen are one load too).
//
// Per eight blocks the weights' eight f16 scales d_w are widened and
// multiplied by each pair's sixteen d_x: P = [d_w·d_x(2p) | d_w·d_x(2p+1)],
// the products legacyLoop parks on the stack, and block b takes its
// [P_b ×8 | P_8+b ×8] with one VPERMPS. Per block the weights, broadcast to
// both halves, give their sign mask (VPMOVB2M) and |w| (VPABSB); each
// pair's y·sign(w) is one masked VPSUBB from zero (exact: |y| ≤ 127), and
// one VPDPBUSD into a zeroed lane sums |w|·y·sign(w) = w·y by four, the
// lanes of VPMADDUBSW and VPMADDWD. Block i adds into accumulator i mod
// 4 of its pair, and the last nb mod 8 blocks go the same way, their
// scales gathered through the stack with zeros after them.
func genDotQ8_0VNNIPairs(inputs int) {
	name := fmt.Sprintf("dotQ8_0Q8_0x%dVNNI", inputs)
	wp, xp, dp, n, dst := multiPrologue(name, fmt.Sprintf("%s is dotQ8_0Q8_0MultiGeneric for %d inputs with AVX-512 VNNI; x holds their quants interleaved by block (q8VNNIQuants), d their scales as legacyLoop's.", name, inputs), true)
	pairs := inputs / 2
	acc := make([][4]VecVirtual, pairs)
	for p := range acc {
		for i := range acc[p] {
			acc[p][i] = zeroVec(true)
		}
	}
	zero := zeroVec(true)
	tmp := AllocLocal(16) // the tail's eight f16 d_w

	// group runs eight blocks (or, in the tail, the n < 8 left) whose
	// eight f16 d_w are in s.
	group := func(s VecVirtual, tail bool) {
		dwz := zeroVec(true)
		VCVTPH2PS(s, dwz.AsY())
		VINSERTF64X4(U8(1), dwz.AsY(), dwz, dwz)
		P := make([]VecVirtual, pairs)
		for p := range P {
			P[p] = ZMM()
			VMULPS(Mem{Base: dp, Disp: 64 * p}, dwz, P[p]) // d_w·d_x, as legacyLoop's
		}
		for b := 0; b < 8; b++ {
			if tail {
				if b == 7 {
					break
				}
				CMPQ(n, U8(b+1))
				JL(LabelRef("q8done"))
			}
			idx := ZMM() // [b ×8 | 8+b ×8]
			VMOVDQU64(constant(fmt.Sprintf("q8idx%d", b), append(dwords32(uint32(b)), dwords32(uint32(8+b))...)), idx)
			wq, k := ZMM(), K()
			VBROADCASTI64X4(Mem{Base: wp, Disp: 34*b + 2}, wq) // [w | w]
			VPMOVB2M(wq, k)
			VPABSB(wq, wq)
			for p := range P {
				y, t, dv := ZMM(), ZMM(), ZMM()
				VMOVDQU64(Mem{Base: xp, Disp: 32 * (inputs*b + 2*p)}, y)
				VPSUBB(y, zero, k, y) // y·sign(w)
				VPSUBD(t, t, t)
				vpdpbusd(y, wq, t) // Σ_4 |w|·y·sign(w) = Σ_4 w·y
				VPERMPS(P[p], idx, dv)
				VCVTDQ2PS(t, t)
				VMULPS(dv, t, t)
				VADDPS(t, acc[p][b%4], acc[p][b%4])
			}
		}
	}

	Label("q8group")
	CMPQ(n, U8(8))
	JL(LabelRef("q8tail"))
	lo, hi := halves4(wp, 0, 34), halves4(wp, 4*34, 34)
	s := XMM()
	VMOVQ(lo, s)
	VPINSRQ(U8(1), hi, s, s)
	group(s, false)
	ADDQ(U32(8*34), wp)
	ADDQ(U32(8*32*inputs), xp)
	ADDQ(U32(32*inputs), dp)
	SUBQ(U8(8), n)
	JMP(LabelRef("q8group"))

	Label("q8tail")
	TESTQ(n, n)
	JZ(LabelRef("q8done"))
	MOVQ(U32(0), tmp)
	MOVQ(U32(0), tmp.Offset(8))
	for b := 0; b < 7; b++ {
		if b > 0 {
			CMPQ(n, U8(b+1))
			JL(LabelRef("q8tailscales"))
		}
		r := GP32()
		MOVWLZX(Mem{Base: wp, Disp: 34 * b}, r)
		MOVW(r.As16(), tmp.Offset(2*b))
	}
	Label("q8tailscales")
	st := XMM()
	VMOVDQU64(tmp, st)
	group(st, true)

	Label("q8done")
	// (acc0 + acc1) + (acc2 + acc3), lane by lane, then hsum8 of each half
	for p, a := range acc {
		VADDPS(a[1], a[0], a[0])
		VADDPS(a[3], a[2], a[2])
		VADDPS(a[2], a[0], a[0])
		h := YMM()
		VEXTRACTF64X4(U8(1), a[0], h)
		VMOVSS(hsum8V(a[0].AsY().(VecVirtual)), Mem{Base: dst, Disp: 8 * p})
		VMOVSS(hsum8V(h), Mem{Base: dst, Disp: 8*p + 4})
	}
	VZEROUPPER()
	RET()
}

// genDotQ4_0VNNIRows2 writes the two-row versions of the multi-input VNNI
// Q4_0 kernels: dotQ4_0Q8_0x<ni>R2VNNI (dotQ4_0Q8_0x<ni>VNNI for the rows
// at w and w+rb, results to dst[0:ni] and dst[8:8+ni]; ni = 2, 4 or 8)
// and, with tile, dotQ4_0Q8_0x8AccR2VNNI (dotQ4_0Q8_0x8AccVNNI for the
// rows at w and w+rb, accumulators acc[0:64] and acc[64:128]). The
// one-row kernels load
// every activation piece from memory for each row, six 64-byte loads per
// pair and quad for five VPDPBUSD, and the loads bound them; here a piece,
// loaded once into a register, serves both rows, whose decoded nibbles
// (eight registers) stay in registers for the quad. −8·Σy (VPMADDWD of c)
// is the same for both rows and is formed once. Each row's accumulators
// take the one-row kernel's operations in its order, so the bits are its.
//
// As they read eight blocks of their rows they prefetch (PREFETCHT0) the
// same blocks two rows on, the next pair's: MatMul takes a chunk's rows in
// pairs, and the tiles a slice's. Eight inputs make these kernels
// compute-bound, at a fraction of the memory's bandwidth, yet without the
// prefetches they lost 20–35% to memory stalls when the weights came from
// DRAM rather than cache (BenchmarkMatMulDRAM on the 2-core development
// machine): the hardware prefetchers stop at each 4 KiB page and seldom run
// ahead of so slow a stream. A prefetch does not fault, so the last pair's
// may point past the weights.
func genDotQ4_0VNNIRows2(ni int, tile bool) {
	var wp, xp, n, rb, dst, ap Register
	if tile {
		TEXT("dotQ4_0Q8_0x8AccR2VNNI", NOSPLIT, "func(w, x []byte, nb, rb int, acc []float32)")
		Pragma("noescape")
		Doc("dotQ4_0Q8_0x8AccR2VNNI is dotQ4_0Q8_0x8AccVNNI for the rows at w and w[rb:], their accumulators acc[0:64] and acc[64:128].")
		ap = Load(Param("acc").Base(), GP64())
	} else {
		name := fmt.Sprintf("dotQ4_0Q8_0x%dR2VNNI", ni)
		TEXT(name, NOSPLIT, "func(w, x []byte, nb, rb int, dst []float32)")
		Pragma("noescape")
		Doc(fmt.Sprintf("%s is dotQ4_0Q8_0x%dVNNI for the rows at w and w[rb:], their results to dst[0:%d] and dst[8:%d].", name, ni, ni, 8+ni))
		dst = Load(Param("dst").Base(), GP64())
	}
	wp = Load(Param("w").Base(), GP64())
	xp = Load(Param("x").Base(), GP64())
	n = Load(Param("nb"), GP64())
	rb = Load(Param("rb"), GP64())
	ahead := GP64()
	MOVQ(rb, ahead)
	SHLQ(U8(1), ahead) // from a row to the same block two rows on
	ADDQ(wp, rb)       // the second row
	w1 := rb
	c := newQ4VConsts(true)
	acc := [2][]VecVirtual{make([]VecVirtual, ni/2), make([]VecVirtual, ni/2)}
	for row := range acc {
		for p := range acc[row] {
			acc[row][p] = ZMM()
			if tile {
				VMOVUPS(Mem{Base: ap, Disp: 256*row + 64*p}, acc[row][p])
			} else {
				VPSUBD(acc[row][p], acc[row][p], acc[row][p])
			}
		}
	}
	stride := q4QuadBytes * ni
	quad := func(k, count int) {
		var dw [2]VecVirtual
		var q [2][4]VecVirtual
		for row, base := range []Register{wp, w1} {
			dw[row] = q4VScales(base, 72*k, count, c, true)
			q[row] = q4VDecode(Mem{Base: base, Disp: 72 * k}, count, c, true)
		}
		for p := 0; p < ni/2; p++ {
			piece := func(i int) Mem { return Mem{Base: xp, Disp: stride*k + 32*(ni*i+2*p)} }
			var t [2]VecVirtual
			t[0], t[1] = ZMM(), ZMM()
			VPMADDWD(piece(4), c.neg1, t[0]) // −8·Σy by dword lane
			VMOVDQA64(t[0], t[1])
			for i := 0; i < 4; i++ {
				y := ZMM()
				VMOVDQU64(piece(i), y)
				for row := range t {
					vpdpbusd(y, q[row][i], t[row]) // + Σ q·y
				}
			}
			d := ZMM()
			VMOVUPS(piece(5), d)
			for row := range t {
				sv := ZMM()
				VMULPS(d, dw[row], sv) // d_w·d_x, lane by lane
				VCVTDQ2PS(t[row], t[row])
				VMULPS(sv, t[row], t[row])
				VADDPS(t[row], acc[row][p], acc[row][p])
			}
		}
	}
	Label("r2quad2")
	CMPQ(n, U8(8))
	JL(LabelRef("r2quad1"))
	for _, base := range []Register{wp, w1} { // the next pair's blocks
		for l := 0; l < 144; l += 64 {
			PREFETCHT0(Mem{Base: base, Index: ahead, Scale: 1, Disp: l})
		}
	}
	quad(0, 4)
	quad(1, 4)
	ADDQ(U32(144), wp)
	ADDQ(U32(144), w1)
	ADDQ(U32(2*stride), xp)
	SUBQ(U8(8), n)
	JMP(LabelRef("r2quad2"))

	Label("r2quad1")
	CMPQ(n, U8(4))
	JL(LabelRef("r2tail"))
	quad(0, 4)
	ADDQ(U32(72), wp)
	ADDQ(U32(72), w1)
	ADDQ(U32(stride), xp)
	SUBQ(U8(4), n)

	Label("r2tail") // 0–3 blocks left
	CMPQ(n, U8(2))
	JL(LabelRef("r2tail1"))
	JE(LabelRef("r2tail2"))
	quad(0, 3)
	JMP(LabelRef("r2done"))
	Label("r2tail2")
	quad(0, 2)
	JMP(LabelRef("r2done"))
	Label("r2tail1")
	TESTQ(n, n)
	JZ(LabelRef("r2done"))
	quad(0, 1)

	Label("r2done")
	for row := range acc {
		for p, a := range acc[row] {
			if tile {
				VMOVUPS(a, Mem{Base: ap, Disp: 256*row + 64*p})
				continue
			}
			hi := YMM()
			VEXTRACTF64X4(U8(1), a, hi)
			VMOVSS(hsum8V(a.AsY().(VecVirtual)), Mem{Base: dst, Disp: 32*row + 8*p})
			VMOVSS(hsum8V(hi), Mem{Base: dst, Disp: 32*row + 8*p + 4})
		}
	}
	VZEROUPPER()
	RET()
}

// genDotQ4_KVNNI writes the VNNI Q4_K kernels: the row kernel
// dotQ4_KQ8_KVNNI (inputs = 0, qSig) and the multi-input kernels
// dotQ4_KQ8_Kx<inputs>VNNI (multiSig, the AVX2 kernels' interleaved Q8_K
// blocks). They compute genDotK45's lanes, the same integers, and take
// its float steps in its order, so the bits are its (and
// dotQ4_KQ8_KGeneric's).
//
// AVX2 takes a 64-element group g (32 weight bytes: the low nibbles are
// sub-block 2g, the high ones 2g+1) in two Y halves, each VPMADDUBSW,
// VPMADDWD with its scale and VPADDD. Here a group is one Z register
// [low nibbles | high nibbles] (the 32 bytes broadcast to both halves,
// VPSRLVW by 0 and 4, one mask), against the group's 64 activation bytes
// in one load: one VPMADDUBSW (the same word pairs, no saturation: 2·15·128
// < 2¹⁵) and one VPDPWSSD with the words [sc_2g ×16 | sc_2g+1 ×16]
// accumulate the group, dword lane k + 8h holding what AVX2's lane k gets
// from half h. The halves are added once per super-block: lane k of the
// sum is AVX2's sumi lane k, exactly. The scale words come from the
// unpacked scales broadcast to every quadword by one VPSHUFB per group.
//
// The mins take AVX2's VPMADDWD of the eight words b_s = bsums[2s] +
// bsums[2s+1] with m0..m7; VPHADDW has no EVEX form, so b_s is formed by
// VPMADDWD with words of 1 and truncated to words by VPMOVDW, the same
// int16 wrap-around. Every instruction has an EVEX form, so the register
// allocator may use all 32 vector registers: the multi-input kernels
// keep every input's accumulators in registers (AVX2 parks them on the
// stack), which changes no float operation.
func genDotQ4_KVNNI(inputs int) {
	wp, xp, n, dst := kVNNIPrologue("Q4_K", inputs)
	ni := max(inputs, 1)
	xj := func(j int) Mem { return Mem{Base: xp, Disp: 292 * j} }
	m4, shr, ones := ZMM(), ZMM(), YMM()
	VMOVDQU64(constant("vb0fz", widen(bytes32(0x0f), 64)), m4)
	VMOVDQU64(constant("vk4shr", append(words32(0), words32(4)...)), shr) // shift counts [0 ×16 | 4 ×16]
	VMOVDQU64(constant("vw0001y", words32(1)), ones)
	// per group g, VPSHUFB indices of the words [sc_2g ×16 | sc_2g+1 ×16]
	// in a register holding the quadword [sc_4h..sc_4h+3, m_4h..m_4h+3]
	// (h = g/2) in every quadword
	var scIdx [2]VecVirtual
	for i := range scIdx {
		var b []byte
		for half := range 2 {
			for range 16 {
				b = append(b, byte(2*i+half), 0x80)
			}
		}
		scIdx[i] = ZMM()
		VMOVDQU64(constant(fmt.Sprintf("vk4sc%d", i), b), scIdx[i])
	}
	var minIdx []byte // words m0..m7 of [sc0-3, sc4-7, m0-3, m4-7]
	for i := range 8 {
		minIdx = append(minIdx, byte(8+i), 0x80)
	}
	minShuf := constant("vk4min", minIdx)
	masks := loadKMasks()
	acc, accm := make([]VecVirtual, ni), make([]VecVirtual, ni)
	for j := range acc {
		acc[j] = zeroVec(false)
		accm[j] = XMM()
		VPSUBD(accm[j], accm[j], accm[j])
	}
	TESTQ(n, n)
	JZ(LabelRef("vkdone"))
	Label("vkblock")

	s := XMM()
	VMOVD(Mem{Base: wp}, s)
	VCVTPH2PS(s, s) // [d_w, dmin_w, 0, 0]

	e, d := kScalesGP(Mem{Base: wp, Disp: 4}, masks)
	ze, zd := ZMM(), ZMM()
	VPBROADCASTQ(e, ze) // [sc0-3, m0-3] in every quadword
	VPBROADCASTQ(d, zd) // [sc4-7, m4-7]
	mins := XMM()
	VPUNPCKLDQ(zd.AsX(), ze.AsX(), mins) // [sc0-3, sc4-7, m0-3, m4-7]
	VPSHUFB(minShuf, mins, mins)         // words m0..m7
	var sc, q [4]VecVirtual
	for g := range 4 {
		src := ze
		if g >= 2 {
			src = zd
		}
		sc[g] = ZMM()
		VPSHUFB(scIdx[g%2], src, sc[g])
		q[g] = ZMM()
		VBROADCASTI64X4(Mem{Base: wp, Disp: 16 + 32*g}, q[g])
		VPSRLVW(shr, q[g], q[g])
		VPANDD(m4, q[g], q[g]) // [low nibbles | high nibbles]
	}

	for j := range ni {
		// [d, dm, 0, 0] = yd·[d_w, dmin_w, 0, 0]
		yd, sj := XMM(), XMM()
		VBROADCASTSS(xj(j), yd)
		VMULPS(yd, s, sj)

		// mins: accm −= float32(m_2k·b_2k + m_2k+1·b_2k+1)·dm
		dmv := XMM()
		VPERMILPS(U8(0x55), sj, dmv)
		bd, bw := YMM(), XMM()
		VPMADDWD(xj(j).Offset(260), ones, bd) // bsums[2s] + bsums[2s+1]
		VPMOVDW(bd, bw)                       // as int16, as VPHADDW
		t := XMM()
		VPMADDWD(bw, mins, t)
		VCVTDQ2PS(t, t)
		VMULPS(dmv, t, t)
		VSUBPS(t, accm[j], accm[j])

		h := kVNNIGroups(xj(j), q, sc) // AVX2's sumi, lane by lane
		dv := YMM()
		VBROADCASTSS(sj, dv)
		accumulate(acc[j], h, dv)
	}

	ADDQ(U32(144), wp)
	ADDQ(U32(292*ni), xp)
	DECQ(n)
	JNZ(LabelRef("vkblock"))
	Label("vkdone")
	for j := range ni {
		r := hsum8V(acc[j])
		VADDSS(hsum4(accm[j]), r, r)
		kVNNIResult(r, j, inputs, dst)
	}
	VZEROUPPER()
	RET()
}

// genDotQ6_KVNNI writes the VNNI Q6_K kernels: the row kernel
// dotQ6_KQ8_KVNNI (inputs = 0, qSig) and the multi-input kernels
// dotQ6_KQ8_Kx<inputs>VNNI (multiSig, the AVX2 kernels' interleaved Q8_K
// blocks), with genDotQ6_K's lanes, the same integers, and its float
// steps in its order, so the bits are its (and dotQ6_KQ8_KGeneric's).
//
// AVX2 takes the super-block's eight 32-element chunks one at a time (the
// unsigned 6-bit quants; VPMADDUBSW, VPMADDWD with the two 16-element
// sub-blocks' scales, VPADDD). Here a Z register holds two chunks, 2P and
// 2P+1, whose 64 activation bytes are one load: per half h of the
// super-block, the 64 bytes of ql are [chunk 4h | chunk 4h+1] in their low
// nibbles and [4h+2 | 4h+3] in their high ones, and the 32 bytes of qh,
// broadcast to both halves, give the two high bits of each by one
// variable word shift (<< 4, 2 and >> 0, 2) and a mask (VPTERNLOGD merges
// them into the nibbles). One VPMADDUBSW (pairs ≤ 2·63·128: no
// saturation) and one VPDPWSSD with the scale words (VPERMW of the 16
// sign-extended scales: words 8s..8s+7 take sc_4P+s) accumulate a pair of
// chunks; dword lane k + 8s holds what AVX2's lane k gets from chunk
// 2P+s. The halves are added once per super-block, and the −32 offset,
// AVX2's first term −(sc_2k·bsum_2k + sc_2k+1·bsum_2k+1)·32, is taken off
// after them: integer sums, so lane k is AVX2's sumi lane k, exactly.
func genDotQ6_KVNNI(inputs int) {
	wp, xp, n, dst := kVNNIPrologue("Q6_K", inputs)
	ni := max(inputs, 1)
	xj := func(j int) Mem { return Mem{Base: xp, Disp: 292 * j} }
	load := func(name string, b []byte) VecVirtual {
		r := ZMM()
		VMOVDQU64(constant(name, b), r)
		return r
	}
	m4 := load("vb0fz", widen(bytes32(0x0f), 64))
	m30 := load("vb30z", widen(bytes32(0x30), 64))
	shl := load("vq6shl", append(words32(4), words32(2)...)) // chunks 4h, 4h+1: qh bits 0–1, 2–3 to 4–5
	shr := load("vq6shr", append(words32(0), words32(2)...)) // chunks 4h+2, 4h+3: bits 4–5, 6–7
	var idx [4]VecVirtual                                    // pair P: words 8s..8s+7 are scale 4P+s
	for p := range idx {
		var b []byte
		for w := range 32 {
			b = append(b, byte(4*p+w/8), 0)
		}
		idx[p] = load(fmt.Sprintf("vq6sc%d", p), b)
	}
	acc := make([]VecVirtual, ni)
	for j := range acc {
		acc[j] = zeroVec(false)
	}
	TESTQ(n, n)
	JZ(LabelRef("v6done"))
	Label("v6block")

	r := GP32()
	s := XMM()
	MOVWLZX(Mem{Base: wp, Disp: 208}, r)
	VMOVD(r, s)
	VCVTPH2PS(s, s) // d_w

	sc16 := zeroVec(true) // the 16 scales as words in the low half
	VPMOVSXBW(Mem{Base: wp, Disp: 192}, sc16.AsY())
	var sc, q [4]VecVirtual
	for p := range 4 {
		sc[p] = ZMM()
		VPERMW(sc16, idx[p], sc[p])
	}
	for h := range 2 {
		ql, hb := ZMM(), ZMM()
		VMOVDQU64(Mem{Base: wp, Disp: 64 * h}, ql)
		VBROADCASTI64X4(Mem{Base: wp, Disp: 128 + 32*h}, hb)
		lo, t := ZMM(), ZMM()
		VPANDD(m4, ql, lo)
		VPSLLVW(shl, hb, t)
		VPTERNLOGD(U8(0xf8), m30, t, lo) // lo | t&0x30
		hi, u := ZMM(), ZMM()
		VPSRLW(U8(4), ql, hi)
		VPANDD(m4, hi, hi)
		VPSRLVW(shr, hb, u)
		VPTERNLOGD(U8(0xf8), m30, u, hi)
		q[2*h], q[2*h+1] = lo, hi
	}

	for j := range ni {
		yd, d := XMM(), XMM()
		VMOVSS(xj(j), yd)
		VMULSS(s, yd, d) // yd·d_w
		// 32·(sc_2k·bsum_2k + sc_2k+1·bsum_2k+1)
		off := YMM()
		VPMADDWD(xj(j).Offset(260), sc16.AsY(), off)
		VPSLLD(U8(5), off, off)
		lanes := kVNNIGroups(xj(j), q, sc)
		VPSUBD(off, lanes, lanes) // AVX2's sumi, lane by lane
		dv := YMM()
		VBROADCASTSS(d, dv)
		accumulate(acc[j], lanes, dv)
	}

	ADDQ(U32(210), wp)
	ADDQ(U32(292*ni), xp)
	DECQ(n)
	JNZ(LabelRef("v6block"))
	Label("v6done")
	for j := range ni {
		kVNNIResult(hsum8V(acc[j]), j, inputs, dst)
	}
	VZEROUPPER()
	RET()
}

// kVNNIPrologue declares the VNNI kernel of kind (Q4_K or Q6_K): the row
// kernel dot<kind>Q8_KVNNI for inputs = 0, else the multi-input kernel
// dot<kind>Q8_Kx<inputs>VNNI, and loads its weight, activation, block
// count and (multi-input) result pointers.
func kVNNIPrologue(kind string, inputs int) (wp, xp, n, dst Register) {
	if inputs == 0 {
		name := "dot" + kind + "Q8_KVNNI"
		wp, xp, _, n = dotPrologue(name, fmt.Sprintf("%s is dot%sQ8_KAVX2 with AVX-512 VNNI.", name, kind))
		return wp, xp, n, nil
	}
	name := fmt.Sprintf("dot%sQ8_Kx%dVNNI", kind, inputs)
	wp, xp, _, n, dst = multiPrologue(name, fmt.Sprintf("%s is dot%sQ8_Kx%dAVX2 with AVX-512 VNNI; x interleaves the inputs' Q8_K blocks.", name, kind, inputs), false)
	return wp, xp, n, dst
}

// kVNNIGroups returns the eight dword lanes Σ over the four weight
// registers q[g] of VPMADDUBSW(q[g], the 64 activation bytes at
// x+4+64g) by their scale words sc[g] (VPMADDWD, then VPDPWSSD), the
// register's two halves added: AVX2's sumi lanes before any offset.
func kVNNIGroups(x Mem, q, sc [4]VecVirtual) VecVirtual {
	sumi := ZMM()
	for g := range 4 {
		p := ZMM()
		VPMADDUBSW(x.Offset(4+64*g), q[g], p)
		if g == 0 {
			VPMADDWD(sc[g], p, sumi)
		} else {
			vpdpwssd(sc[g], p, sumi)
		}
	}
	lanes := YMM()
	VEXTRACTI64X4(U8(1), sumi, lanes)
	VPADDD(sumi.AsY(), lanes, lanes)
	return lanes
}

// kVNNIResult stores input j's result r: the return value of a row
// kernel (inputs = 0), else dst[j].
func kVNNIResult(r VecVirtual, j, inputs int, dst Register) {
	if inputs > 0 {
		VMOVSS(r, Mem{Base: dst, Disp: 4 * j})
		return
	}
	b, err := ReturnIndex(0).Resolve()
	if err != nil {
		panic(err)
	}
	VMOVSS(r, b.Addr)
}
