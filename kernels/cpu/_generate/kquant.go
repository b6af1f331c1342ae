package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// ---- Q4_K, Q5_K, Q6_K ---------------------------------------------------------

// The K-quant kernels have one accumulator (and, for Q4_K/Q5_K, one for
// the mins) per input, which takes one product per super-block. The
// multi-input kernels decode a super-block once and keep each input's
// integer sums in a register; the accumulators live on the stack (one
// load and store per super-block and input). Their activations are the
// inputs' Q8_K blocks interleaved: per super-block, input j's 292 bytes
// at 292·j.

// kPrologue starts the row kernel (inputs = 0) or a multi-input kernel of
// the K-quant family base.
func kPrologue(base string, inputs int) (wp, xp, n, dst Register) {
	if inputs == 0 {
		wp, xp, _, n = dotPrologue(base+"AVX2", fmt.Sprintf("%sAVX2 is %sGeneric.", base, base))
		return
	}
	name := fmt.Sprintf("%sx%dAVX2", base, inputs)
	wp, xp, _, n, dst = multiPrologue(name, fmt.Sprintf("%s is %sMultiGeneric for %d inputs; x interleaves their Q8_K blocks.", name, base, inputs), false)
	return
}

// xmmSlot is accSlot for a 4-lane accumulator.
type xmmSlot struct {
	reg VecVirtual
	mem Mem
}

func newXmmSlots(inputs int) []xmmSlot {
	s := make([]xmmSlot, max(inputs, 1))
	if inputs == 0 {
		r := XMM()
		VXORPS(r, r, r)
		s[0].reg = r
		return s
	}
	m := AllocLocal(16 * inputs)
	z := XMM()
	VXORPS(z, z, z)
	for j := range s {
		s[j].mem = m.Offset(16 * j)
		VMOVUPS(z, s[j].mem)
	}
	return s
}

func (a xmmSlot) open() VecVirtual {
	if a.reg != nil {
		return a.reg
	}
	r := XMM()
	VMOVUPS(a.mem, r)
	return r
}

func (a xmmSlot) close(r VecVirtual) {
	if a.reg == nil {
		VMOVUPS(r, a.mem)
	}
}

// kEpilogue reduces each input's accumulators (hsum8(acc) + hsum4(accm)
// when accm is not nil) and returns the row kernel's result or stores the
// inputs' in dst.
func kEpilogue(inputs int, dst Register, acc []accSlot, accm []xmmSlot) {
	for j := range acc {
		r := hsum8(acc[j].open())
		if accm != nil {
			VADDSS(hsum4(accm[j].open()), r, r)
		}
		if inputs == 0 {
			VZEROUPPER()
			Store(r, ReturnIndex(0))
			RET()
			return
		}
		VMOVSS(r, Mem{Base: dst, Disp: 4 * j})
	}
	VZEROUPPER()
	RET()
}

