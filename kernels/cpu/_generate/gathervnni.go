package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// genDotQ4_0VNNIRows4 writes dotQ4_0Q8_0r4VNNI, dotQ4_0Q8_0r4AVX2
// (genDotQ4_0Rows) with AVX-512 VNNI: the VNNI row kernel
// (genDotQ4_0VNNI with inputs = 0) for four rows of w against one input,
// row j at w + offs[j], result in dst[j], prefetching the rows at
// w + offs[4+j] as genDotQ4_0Rows does.
//
// The rows go two by two in Z registers: pair P holds row 2P in the low
// 256 bits and row 2P+1 in the high ones, each half the row kernel's Y
// register, lane for lane. Per quad, a pair's scales are one VPERMT2W of
// the two rows' first 64 bytes ([0 0 18 18 9 9 27 27] for row 2P, the same
// words + 32 for row 2P+1) and one VCVTPH2PS, its nibbles two VPERMT2W
// (q4VDecode's words, from bytes 0 and 8 of the quad) and the shifts and
// masks; the input's six pieces (yA, yB, yC, yD, c, dx), broadcast to both
// halves, are loaded once per quad for all four rows, and −8·Σy (VPMADDWD
// of c) is formed once. Each half then takes q4VInput's operations in its
// order: the same integers per dword lane (exact), the same float steps,
// so dst[j] is the row kernel's bits for row j. In the tail (one to three
// blocks) the rows' bytes past the last block are masked off the loads
// (zeroed), which gives the row kernel's lanes there (scales +0, nibbles
// 0) and reads nothing past the row.
func genDotQ4_0VNNIRows4() {
	const rows = 4
	name := "dotQ4_0Q8_0r4VNNI"
	TEXT(name, NOSPLIT, "func(w []byte, offs []int, x []byte, d []float32, nb int, dst []float32)")
	Pragma("noescape")
	Doc(name + " computes dst[j] = dotQ4_0Q8_0VNNI(w[offs[j]:], x, d, nb) for j < 4, prefetching the rows at w[offs[4+j]:] as it reads them.")
	wb := Load(Param("w").Base(), GP64())
	op := Load(Param("offs").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("nb"), GP64())
	r := make([]GPVirtual, rows)
	p := make([]GPVirtual, rows)
	for j := range rows {
		r[j], p[j] = GP64(), GP64()
		MOVQ(Mem{Base: op, Disp: 8 * j}, r[j])
		ADDQ(wb, r[j])
		MOVQ(Mem{Base: op, Disp: 8 * (rows + j)}, p[j])
		ADDQ(wb, p[j])
	}
	load := func(name string, b []byte) VecVirtual {
		v := ZMM()
		VMOVDQU64(constant(name, b), v)
		return v
	}
	words := func(ws ...uint16) []byte {
		var b []byte
		for _, w := range ws {
			b = append(b, byte(w), byte(w>>8))
		}
		return b
	}
	m4 := load("vb0fz", widen(bytes32(0x0f), 64))
	neg1 := load("vwffffz", widen(words32(0xffff), 64))
	var sw, nw []uint16
	for h := range 2 { // row 2P from the first table, 2P+1 from the second (+32)
		for _, i := range []uint16{0, 0, 18, 18, 9, 9, 27, 27} {
			sw = append(sw, i+uint16(32*h))
		}
		for _, i := range []uint16{1, 2, 3, 4, 19, 20, 21, 22, 10, 11, 12, 13, 28, 29, 30, 31} {
			nw = append(nw, i+uint16(32*h))
		}
	}
	sidx := load("vidxs4r2", widen(words(sw...), 64))
	nidx := load("vidxnibr2", words(nw...))
	acc := make([]VecVirtual, rows/2)
	for P := range acc {
		acc[P] = zeroVec(true)
	}
	// pairTable returns [row a's 64 bytes from off | row b's] permuted by
	// idx; with mask, the bytes the mask leaves out are zeros.
	pairTable := func(a, b Register, off int, idx VecVirtual, mask Op) VecVirtual {
		t := ZMM()
		if mask == nil {
			VMOVDQU64(Mem{Base: a, Disp: off}, t)
			VPERMT2W(Mem{Base: b, Disp: off}, idx, t)
			return t
		}
		u := ZMM()
		VMOVDQU8_Z(Mem{Base: a, Disp: off}, mask, t)
		VMOVDQU8_Z(Mem{Base: b, Disp: off}, mask, u)
		VPERMT2W(u, idx, t)
		return t
	}
	quad := func(k, count int) {
		var k0, k8 Op // the tail's masks: its 18·count bytes from bytes 0 and 8
		if count < 4 {
			g := GP64()
			MOVQ(U64(uint64(1)<<(18*count)-1), g)
			m0 := K()
			KMOVQ(g, m0)
			MOVQ(U64(uint64(1)<<(18*count-8)-1), g)
			m8 := K()
			KMOVQ(g, m8)
			k0, k8 = m0, m8
		}
		var y [6]VecVirtual
		for i := range y {
			y[i] = ZMM()
			VBROADCASTI64X4(Mem{Base: xp, Disp: q4QuadBytes*k + 32*i}, y[i])
		}
		base := ZMM()
		VPMADDWD(y[4], neg1, base) // −8·Σy by dword lane
		for P := range acc {
			a, b := r[2*P], r[2*P+1]
			s := pairTable(a, b, 72*k, sidx, k0)
			dw := ZMM()
			VCVTPH2PS(s.AsY(), dw)
			lo := pairTable(a, b, 72*k, nidx, k0)
			hi := pairTable(a, b, 72*k+8, nidx, k8)
			lh, hh := ZMM(), ZMM()
			VPSRLW(U8(4), lo, lh)
			VPANDD(m4, lh, lh)
			VPANDD(m4, lo, lo)
			VPSRLW(U8(4), hi, hh)
			VPANDD(m4, hh, hh)
			VPANDD(m4, hi, hi)
			q := [4]VecVirtual{lo, lh, hi, hh}
			t := base
			if P < len(acc)-1 {
				t = ZMM()
				VMOVDQA64(base, t)
			}
			for i := range q {
				vpdpbusd(y[i], q[i], t) // + Σ q·y: Σ (q−8)·y, exact
			}
			sv := ZMM()
			VMULPS(y[5], dw, sv) // d_w·d_x, lane by lane
			VCVTDQ2PS(t, t)
			VMULPS(sv, t, t)
			VADDPS(t, acc[P], acc[P])
		}
	}
	prefetch := func() {
		for j := range rows {
			for l := 0; l < 144; l += 64 {
				PREFETCHT0(Mem{Base: p[j], Disp: l})
			}
		}
	}
	advance := func(bytes int) {
		for j := range rows {
			ADDQ(U32(bytes), r[j])
			ADDQ(U32(bytes), p[j])
		}
	}
	Label("r4quad2")
	CMPQ(n, U8(8))
	JL(LabelRef("r4quad1"))
	prefetch()
	quad(0, 4)
	quad(1, 4)
	advance(144)
	ADDQ(U32(2*q4QuadBytes), xp)
	SUBQ(U8(8), n)
	JMP(LabelRef("r4quad2"))

	Label("r4quad1")
	prefetch() // the rest of the rows to prefetch, under 144 bytes
	CMPQ(n, U8(4))
	JL(LabelRef("r4tail"))
	quad(0, 4)
	advance(72)
	ADDQ(U32(q4QuadBytes), xp)
	SUBQ(U8(4), n)

	Label("r4tail") // 0–3 blocks left
	CMPQ(n, U8(2))
	JL(LabelRef("r4tail1"))
	JE(LabelRef("r4tail2"))
	quad(0, 3)
	JMP(LabelRef("r4done"))
	Label("r4tail2")
	quad(0, 2)
	JMP(LabelRef("r4done"))
	Label("r4tail1")
	TESTQ(n, n)
	JZ(LabelRef("r4done"))
	quad(0, 1)

	Label("r4done")
	dst := Load(Param("dst").Base(), GP64())
	for P, a := range acc {
		hi := YMM()
		VEXTRACTF64X4(U8(1), a, hi)
		VMOVSS(hsum8V(a.AsY().(VecVirtual)), Mem{Base: dst, Disp: 4 * (2 * P)})
		VMOVSS(hsum8V(hi), Mem{Base: dst, Disp: 4 * (2*P + 1)})
	}
	VZEROUPPER()
	RET()
}
