package main

import (
	"fmt"
	"strings"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// ---- packed Q4_K (q4kx16.go) --------------------------------------------
//
// The packed Q4_K kernels dot sixteen Q4_K rows, interleaved by
// PackQ4Kx16, with one, two, four or eight Q8_K inputs at once, one row
// per dword lane as in the packed Q4_0 kernels. Per super-block unit
// (2304 bytes) and sub-block s (32 elements, the low nibbles of chunk
// s/2 for even s, the high ones for odd s), eight VPDPBUSD of the chunk's
// nibble vectors against the input's quants, broadcast four at a time,
// leave in lane r the exact Σ_e q_{r,32s+e}·y_{32s+e}; a VPMULLD by the
// sixteen rows' 6-bit scale sc_s and a VPADDD add it to the input's
// integer I. The mins come after the eight sub-blocks: M = Σ_s m_s·b_s
// by four VPDPWSSD of the rows' (m_{2k}, m_{2k+1}) word pairs against the
// input's (b_{2k}, b_{2k+1}), broadcast. Both are exact, so the float
// step, lane for lane the pure-Go twin's (dotQ4Kx16Generic), gives its
// bits: t = float32(I)·(d_r·d_y), u = float32(M)·(dmin_r·d_y), acc +=
// t − u, one rounding each.
//
// The scales decode from the layout's twelve byte planes (plane k holds
// byte k of every row's packed scales), zero-extended to dwords: with
// Z_k the plane k, for s < 4, sc_s = Z_s & 63 and m_s = Z_{s+4} & 63, and
// sc_{s+4} = (Z_{s+8} & 15) | ((Z_s >> 2) & 0x30), m_{s+4} = (Z_{s+8} >>
// 4) | ((Z_{s+4} >> 2) & 0x30), as unpackK4 does per row.
//
// Registers: each input holds its float accumulator, its integer I and
// the sub-block sum (later M), 24 for eight inputs; the nibble vector,
// the mask and the scales take the rest, the constants come from memory
// as broadcasts.

// genQ4Kx16VNNI writes dotQ4Kx16x{ni}VNNI: the sixteen rows of one packed
// Q4_K group at w (nb super-block units) against the ni inputs at x
// (q4kx16Put's layout, 276·ni bytes per super-block), input j's sixteen
// results to dst[j·stride : j·stride+16].
func genQ4Kx16VNNI(ni int) { genK45x16VNNI(false, ni) }

// genQ5Kx16VNNI writes dotQ5Kx16x{ni}VNNI: genQ4Kx16VNNI for packed Q5_K
// (units of 2816 bytes, the quant vectors at 768, the qh vectors at 256).
// Bit 2c+h of a qh byte is the fifth bit of the quant of the nibble h of
// chunk c; one word shift of the qh vector brings it to bit 4 (left by
// 4 − (2c+h), or right), where a VPTERNLOGD keeps it, masked by 0x10,
// and ORs it into the nibbles: a word shift moves the neighbouring
// byte's bits only into places the mask drops. Quants reach 31, and the
// products stay exact (dpbusd lanes and I as for Q4_K, |I| < 2³¹).
func genQ5Kx16VNNI(ni int) { genK45x16VNNI(true, ni) }

// genK45x16VNNI writes the VNNI kernel of packed Q4_K or (five) Q5_K.
func genK45x16VNNI(five bool, ni int) {
	unit, qs, kind := 2304, 256, "Q4K"
	if five {
		unit, qs, kind = 2816, 768, "Q5K"
	}
	in := 276 * ni
	name := fmt.Sprintf("dot%sx16x%dVNNI", kind, ni)
	TEXT(name, NOSPLIT, "func(w, x []byte, nb, stride int, dst []float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is dot%sx16Generic for %d input(s) with AVX-512 VNNI.", name, kind, ni))
	wp := Load(Param("w").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("nb"), GP64())
	stride := Load(Param("stride"), GP64())
	dst := Load(Param("dst").Base(), GP64())
	mask := ZMM()
	VMOVDQU64(q4x16Mask(), mask)
	c63, c15, c30 := dwordConst(63), dwordConst(15), dwordConst(0x30)
	var bit4 VecVirtual
	if five {
		bit4 = ZMM()
		VPBROADCASTD(dwordConst(0x10101010), bit4)
	}
	acc := make([]VecVirtual, ni)
	for j := range acc {
		acc[j] = zeroVec(true)
	}
	lower := strings.ToLower(kind)
	loop, done := fmt.Sprintf("%sx16x%dblock", lower, ni), fmt.Sprintf("%sx16x%ddone", lower, ni)
	TESTQ(n, n)
	JZ(LabelRef(done))
	Label(loop)
	// Two units on: the groups of a chunk lie one after another.
	for l := 0; l < unit; l += 64 {
		PREFETCHT0(Mem{Base: wp, Disp: 2*unit + l})
	}
	plane := func(k int) Mem { return Mem{Base: wp, Disp: 64 + 16*k} }
	I := make([]VecVirtual, ni)
	S := make([]VecVirtual, ni)
	for j := range ni {
		I[j] = zeroVec(true)
	}
	for s := range 8 {
		c, hi := s/2, s%2
		for j := range ni {
			S[j] = zeroVec(true)
		}
		for k := range 8 {
			v := ZMM()
			m := Mem{Base: wp, Disp: qs + 512*c + 64*k}
			if hi == 1 {
				VPSRLW(U8(4), m, v)
				VPANDD(mask, v, v)
			} else {
				VPANDD(m, mask, v)
			}
			if five {
				h, qh := ZMM(), Mem{Base: wp, Disp: 256 + 64*k}
				switch b := 2*c + hi; {
				case b < 4:
					VPSLLW(U8(4-b), qh, h)
				case b == 4:
					VMOVDQU64(qh, h)
				default:
					VPSRLW(U8(b-4), qh, h)
				}
				VPTERNLOGD(U8(0xf8), bit4, h, v) // v | (h & bit4)
			}
			for j := range ni {
				vpdpbusdBcst(Mem{Base: xp, Disp: 256*j + 32*s + 4*k}, v, S[j])
			}
		}
		sc := ZMM()
		if s < 4 {
			VPMOVZXBD(plane(s), sc)
			VPANDD_BCST(c63, sc, sc)
		} else {
			t := ZMM()
			VPMOVZXBD(plane(s+4), sc)
			VPANDD_BCST(c15, sc, sc)
			VPMOVZXBD(plane(s-4), t)
			VPSRLD(U8(2), t, t)
			VPANDD_BCST(c30, t, t)
			VPORD(t, sc, sc)
		}
		for j := range ni {
			VPMULLD(sc, S[j], S[j])
			VPADDD(S[j], I[j], I[j])
		}
	}
	// The mins: word pairs (m_{2k}, m_{2k+1}) against (b_{2k}, b_{2k+1}).
	mins := func(s int) VecVirtual {
		m := ZMM()
		if s < 4 {
			VPMOVZXBD(plane(s+4), m)
			VPANDD_BCST(c63, m, m)
			return m
		}
		t := ZMM()
		VPMOVZXBD(plane(s+4), m)
		VPSRLD(U8(4), m, m)
		VPMOVZXBD(plane(s), t)
		VPSRLD(U8(2), t, t)
		VPANDD_BCST(c30, t, t)
		VPORD(t, m, m)
		return m
	}
	for j := range ni {
		S[j] = zeroVec(true)
	}
	for k := range 4 {
		lo, hi := mins(2*k), mins(2*k+1)
		VPSLLD(U8(16), hi, hi)
		VPORD(hi, lo, lo)
		for j := range ni {
			vpdpwssdBcst(Mem{Base: xp, Disp: 256*ni + 16*j + 4*k}, lo, S[j])
		}
	}
	dw, dm := ZMM(), ZMM()
	VCVTPH2PS(Mem{Base: wp}, dw)
	VCVTPH2PS(Mem{Base: wp, Disp: 32}, dm)
	for j := range ni {
		dy := Mem{Base: xp, Disp: 272*ni + 4*j}
		d, e := ZMM(), ZMM()
		VMULPS_BCST(dy, dw, d)
		VCVTDQ2PS(I[j], I[j])
		VMULPS(d, I[j], I[j])
		VMULPS_BCST(dy, dm, e)
		VCVTDQ2PS(S[j], S[j])
		VMULPS(e, S[j], S[j])
		VSUBPS(S[j], I[j], I[j])
		VADDPS(I[j], acc[j], acc[j])
	}
	ADDQ(U32(unit), wp)
	ADDQ(U32(in), xp)
	DECQ(n)
	JNZ(LabelRef(loop))
	Label(done)
	SHLQ(U8(2), stride)
	for j := range ni {
		VMOVUPS(acc[j], Mem{Base: dst})
		if j+1 < ni {
			ADDQ(stride, dst)
		}
	}
	VZEROUPPER()
	RET()
}