func genDotK45(five bool, inputs int) {
	base := "dotQ4_KQ8_K"
	wsize, qoff := 144, 16
	if five {
		base = "dotQ5_KQ8_K"
		wsize, qoff = 176, 48
	}
	wp, xp, n, dst := kPrologue(base, inputs)
	ni := max(inputs, 1)
	xj := func(j int) Mem { return Mem{Base: xp, Disp: 292 * j} }
	shuf := kScaleShuffle()
	m4 := YMM()
	VMOVDQU(cBytes(0x0f), m4)
	masks := loadKMasks()
	accs := newAccs(inputs, 1, false)
	acc := make([]accSlot, ni)
	for j := range acc {
		acc[j] = accs[j][0]
	}
	accm := newXmmSlots(inputs)
	TESTQ(n, n)
	JZ(LabelRef("done"))
	Label("block")

	// [d_w, dmin_w, 0, 0]; input j's d = yd·d_w and dm = yd·dmin_w are
	// the lanes of scaled(j)
	r := GP32()
	s := XMM()
	MOVL(Mem{Base: wp}, r)
	VMOVD(r, s)
	VCVTPH2PS(s, s)
	scaled := func(j int) VecVirtual {
		yd, sj := XMM(), XMM()
		VBROADCASTSS(xj(j), yd)
		VMULPS(yd, s, sj)
		return sj
	}

	sm := kScales(Mem{Base: wp, Disp: 4}, masks)

	// mins: accm −= float32(m_{2k}·b_{2k} + m_{2k+1}·b_{2k+1})·dm
	mins := XMM()
	VEXTRACTI128(U8(1), sm, mins)
	for j := 0; j < ni; j++ {
		dmv := XMM()
		VPERMILPS(U8(0x55), scaled(j), dmv)
		q8s, t := XMM(), XMM()
		VMOVDQU(xj(j).Offset(260), q8s)
		VPHADDW(xj(j).Offset(276), q8s, q8s)
		VPMADDWD(q8s, mins, t)
		VCVTDQ2PS(t, t)
		VMULPS(dmv, t, t)
		a := accm[j].open()
		VSUBPS(t, a, a)
		accm[j].close(a)
	}

	sc := YMM()
	VPERMQ(U8(0x44), sm, sc) // the eight scales in both lanes
	var hb VecVirtual
	if five {
		hb = YMM()
		VMOVDQU(Mem{Base: wp, Disp: 16}, hb)
	}
	sumi := make([]VecVirtual, ni)
	for g := 0; g < 4; g++ {
		qb, ql, qh := YMM(), YMM(), YMM()
		VMOVDQU(Mem{Base: wp, Disp: qoff + 32*g}, qb)
		VPAND(m4, qb, ql)
		VPSRLW(U8(4), qb, qh)
		VPAND(m4, qh, qh)
		if five {
			for half, q := range []VecVirtual{ql, qh} {
				h := YMM()
				sh := 2*g + half
				if sh > 0 {
					VPSRLW(U8(sh), hb, h)
					VPAND(cBytes(1), h, h)
				} else {
					VPAND(cBytes(1), hb, h)
				}
				VPSLLW(U8(4), h, h)
				VPOR(h, q, q)
			}
		}
		sl, sh := YMM(), YMM()
		VPSHUFB(shuf.Offset(64*g), sc, sl)
		VPSHUFB(shuf.Offset(64*g+32), sc, sh)
		for j := 0; j < ni; j++ {
			lo, hi := YMM(), YMM()
			VPMADDUBSW(xj(j).Offset(4+64*g), ql, lo)
			VPMADDWD(sl, lo, lo)
			VPMADDUBSW(xj(j).Offset(36+64*g), qh, hi)
			VPMADDWD(sh, hi, hi)
			if g == 0 {
				sumi[j] = YMM()
				VPADDD(hi, lo, sumi[j])
			} else {
				VPADDD(lo, sumi[j], sumi[j])
				VPADDD(hi, sumi[j], sumi[j])
			}
		}
	}
	for j := 0; j < ni; j++ {
		dv := YMM()
		VBROADCASTSS(scaled(j), dv)
		a := acc[j].open()
		accumulate(a, sumi[j], dv)
		acc[j].close(a)
	}

	ADDQ(U32(wsize), wp)
	ADDQ(U32(292*ni), xp)
	DECQ(n)
	JNZ(LabelRef("block"))
	Label("done")
	kEpilogue(inputs, dst, acc, accm)
}