// dwordConst returns a constant of four bytes, v as a little-endian
// dword, for broadcast operands.
func dwordConst(v uint32) Mem {
	name := fmt.Sprintf("q4kx16d%x", v)
	if m, ok := consts[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	DATA(0, U32(v))
	consts[name] = m
	return m
}

// vpdpwssdBcst emits VPDPWSSD.BCST: vpdpwssd with one side a dword of two
// signed words in memory, broadcast to every dword lane.
func vpdpwssdBcst(s Mem, u, acc Op) {
	Instruction(&ir.Instruction{
		Opcode:   "VPDPWSSD",
		Suffixes: []string{"BCST"},
		Operands: []Op{s, u, acc},
		Inputs:   []Op{s, u, acc},
		Outputs:  []Op{acc},
		ISA:      []string{"AVX512VNNI"},
	})
}

// genQ4Kx16AVX2 writes dotQ4Kx16x{ni}AVX2, genQ4Kx16VNNI's kernel for
// CPUs without AVX-512: the same arguments, the same bits. As in
// genQ4x16AVX2, a 256-bit register holds eight dword lanes, so the
// sixteen rows are two halves of eight, half h the bytes [32h, 32h+32)
// of every 64-byte quant vector, and each broadcast of the input's quants
// serves both halves.
//
// Sub-block s (the low nibbles of chunk s/2 for even s, the high ones for
// odd s) takes, per input and half, eight VPMADDUBSW of the nibble
// vectors (unsigned) against the input's four quants of each step
// (signed), added by VPADDW in int16: a step's word is two products, at
// most 2·15·128 = 3840 in magnitude, and the eight steps' sum at most
// 30720 < 2¹⁵, so nothing saturates and the words are exact. Their
// lane's two words together are S_s, the sub-block's exact sum for the
// row, and one VPMADDWD against the words (sc_s, sc_s) gives sc_s·S_s in
// int32, exact (|sc_s·S_s| ≤ 63·61440), where VNNI takes a VPMULLD: a
// VPADDD adds it to the input's I. The mins are genQ4Kx16VNNI's:
// VPMADDWD of the words (m_{2k}, m_{2k+1}) against the input's (b_{2k},
// b_{2k+1}), broadcast, four of them added, M exact. Integer sums are
// exact in any order, so I and M are the twin's, and the float step is
// genQ4Kx16VNNI's, lane for lane and rounding for rounding: d = d_r·d_y,
// t = float32(I)·d, e = dmin_r·d_y, u = float32(M)·e, acc += t − u, each
// a VMULPS, VSUBPS or VADDPS of its own (no FMA).
//
// The scales are decoded once per unit, for all sixteen rows at once,
// into the frame as the words the VPMADDWD take as memory operands: the
// twelve planes, two to a register (planes 2i and 2i+1 in the low and
// high lane), decode bytewise (as genQ4Kx16VNNI does on dwords; a VPSRLW
// shifts the high byte's low bits into the low byte's top, which the
// masks 15 and 0x30 clear) into four registers of sub-block scales and
// four of mins, two sub-blocks each; a VPERMQ then puts a half's eight
// bytes in every qword and a VPSHUFB widens them to the eight lanes'
// words (sc_s, sc_s) or, the two mins of a pair in the low and high
// qwords, (m_{2k}, m_{2k+1}). That is 70 instructions a unit, against
// about 300 per input.
//
// Registers: sixteen hold the nibble mask, two nibble vectors (one per
// half), a broadcast and a product, and two int16 sums per input: four
// inputs at a time, so eight run the code of four twice (the weights
// are in L1 the second time; the code, looped, stays small). The
// integer sums I stay in registers up to two inputs, from four they live
// in the frame (a VPADDD from memory and a store per input, half and
// sub-block), the float accumulators from two inputs (one VADDPS from
// memory and a store per input and half a unit). The sub-blocks go by
// pairs, chunk after chunk, in a loop of four: the code of a pass is
// then a quarter of its unrolled size, at the same speed.
//
// On the 2-core Zen 5 machine (one thread, a group of eight units in L1)
// this ran one input at about 80 GMAC/s, two at 107, four and eight at
// 113 (the VNNI kernels: 100, 190, 210, 230), about three vector
// instructions a cycle, most of them the VPMADDUBSW and VPADDW (240 of
// the 300 per input and unit), which AVX2 has no shorter way to. Eight
// inputs with both passes unrolled (3800 instructions a unit) ran at
// 80: the front end, not the vector pipes, bound them. Eight inputs half
// by half, each nibble vector serving eight inputs but every broadcast
// one half, ran at 95: the loads bound them. Passes of two inputs, their
// sums I in registers, were no faster than four with I in the frame.
func genQ4Kx16AVX2(ni int) { genK45x16AVX2(false, ni, false) }

// genK45x16AVX2 writes the AVX2 kernel of packed Q4_K or (five) Q5_K
// (genQ4Kx16AVX2, genQ5Kx16AVX2), or with vex its AVX-VNNI twin
// (dotQ4Kx16x{ni}AVXVNNI, dotQ5Kx16x{ni}AVXVNNI): each sub-block's eight
// steps go to int32 lanes by VEX VPDPBUSD, from zero, and the sum is
// multiplied by the sub-block's scale (VPMULLD by the low words of the
// (sc, sc) pairs), where AVX2 sums words and multiplies by VPMADDWD; no
// widening every four steps for Q5_K. The same exact I, the same bits.
// On the 2-core Zen 5 machine forced onto the 256-bit kernels
// (STOKE_NOVNNI; BenchmarkMatMulQ{4,5}Kx16/…/x16, three alternating runs),
// eight inputs over 5632×2048 from cache ran at 200–233 GMAC/s against
// 193–199 with AVX2 for Q4_K, 123–154 against 98–116 for Q5_K; one input
// was within the noise either way.
func genK45x16AVX2(five bool, ni int, vex bool) {
	const pass = 4
	unit, kind := 2304, "Q4K"
	if five {
		unit, kind = 2816, "Q5K"
	}
	lower := strings.ToLower(kind)
	g := min(ni, pass)
	isa := "AVX2"
	if vex {
		isa = "AVXVNNI"
	}
	name := fmt.Sprintf("dot%sx16x%d%s", kind, ni, isa)
	// The frame: the unit's scale words, scw(s, h) the words (sc_s, sc_s)
	// of half h's rows, mw(k, h) the words (m_{2k}, m_{2k+1}); then the
	// integer sums I of a pass's inputs where they live in memory; then
	// the float accumulators where they do.
	iMem, accMem := g > 2, ni > 1
	size := 32 * (16 + 8)
	iOff := size
	if iMem {
		size += 32 * 2 * g
	}
	accOff := size
	if accMem {
		size += 32 * 2 * ni
	}
	// Not NOSPLIT: the frame is too large for the 792 bytes a chain of
	// NOSPLIT functions may take (with the ABI wrapper a call through a
	// func value adds), so the kernel takes the stack check, and growth,
	// of any Go function.
	TEXT(name, 0, "func(w, x []byte, nb, stride int, dst []float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is dot%sx16Generic for %d input(s) with %s.", name, kind, ni, isa))
	wp := Load(Param("w").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("nb"), GP64())
	frame := AllocLocal(size)
	p := q4kx16Pass{
		name: name, g: g, wp: wp, xq: xp, xb: xp, xd: xp,
		bOff: 256 * ni, dOff: 272 * ni,
		scw:   func(s, h int) Mem { return frame.Offset(32 * (2*s + h)) },
		mw:    func(k, h int) Mem { return frame.Offset(32 * (16 + 2*k + h)) },
		iMem:  iMem,
		iSlot: func(j, h int) Mem { return frame.Offset(iOff + 32*(2*j+h)) },
		five:  five,
		vex:   vex,
	}
	accSlot := func(j, h int) Mem { return frame.Offset(accOff + 32*(2*j+h)) }
	if !five {
		p.mask = YMM()
		VMOVDQU(q4x16Mask(), p.mask)
	}
	if accMem {
		p.acc = accSlot
		z := YMM()
		VXORPS(z, z, z)
		for i := range 2 * ni {
			VMOVUPS(z, frame.Offset(accOff+32*i))
		}
	} else {
		for h := range p.accReg {
			p.accReg[h] = YMM()
			VXORPS(p.accReg[h], p.accReg[h], p.accReg[h])
		}
	}
	loop, done := fmt.Sprintf("%sx16x%d%sblock", lower, ni, strings.ToLower(isa)), fmt.Sprintf("%sx16x%d%sdone", lower, ni, strings.ToLower(isa))
	TESTQ(n, n)
	JZ(LabelRef(done))
	Label(loop)
	// The VNNI kernels' prefetch, two units on.
	for l := 0; l < unit; l += 64 {
		PREFETCHT0(Mem{Base: wp, Disp: 2*unit + l})
	}
	mask := p.mask
	if five {
		// Q5_K's sub-blocks take each register they can: the mask
		// is loaded where it is used.
		mask = YMM()
		VMOVDQU(q4x16Mask(), mask)
	}
	q4kx16AVX2Scales(wp, mask, p.scw, p.mw)
	if ni <= pass {
		p.gen()
	} else {
		// Eight inputs: the code of four, twice, from pointers that move
		// four inputs on.
		p.xq, p.xb, p.xd = GP64(), GP64(), GP64()
		MOVQ(xp, p.xq)
		LEAQ(Mem{Base: xp, Disp: 256 * ni}, p.xb)
		LEAQ(Mem{Base: xp, Disp: 272 * ni}, p.xd)
		p.bOff, p.dOff = 0, 0
		ap := GP64()
		LEAQ(accSlot(0, 0), ap)
		p.acc = func(j, h int) Mem { return Mem{Base: ap, Disp: 32 * (2*j + h)} }
		passes := GP64()
		MOVQ(U32(ni/pass), passes)
		label := fmt.Sprintf("%sx16x%d%spass", lower, ni, strings.ToLower(isa))
		Label(label)
		p.gen()
		ADDQ(U32(256*pass), p.xq)
		ADDQ(U32(16*pass), p.xb)
		ADDQ(U32(4*pass), p.xd)
		ADDQ(U32(64*pass), ap)
		DECQ(passes)
		JNZ(LabelRef(label))
	}
	ADDQ(U32(unit), wp)
	ADDQ(U32(276*ni), xp)
	DECQ(n)
	JNZ(LabelRef(loop))
	Label(done)
	stride := Load(Param("stride"), GP64())
	dst := Load(Param("dst").Base(), GP64())
	SHLQ(U8(2), stride)
	for j := range ni {
		for h := range 2 {
			out := Mem{Base: dst, Disp: 32 * h}
			if accMem {
				t := YMM()
				VMOVUPS(accSlot(j, h), t)
				VMOVUPS(t, out)
			} else {
				VMOVUPS(p.accReg[h], out)
			}
		}
		if j+1 < ni {
			ADDQ(stride, dst)
		}
	}
	VZEROUPPER()
	RET()
}

// q4kx16AVX2Scales decodes the scales of the unit at wp into the frame
// words scw(s, h) and mw(k, h) (see genQ4Kx16AVX2).
func q4kx16AVX2Scales(wp Register, mask VecVirtual, scw, mw func(int, int) Mem) {
	c63, c30 := cBytes(0x3f), cBytes(0x30)
	// The planes, 2i and 2i+1 in P[i].
	var P [6]VecVirtual
	for i := range P {
		P[i] = YMM()
		VMOVDQU(Mem{Base: wp, Disp: 64 + 32*i}, P[i])
	}
	hiBits := func(z VecVirtual) VecVirtual { // (z >> 2) & 0x30, bytewise
		VPSRLW(U8(2), z, z)
		VPAND(c30, z, z)
		return z
	}
	// sc[i]: the scales of sub-blocks 2i and 2i+1 (low lane, high lane);
	// m[i]: the mins 2i and 2i+1.
	var sc, m [4]VecVirtual
	for i := range 2 {
		sc[i], m[i] = YMM(), YMM()
		VPAND(c63, P[i], sc[i])
		VPAND(c63, P[i+2], m[i])
	}
	for i := range 2 {
		sc[i+2], m[i+2] = YMM(), YMM()
		VPAND(mask, P[i+4], sc[i+2])
		VPOR(hiBits(P[i]), sc[i+2], sc[i+2])
		VPSRLW(U8(4), P[i+4], m[i+2])
		VPAND(mask, m[i+2], m[i+2])
		VPOR(hiBits(P[i+2]), m[i+2], m[i+2])
	}
	dup, pair := q4kx16Shuffles()
	for s := range 8 {
		for h := range 2 {
			t := YMM()
			VPERMQ(U8(0x55*(2*(s%2)+h)), sc[s/2], t)
			VPSHUFB(dup, t, t)
			VMOVDQU(t, scw(s, h))
		}
	}
	for k := range 4 {
		for h := range 2 {
			t := YMM()
			VPERMQ(U8(h|(2+h)<<2|h<<4|(2+h)<<6), m[k], t)
			VPSHUFB(pair, t, t)
			VMOVDQU(t, mw(k, h))
		}
	}
}