// genDotQ6_K sums the unsigned 6-bit quants against y per lane (scaled by
// VPMADDWD with the sub-block scales) and takes the −32 offset off once per
// super-block from the bsums: lane k −= 32·(sc_2k·bsum_2k + sc_2k+1·bsum_2k+1).
func genDotQ6_K(inputs int) {
	wp, xp, n, dst := kPrologue("dotQ6_KQ8_K", inputs)
	ni := max(inputs, 1)
	xj := func(j int) Mem { return Mem{Base: xp, Disp: 292 * j} }
	shuf := q6ScaleShuffle()
	var m4, m30 Op = cBytes(0x0f), cBytes(0x30)
	if inputs == 0 {
		r4, r30 := YMM(), YMM()
		VMOVDQU(m4, r4)
		VMOVDQU(m30, r30)
		m4, m30 = r4, r30
	}
	accs := newAccs(inputs, 1, false)
	TESTQ(n, n)
	JZ(LabelRef("done"))
	Label("block")

	r := GP32()
	s := XMM()
	MOVWLZX(Mem{Base: wp, Disp: 208}, r)
	VMOVD(r, s)
	VCVTPH2PS(s, s) // d_w

	scales := XMM()
	VMOVDQU(Mem{Base: wp, Disp: 192}, scales)
	// sumi = −32·(sc_2k·bsum_2k + sc_2k+1·bsum_2k+1), lanes k < 8
	sc16 := YMM()
	VPMOVSXBW(scales, sc16)
	sumi := make([]VecVirtual, ni)
	for j := range sumi {
		sumi[j] = YMM()
		VPMADDWD(xj(j).Offset(260), sc16, sumi[j])
		VPSLLD(U8(5), sumi[j], sumi[j])
		z := YMM()
		VPXOR(z, z, z)
		VPSUBD(sumi[j], z, sumi[j])
	}
	for h := 0; h < 2; h++ {
		b1, b2, hb := YMM(), YMM(), YMM()
		VMOVDQU(Mem{Base: wp, Disp: 64 * h}, b1)
		VMOVDQU(Mem{Base: wp, Disp: 64*h + 32}, b2)
		VMOVDQU(Mem{Base: wp, Disp: 128 + 32*h}, hb)
		for c := 0; c < 4; c++ {
			sx, sv := XMM(), YMM()
			VPSHUFB(shuf.Offset(16*(4*h+c)), scales, sx)
			VPMOVSXBW(sx, sv)
			// bits 2c, 2c+1 of each qh byte moved to bits 4, 5 (word
			// shifts: the mask drops what crosses between the bytes)
			q, t := YMM(), YMM()
			switch c {
			case 0:
				VPSLLW(U8(4), hb, t)
				VPAND(m30, t, t)
			case 1:
				VPSLLW(U8(2), hb, t)
				VPAND(m30, t, t)
			case 2:
				VPAND(m30, hb, t)
			case 3:
				VPSRLW(U8(2), hb, t)
				VPAND(m30, t, t)
			}
			src := b1
			if c&1 == 1 {
				src = b2
			}
			if c >= 2 {
				VPSRLW(U8(4), src, q)
				VPAND(m4, q, q)
			} else {
				VPAND(m4, src, q)
			}
			VPOR(t, q, q)
			for j := 0; j < ni; j++ {
				p := YMM()
				VPMADDUBSW(xj(j).Offset(4+128*h+32*c), q, p) // pairs ≤ 2·63·128: no saturation
				VPMADDWD(sv, p, p)
				VPADDD(p, sumi[j], sumi[j])
			}
		}
	}
	for j := 0; j < ni; j++ {
		yd, d := XMM(), XMM()
		VMOVSS(xj(j), yd)
		VMULSS(s, yd, d) // yd·d_w
		dv := YMM()
		VBROADCASTSS(d, dv)
		a := accs[j][0].open()
		accumulate(a, sumi[j], dv)
		accs[j][0].close(a)
	}

	ADDQ(U32(210), wp)
	ADDQ(U32(292*ni), xp)
	DECQ(n)
	JNZ(LabelRef("block"))
	Label("done")
	acc := make([]accSlot, ni)
	for j := range acc {
		acc[j] = accs[j][0]
	}
	kEpilogue(inputs, dst, acc, nil)
}