// q4kx16Shuffles returns the VPSHUFB controls that widen a half's eight
// scale bytes, b_0…b_7 in every qword of a register, to one dword lane
// per row: dup makes lane i the words (b_i, b_i); pair, with a second
// set of bytes b_8…b_15 in the high qword of each 128-bit lane, the
// words (b_i, b_{8+i}).
func q4kx16Shuffles() (dup, pair Mem) {
	var d, p [32]byte
	for i := range 8 {
		d[4*i], d[4*i+1], d[4*i+2], d[4*i+3] = byte(i), 0x80, byte(i), 0x80
		p[4*i], p[4*i+1], p[4*i+2], p[4*i+3] = byte(i), 0x80, byte(8+i), 0x80
	}
	return constant("q4kx16dup", d[:]), constant("q4kx16pair", p[:])
}

// q4kx16Pass is one pass of genQ4Kx16AVX2 over a unit: g inputs, input
// j's quants at xq+256j, its sub-block sums at xb+bOff+16j, its scale at
// xd+dOff+4j; its integer sums I in registers or at iSlot(j, h), its
// float accumulators at acc(j, h) or, for one input, in accReg.
type q4kx16Pass struct {
	name       string
	g          int
	wp         Register
	xq, xb, xd Register
	bOff, dOff int
	mask       VecVirtual
	scw, mw    func(s, h int) Mem
	iMem       bool
	iSlot      func(j, h int) Mem
	acc        func(j, h int) Mem
	accReg     [2]VecVirtual
	five       bool // packed Q5_K
	vex        bool // AVX-VNNI (genK45x16AVX2)
}

// gen writes the pass.
func (p *q4kx16Pass) gen() {
	g := p.g
	I := make([][2]VecVirtual, g) // unless iMem
	for j := range g {
		for h := range 2 {
			z := YMM()
			VPXOR(z, z, z)
			if p.iMem {
				VMOVDQU(z, p.iSlot(j, h))
			} else {
				I[j][h] = z
			}
		}
	}
	// The sub-blocks: Q4_K's chunk by chunk, in a loop of four (wc the
	// chunk's quant vectors, xc the inputs' matching quants, sp its scale
	// words); Q5_K's written out, each sub-block's fifth bits shifted by
	// its own immediate.
	var wc, xc, sp, cnt Register
	var label string
	chunks := []int{0}
	if p.five {
		chunks = []int{0, 1, 2, 3}
		wc, xc = p.wp, p.xq
	} else {
		wc, xc, sp, cnt = GP64(), GP64(), GP64(), GP64()
		MOVQ(p.wp, wc)
		MOVQ(p.xq, xc)
		LEAQ(p.scw(0, 0), sp)
		MOVQ(U32(4), cnt)
		label = strings.TrimPrefix(p.name, "dot") + "chunk"
		Label(label)
	}
	for _, c := range chunks {
		for hi := range 2 { // sub-block 2c+hi
			b := 2*c + hi
			// Q5_K: the sub-block's nibble mask (15, or 0xf0 for the
			// high nibbles) and that of its fifth bits, bit b of the qh
			// bytes.
			var mn, mb VecVirtual
			if p.five {
				mn, mb = YMM(), YMM()
				if hi == 1 {
					VMOVDQU(cBytes(0xf0), mn)
				} else {
					VMOVDQU(q4x16Mask(), mn)
				}
				VMOVDQU(cBytes(1<<b), mb)
			}
			S := make([][2]VecVirtual, g) // int16 sums (int32 with vex), by half
			// vex: chains[j][h][c] takes the steps k ≡ c (mod len): a
			// VPDPBUSD waits for the last one on its accumulator, and
			// with one or two inputs the halves alone are too few
			// chains to keep the pipes busy (one input of Q4_K_M decoded
			// 11% slower on one chain per half). Q5_K, whose steps take
			// more instructions and registers, keeps one.
			nc := max(1, 4/g)
			if p.five {
				nc = 1
			}
			var chains [][2][]VecVirtual
			if p.vex {
				chains = make([][2][]VecVirtual, g)
				for j := range g {
					for h := range 2 {
						for range nc {
							z := YMM()
							VPSUBD(z, z, z)
							chains[j][h] = append(chains[j][h], z)
						}
						S[j][h] = chains[j][h][0]
					}
				}
			}
			for k := range 8 {
				var v [2]VecVirtual
				for h := range 2 {
					v[h] = YMM()
					if p.five {
						// The nibble: q & 15, or (q & 0xf0) >> 4 (the
						// word shift brings in the high byte's cleared
						// bits); its fifth bit, bit b of the qh byte,
						// isolated and shifted to bit 4 (a word shift of
						// bits isolated within their bytes keeps each in
						// its byte), ORed in.
						src := Mem{Base: wc, Disp: 768 + 512*c + 64*k + 32*h}
						VPAND(src, mn, v[h])
						if hi == 1 {
							VPSRLW(U8(4), v[h], v[h])
						}
						f := YMM()
						VPAND(Mem{Base: p.wp, Disp: 256 + 64*k + 32*h}, mb, f)
						if b < 4 {
							VPSLLW(U8(4-b), f, f)
						} else if b > 4 {
							VPSRLW(U8(b-4), f, f)
						}
						VPOR(f, v[h], v[h])
						continue
					}
					src := Mem{Base: wc, Disp: 256 + 64*k + 32*h}
					if hi == 1 {
						VMOVDQU(src, v[h])
						VPSRLW(U8(4), v[h], v[h])
						VPAND(p.mask, v[h], v[h])
					} else {
						VPAND(src, p.mask, v[h])
					}
				}
				// Step k of every input before step k+1 of any: the
				// inputs' sums are independent chains.
				for j := range g {
					y := YMM()
					VPBROADCASTD(Mem{Base: xc, Disp: 64*c + 256*j + 32*hi + 4*k}, y)
					for h := range 2 {
						if p.vex {
							vpdpbusdVEX(y, v[h], chains[j][h][k%nc])
							continue
						}
						t := y
						if h == 0 {
							t = YMM()
						}
						VPMADDUBSW(y, v[h], t)
						if k == 0 || p.five && k == 4 {
							S[j][h] = t
						} else {
							VPADDW(t, S[j][h], S[j][h])
						}
					}
				}
				if k < 7 && !(p.five && k == 3 && !p.vex) {
					continue
				}
				var sd [2]VecVirtual // vex: the scales as dwords, the low words of (sc, sc)
				if p.vex {
					for j := range g {
						for h := range 2 {
							for _, c := range chains[j][h][1:] {
								VPADDD(c, S[j][h], S[j][h])
							}
						}
					}
					for h := range 2 {
						sw := p.scw(b, h)
						if !p.five {
							sw = Mem{Base: sp, Disp: 32 * (2*hi + h)}
						}
						sd[h] = YMM()
						VMOVDQU(sw, sd[h])
						VPAND(cDwords(0xffff), sd[h], sd[h])
					}
				}
				// The int16 sums to I: Q4_K's after the eight steps,
				// Q5_K's after four and after eight (its words reach
				// 4·2·31·128 = 31744 < 2¹⁵ in four steps; five could
				// wrap), each part scaled by its own VPMADDWD.
				for j := range g {
					for h := range 2 {
						t := S[j][h]
						sw := p.scw(b, h)
						if !p.five {
							sw = Mem{Base: sp, Disp: 32 * (2*hi + h)}
						}
						if p.vex {
							VPMULLD(sd[h], t, t)
						} else {
							VPMADDWD(sw, t, t)
						}
						if p.iMem {
							VPADDD(p.iSlot(j, h), t, t)
							VMOVDQU(t, p.iSlot(j, h))
						} else {
							VPADDD(t, I[j][h], I[j][h])
						}
					}
				}
			}
		}
	}
	if !p.five {
		ADDQ(U32(512), wc)
		ADDQ(U32(64), xc)
		ADDQ(U32(128), sp)
		DECQ(cnt)
		JNZ(LabelRef(label))
	}
	// The mins and the float step.
	var dw, dm [2]VecVirtual
	for h := range 2 {
		dw[h], dm[h] = YMM(), YMM()
		VCVTPH2PS(Mem{Base: p.wp, Disp: 16 * h}, dw[h])
		VCVTPH2PS(Mem{Base: p.wp, Disp: 32 + 16*h}, dm[h])
	}
	for j := range g {
		var M [2]VecVirtual
		for k := range 4 {
			b := YMM()
			VPBROADCASTD(Mem{Base: p.xb, Disp: p.bOff + 16*j + 4*k}, b)
			for h := range 2 {
				t := b
				if h == 0 {
					t = YMM()
				}
				VPMADDWD(p.mw(k, h), b, t)
				if k == 0 {
					M[h] = t
				} else {
					VPADDD(t, M[h], M[h])
				}
			}
		}
		dy := YMM()
		VBROADCASTSS(Mem{Base: p.xd, Disp: p.dOff + 4*j}, dy)
		for h := range 2 {
			t := YMM()
			if p.iMem {
				VCVTDQ2PS(p.iSlot(j, h), t)
			} else {
				VCVTDQ2PS(I[j][h], t)
			}
			d := YMM()
			VMULPS(dw[h], dy, d)
			VMULPS(d, t, t)
			e := YMM()
			VMULPS(dm[h], dy, e)
			VCVTDQ2PS(M[h], M[h])
			VMULPS(e, M[h], M[h])
			VSUBPS(M[h], t, t)
			if p.acc != nil {
				VADDPS(p.acc(j, h), t, t)
				VMOVUPS(t, p.acc(j, h))
			} else {
				VADDPS(t, p.accReg[h], p.accReg[h])
			}
		}
	}
}

// genQ5Kx16AVX2 writes dotQ5Kx16x{ni}AVX2, genQ5Kx16VNNI's kernel for
// CPUs without AVX-512: genQ4Kx16AVX2 for packed Q5_K (units of 2816
// bytes, the quant vectors at 768, the qh vectors at 256), the same
// arguments and the same bits as dotQ5Kx16Generic.
//
// A quant vector of sub-block b = 2c+hi is its nibbles, q & 15 (one
// VPAND from memory) or (q & 0xf0) >> 4 (a VPAND from memory and a
// VPSRLW: the word shift brings the high byte's cleared nibble into the
// low byte's top), ORed with its fifth bits: bit b of each qh byte,
// isolated by a VPAND from memory with the bytes 1<<b and moved to bit 4
// by a word shift (left 4−b, or right b−4, none for b = 4), which keeps
// bits isolated within their bytes in their bytes. That is four or five
// instructions a vector (three for b = 4), where Q4_K takes one or three.
//
// Quants reach 31, so a VPMADDUBSW word (two products) reaches
// 2·31·128 = 7936 in magnitude: four steps add up in int16 (31744 <
// 2¹⁵), a fifth could wrap. Each sub-block's eight steps are therefore
// two int16 sums of four, each scaled by its own VPMADDWD against the
// words (sc_b, sc_b) and added to I in int32: sc_b·(A+B) = sc_b·A +
// sc_b·B exactly, so I, M and the float step are genQ4Kx16AVX2's (and
// the twin's) to the bit. The scales, the mins, the float step, the
// passes of four inputs (eight run the code of four twice) and the
// registers are genQ4Kx16AVX2's; I lives in the frame from four inputs,
// so the second sum costs a VPADDD from memory and a store per input,
// half and sub-block more than Q4_K.
//
// The eight sub-blocks are written out, each shifting by its own
// immediate (16 KB of code for four or eight inputs): Q4_K's loop of
// four chunks would need shift counts from memory (and both directions),
// and a loop of two, chunks c and c+2 by pairs (so that the directions
// stay put) with VPSLLW/VPSRLW counts from the frame, ran one input at
// 37 GMAC/s, two at 57, four at 61, eight at 59 on the 2-core Zen 5
// machine (one thread, a group of eight units in L1), against 48, 68,
// 80 and 85 written out (Q4_K's AVX2 kernels: 60, 89, 99, 101; the
// VNNI kernels of Q5_K: 82, 129, 188, 212). From four inputs, the
// halves one after another with I in registers (every broadcast for
// one half) ran four inputs at 71 and eight at 78: the loads bound
// them.
func genQ5Kx16AVX2(ni int) { genK45x16AVX2(true, ni, false) }
