// Command _generate writes the amd64 assembly of package cpu with avo.
//
// It lives in its own module so that avo never becomes a dependency of
// Stoke. Run it through go generate in kernels/cpu (see gen.go there); each
// run writes one kernel family, selected by -family:
//
//	go run . -family dotq8 -out ../dotq8_amd64.s -stubs ../dotq8_stubs_amd64.go -pkg cpu
//
// Every kernel needs AVX2, FMA and F16C and uses only X0–X15/Y0–Y15 (no
// EVEX encodings); the Go side checks the CPU before calling any of them.
// The integer-activation kernels reproduce, operation for operation, the
// lane structure their pure-Go twins document (dotq8.go, dotk.go), so the
// two give identical bits; keep them in step.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

var family = flag.String("family", "", "kernel family to generate: q8act, dotq8, dotk or dotf")

func main() {
	flag.Parse()
	ConstraintExpr("amd64,!noasm,gc")
	switch *family {
	case "q8act":
		genQuantizeQ8_0()
		genQuantizeQ8_K()
	case "dotq8":
		genDotQ8_0()
		genDotQ4_0()
		genDotQ4_1()
		genDotQ5_0()
		genDotQ5_1()
	case "dotk":
		genDotQ4_K()
		genDotQ5_K()
		genDotQ6_K()
	case "dotf":
		genDotFloat("dotF32AVX2", 4)
		genDotFloat("dotF16AVX2", 2)
		genDotFloat("dotBF16AVX2", 2)
		genAxpy("axpyF32AVX2", 4)
		genAxpy("axpyF16AVX2", 2)
	default:
		fmt.Fprintf(os.Stderr, "unknown -family %q\n", *family)
		os.Exit(2)
	}
	Generate()
}

// ---- constants ----------------------------------------------------------

// vecConst declares a read-only 32-byte (or 16-byte) constant.
func vecConst(name string, b []byte) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < len(b); i += 8 {
		DATA(i, U64(binary.LittleEndian.Uint64(b[i:])))
	}
	return m
}

func bytes32(v byte) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = v
	}
	return b
}

func words32(v uint16) []byte {
	b := make([]byte, 32)
	for i := 0; i < 32; i += 2 {
		binary.LittleEndian.PutUint16(b[i:], v)
	}
	return b
}

func dwords32(vs ...uint32) []byte {
	b := make([]byte, 32)
	for i := 0; i < 8; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], vs[i%len(vs)])
	}
	return b
}

// Constants are declared once per file, on first use.
var consts = map[string]Mem{}

func constant(name string, b []byte) Mem {
	if m, ok := consts[name]; ok {
		return m
	}
	m := vecConst(name, b)
	consts[name] = m
	return m
}

func cBytes(v byte) Mem              { return constant(fmt.Sprintf("b%02x", v), bytes32(v)) }
func cWords(v uint16) Mem            { return constant(fmt.Sprintf("w%04x", v), words32(v)) }
func cDwords(v uint32) Mem           { return constant(fmt.Sprintf("d%08x", v), dwords32(v)) }
func cPackPerm() Mem                 { return constant("packperm", dwords32(0, 4, 1, 5, 2, 6, 3, 7)) }
func cF32(name string, f uint32) Mem { return constant(name, dwords32(f)) }

// ---- helpers ------------------------------------------------------------

// hsum8 reduces the eight float lanes of acc to one, in the order the
// generic hsum8 uses: ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)). The result is
// in lane 0 of the returned XMM register.
func hsum8(acc VecVirtual) VecVirtual {
	l, m := XMM(), XMM()
	VEXTRACTF128(U8(1), acc, l)
	VADDPS(l, acc.AsX(), l)
	VMOVHLPS(l, l, m)
	VADDPS(m, l, l)
	VMOVSHDUP(l, m)
	VADDSS(m, l, l)
	return l
}

// hsum4 reduces four float lanes: (a0+a2) + (a1+a3).
func hsum4(acc VecVirtual) VecVirtual {
	l, m := XMM(), XMM()
	VMOVHLPS(acc, acc, l)
	VADDPS(l, acc, l)
	VMOVSHDUP(l, m)
	VADDSS(m, l, l)
	return l
}

// accumulate adds float32(lanes)·d to acc lane by lane, unfused.
func accumulate(acc, lanes, d VecVirtual) {
	VCVTDQ2PS(lanes, lanes)
	VMULPS(d, lanes, lanes)
	VADDPS(lanes, acc, acc)
}

// ---- activation quantization -------------------------------------------

func genQuantizeQ8_0() {
	TEXT("quantizeQ8_0AVX2", NOSPLIT, "func(x []float32, dst []byte, nb int)")
	Pragma("noescape")
	Doc("quantizeQ8_0AVX2 is quantizeQ8_0Generic: x holds nb blocks of 32 and dst room for nb Q8_0 blocks.")
	xp := Load(Param("x").Base(), GP64())
	dp := Load(Param("dst").Base(), GP64())
	n := Load(Param("nb"), GP64())
	absMask := cDwords(0x7fffffff)
	c127 := cF32("f127", 0x42fe0000) // 127.0

	TESTQ(n, n)
	JZ(LabelRef("done"))
	Label("block")
	v := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	amax, t := YMM(), YMM()
	VXORPS(amax, amax, amax)
	for i := range v {
		VMOVUPS(Mem{Base: xp, Disp: 32 * i}, v[i])
		VANDPS(absMask, v[i], t)
		VMAXPS(amax, t, amax) // |x| > amax ? |x| : amax — a NaN |x| leaves amax
	}
	m := XMM()
	VEXTRACTF128(U8(1), amax, m)
	VMAXPS(m, amax.AsX(), m)
	m2 := XMM()
	VMOVHLPS(m, m, m2)
	VMAXPS(m2, m, m)
	VMOVSHDUP(m, m2)
	VMAXSS(m2, m, m)

	// d = amax/127 as f16
	d, dh := XMM(), XMM()
	VDIVSS(c127, m, d)
	VCVTPS2PH(U8(0), d, dh)
	VPEXTRW(U8(0), dh, Mem{Base: dp})

	// id = amax != 0 ? 127/amax : 0
	id, z, msk := XMM(), XMM(), XMM()
	VMOVSS(c127, id)
	VDIVSS(m, id, id)
	VXORPS(z, z, z)
	VCMPSS(U8(4), z, m, msk) // amax != 0 (NEQ_UQ)
	VANDPS(msk, id, id)
	idv := YMM()
	VBROADCASTSS(id, idv)

	for i := range v {
		VMULPS(idv, v[i], v[i])
		VROUNDPS(U8(0), v[i], v[i]) // nearest, ties to even
		VCVTPS2DQ(v[i], v[i])
	}
	VPACKSSDW(v[1], v[0], v[0])
	VPACKSSDW(v[3], v[2], v[2])
	VPACKSSWB(v[2], v[0], v[0])
	perm := YMM()
	VMOVDQU(cPackPerm(), perm)
	VPERMD(v[0], perm, v[0])
	VMOVDQU(v[0], Mem{Base: dp, Disp: 2})

	ADDQ(U32(128), xp)
	ADDQ(U32(34), dp)
	DECQ(n)
	JNZ(LabelRef("block"))
	Label("done")
	VZEROUPPER()
	RET()
}

func genQuantizeQ8_K() {
	TEXT("quantizeQ8_KAVX2", NOSPLIT, "func(x []float32, dst []byte, nb int)")
	Pragma("noescape")
	Doc("quantizeQ8_KAVX2 is quantizeQ8_KGeneric: x holds nb blocks of 256 and dst room for nb Q8_K blocks.")
	xp := Load(Param("x").Base(), GP64())
	dp := Load(Param("dst").Base(), GP64())
	n := Load(Param("nb"), GP64())
	absMask := cDwords(0x7fffffff)
	magic := cF32("fmagic", 0x4b400000) // 12582912.0 = 1.5·2²³
	mant := cDwords(0x007fffff)
	off := cDwords(0x00400000)
	i127 := cDwords(127)
	lowByte := cDwords(0xff)
	ones8 := cBytes(1)
	ones16 := cWords(1)
	// word order fix for the bsums: [A C E G B D F H] → [A B C D E F G H] per lane
	bsShuf := constant("bsshuf", []byte{
		0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15,
		0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15,
	})

	TESTQ(n, n)
	JZ(LabelRef("done"))
	Label("block")

	// amax = max |x| over the block, NaNs skipped
	absv := YMM()
	VMOVDQU(absMask, absv)
	acc := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for _, a := range acc {
		VXORPS(a, a, a)
	}
	t := YMM()
	for j := 0; j < 32; j++ {
		a := acc[j%4]
		VANDPS(Mem{Base: xp, Disp: 32 * j}, absv, t)
		VMAXPS(a, t, a)
	}
	VMAXPS(acc[1], acc[0], acc[0])
	VMAXPS(acc[3], acc[2], acc[2])
	VMAXPS(acc[2], acc[0], acc[0])
	m, m2 := XMM(), XMM()
	VEXTRACTF128(U8(1), acc[0], m)
	VMAXPS(m, acc[0].AsX(), m)
	VMOVHLPS(m, m, m2)
	VMAXPS(m2, m, m)
	VMOVSHDUP(m, m2)
	VMAXSS(m2, m, m)
	z := XMM()
	VXORPS(z, z, z)
	VUCOMISS(z, m)
	JNE(LabelRef("nonzero"))

	// a zero block: d, quants and sums all 0
	zy := YMM()
	VXORPS(zy, zy, zy)
	MOVL(U32(0), Mem{Base: dp})
	for j := 0; j < 8; j++ {
		VMOVDQU(zy, Mem{Base: dp, Disp: 4 + 32*j})
	}
	VMOVDQU(zy, Mem{Base: dp, Disp: 260})
	JMP(LabelRef("next"))

	// max = the first x with |x| = amax
	Label("nonzero")
	amaxv := YMM()
	VBROADCASTSS(m, amaxv)
	p := GP64()
	MOVQ(xp, p)
	mask := GP32()
	Label("find")
	VANDPS(Mem{Base: p}, absv, t)
	VCMPPS(U8(0), amaxv, t, t) // EQ_OQ
	VMOVMSKPS(t, mask)
	TESTL(mask, mask)
	JNZ(LabelRef("found"))
	ADDQ(U8(32), p)
	JMP(LabelRef("find"))
	Label("found")
	BSFL(mask, mask)
	mx := XMM()
	VMOVSS(Mem{Base: p, Index: mask.As64(), Scale: 4}, mx)

	// iscale = −127/max, d = 1/iscale
	is, dd := XMM(), XMM()
	VMOVSS(cF32("fm127", 0xc2fe0000), is) // −127.0
	VDIVSS(mx, is, is)
	VMOVSS(cF32("f1", 0x3f800000), dd)
	VDIVSS(is, dd, dd)
	VMOVSS(dd, Mem{Base: dp})
	isv := YMM()
	VBROADCASTSS(is, isv)
	perm, one8 := YMM(), YMM()
	VMOVDQU(cPackPerm(), perm)
	VMOVDQU(ones8, one8)

	// quants, 32 at a time, and their 16-element sums
	var partial []VecVirtual // pending bsum reductions
	var halves []VecVirtual  // [A C E G | B D F H] for groups 0–7 and 8–15
	for g := 0; g < 8; g++ {
		v := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
		for i := range v {
			VMULPS(Mem{Base: xp, Disp: 128*g + 32*i}, isv, v[i])
			VADDPS(magic, v[i], v[i])
			VPAND(mant, v[i], v[i])
			VPSUBD(off, v[i], v[i])
			VPMINSD(i127, v[i], v[i])
			VPAND(lowByte, v[i], v[i]) // int8(·) keeps the low byte
		}
		VPACKUSDW(v[1], v[0], v[0])
		VPACKUSDW(v[3], v[2], v[2])
		VPACKUSWB(v[2], v[0], v[0])
		VPERMD(v[0], perm, v[0])
		VMOVDQU(v[0], Mem{Base: dp, Disp: 4 + 32*g})
		// lanes 0–3: sums of 4 of group 2g, lanes 4–7: of group 2g+1
		s := v[1]
		VPMADDUBSW(v[0], one8, s)
		VPMADDWD(ones16, s, s)
		partial = append(partial, s)
		if g%2 == 1 {
			h := partial[len(partial)-1]
			VPHADDD(h, partial[len(partial)-2], h)
			partial = append(partial[:len(partial)-2], h)
		}
		if g%4 == 3 {
			h := partial[len(partial)-1]
			VPHADDD(h, partial[len(partial)-2], h)
			partial = partial[:len(partial)-2]
			halves = append(halves, h)
		}
	}
	bs := halves[0]
	VPACKSSDW(halves[1], halves[0], bs)
	VPERMQ(U8(0xd8), bs, bs)
	VPSHUFB(bsShuf, bs, bs)
	VMOVDQU(bs, Mem{Base: dp, Disp: 260})

	Label("next")
	ADDQ(U32(1024), xp)
	ADDQ(U32(292), dp)
	DECQ(n)
	JNZ(LabelRef("block"))
	Label("done")
	VZEROUPPER()
	RET()
}

// ---- Q8_0-activation dot products ---------------------------------------

const qSig = "func(w, x []byte, d []float32, nb int) float32"

// dotPrologue starts an integer-activation kernel with qSig's signature and
// returns the registers of w, x, d and nb.
func dotPrologue(name, doc string) (wp, xp, dp, n Register) {
	TEXT(name, NOSPLIT, qSig)
	Pragma("noescape")
	Doc(doc)
	wp = Load(Param("w").Base(), GP64())
	xp = Load(Param("x").Base(), GP64())
	dp = Load(Param("d").Base(), GP64())
	n = Load(Param("nb"), GP64())
	return
}

func dotEpilogue(acc VecVirtual) {
	r := hsum8(acc)
	VZEROUPPER()
	Store(r, ReturnIndex(0))
	RET()
}

// halves4 loads the four f16 values at base+off, base+off+stride, … into
// one 64-bit register, the first in the low 16 bits.
func halves4(base Register, off, stride int) GPVirtual {
	a, b := GP64(), GP64()
	MOVWQZX(Mem{Base: base, Disp: off}, a)
	for j := 1; j < 4; j++ {
		MOVWQZX(Mem{Base: base, Disp: off + j*stride}, b)
		SHLQ(U8(16*j), b)
		ORQ(b, a)
	}
	return a
}

// legacyLoop emits the block loop of a 32-element block kernel whose
// weight blocks are wsize bytes with the f16 scale d_w first (and, when
// withMin, the f16 min m_w after it). Block i adds into acc[i mod 4] (four
// independent chains, so the loop is not bound by the latency of VADDPS).
// Blocks go eight at a time: their eight d_w are widened together (the
// integer units gather them, one VCVTPH2PS converts them), multiplied by
// the eight float32 activation scales in one VMULPS and parked on the
// stack, from where each block broadcasts its d_w·d_x (likewise m_w·d_x);
// then four at a time the same way, then the last nb mod 4 one at a time.
// body emits one block: weights at wb, activations at xb, d_w·d_x in every
// lane of dv (m_w·d_x in mv), accumulator acc. Each product is the same
// float32 the generic twin computes.
func legacyLoop(wp, xp, dp, n Register, wsize int, withMin bool, body func(wb, xb Mem, dv, mv, acc VecVirtual)) {
	acc := [4]VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for _, a := range acc {
		VXORPS(a, a, a)
	}
	offs := []int{0}
	if withMin {
		offs = append(offs, 2)
	}
	tmp := AllocLocal(64)
	// scales widens the f16 at offset off of count (4 or 8) blocks, times
	// the activation scales, to tmp+32·k.
	scales := func(count int) {
		for k, off := range offs {
			if count == 8 {
				lo, hi := halves4(wp, off, wsize), halves4(wp, off+4*wsize, wsize)
				s, sy := XMM(), YMM()
				VMOVQ(lo, s)
				VPINSRQ(U8(1), hi, s, s)
				VCVTPH2PS(s, sy)
				VMULPS(Mem{Base: dp}, sy, sy)
				VMOVUPS(sy, tmp.Offset(32*k))
			} else {
				q4 := halves4(wp, off, wsize)
				s4 := XMM()
				VMOVQ(q4, s4)
				VCVTPH2PS(s4, s4)
				VMULPS(Mem{Base: dp}, s4, s4)
				VMOVUPS(s4, tmp.Offset(32*k))
			}
		}
	}
	blocks := func(count int) {
		for j := 0; j < count; j++ {
			dv, mv := YMM(), VecVirtual(nil)
			VBROADCASTSS(tmp.Offset(4*j), dv)
			if withMin {
				mv = YMM()
				VBROADCASTSS(tmp.Offset(32+4*j), mv)
			}
			body(Mem{Base: wp, Disp: wsize * j}, Mem{Base: xp, Disp: 34 * j}, dv, mv, acc[j%4])
		}
		ADDQ(U32(count*wsize), wp)
		ADDQ(U32(count*34), xp)
		ADDQ(U8(4*count), dp)
		SUBQ(U8(count), n)
	}
	Label("batch8")
	CMPQ(n, U8(8))
	JL(LabelRef("batch4"))
	scales(8)
	blocks(8)
	JMP(LabelRef("batch8"))

	Label("batch4")
	CMPQ(n, U8(4))
	JL(LabelRef("tail"))
	scales(4)
	blocks(4)

	Label("tail") // n < 4 blocks left: they go to acc[0], acc[1], acc[2]
	for j := 0; j < 3; j++ {
		TESTQ(n, n)
		JZ(LabelRef("done"))
		var sv [2]VecVirtual
		for k, off := range offs {
			r := GP32()
			MOVWLZX(Mem{Base: wp, Disp: off}, r)
			s1 := XMM()
			VMOVD(r, s1)
			VCVTPH2PS(s1, s1)
			VMULSS(Mem{Base: dp}, s1, s1)
			sv[k] = YMM()
			VBROADCASTSS(s1, sv[k])
		}
		body(Mem{Base: wp}, Mem{Base: xp}, sv[0], sv[1], acc[j])
		ADDQ(U8(wsize), wp)
		ADDQ(U8(34), xp)
		ADDQ(U8(4), dp)
		DECQ(n)
	}
	Label("done")
	// (acc0 + acc1) + (acc2 + acc3), lane by lane, then hsum8
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	dotEpilogue(acc[0])
}

// nibbleBytes returns the 32 quants of 16 bytes of nibbles at m, low
// nibbles (elements 0–15) in the low lane, high nibbles in the high lane.
func nibbleBytes(m Mem, m4 VecVirtual) VecVirtual {
	q, hi := YMM(), XMM()
	// (a full-width load: writing only q's low half would keep q live
	// across blocks for the register allocator)
	VBROADCASTI128(m, q)
	VPSRLW(U8(4), q.AsX(), hi)
	VINSERTI128(U8(1), hi, q, q)
	VPAND(m4, q, q)
	return q
}

// fifthBits returns, for the 32 bits of the f16-aligned uint32 at m, a
// vector whose byte j is 0xFF when bit j is set and 0 otherwise (ggml's
// bytes_from_bits_32).
func fifthBits(m Mem) VecVirtual {
	b := YMM()
	VPBROADCASTD(m, b)
	VPSHUFB(constant("bitsshuf", func() []byte {
		c := make([]byte, 32)
		for j := range c {
			c[j] = byte(j / 8)
		}
		return c
	}()), b, b)
	VPOR(constant("bitsmask", dwords32(0xf7fbfdfe, 0x7fbfdfef)), b, b)
	VPCMPEQB(constant("ones", bytes32(0xff)), b, b)
	return b
}

func genDotQ8_0() {
	wp, xp, dp, n := dotPrologue("dotQ8_0Q8_0AVX2", "dotQ8_0Q8_0AVX2 is dotQ8_0Q8_0Generic.")
	ones := YMM()
	VMOVDQU(cWords(1), ones)
	legacyLoop(wp, xp, dp, n, 34, false, func(wb, xb Mem, dv, _, acc VecVirtual) {
		qw, qx, aw := YMM(), YMM(), YMM()
		VMOVDQU(wb.Offset(2), qw)
		VMOVDQU(xb.Offset(2), qx)
		// |w| (unsigned) times y with w's sign: Σ w·y by pairs, then fours
		VPSIGNB(qw, qw, aw)
		VPSIGNB(qw, qx, qx)
		VPMADDUBSW(qx, aw, aw)
		VPMADDWD(ones, aw, aw)
		accumulate(acc, aw, dv)
	})
}

// genDotQ4_0 works on pairs of blocks X, Y with the activations in the
// q4Pairs layout (see dotq8.go): the nibbles of both blocks fill one
// vector (low nibbles: X in the low lane, Y in the high lane), the two
// halves' VPMADDUBSW products are added as int16, the −8·Σy correction
// subtracted, and one VPMADDWD, VCVTDQ2PS, VMULPS and VADDPS serve both
// blocks. Pairs j of an 8-block batch add into acc[j] (of a 4-block batch
// too), a remainder pair into acc[2], a lone last block into acc[3].
func genDotQ4_0() {
	wp, xp, dp, n := dotPrologue("dotQ4_0Q8_0AVX2", "dotQ4_0Q8_0AVX2 is dotQ4_0Q8_0Generic; x is the q4Pairs layout.")
	ones, m4, idx := YMM(), YMM(), YMM()
	VMOVDQU(cWords(1), ones)
	VMOVDQU(cBytes(0x0f), m4)
	VMOVDQU(constant("idx01", dwords32(0, 0, 0, 0, 1, 1, 1, 1)), idx)
	acc := [4]VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for _, a := range acc {
		VXORPS(a, a, a)
	}
	tmp := AllocLocal(32)

	// pair emits one pair (or a lone block, full = false) with weights at
	// wb, activations at pb and the scale vector sv = [d_X ×4, d_Y ×4].
	pair := func(wb, pb Mem, sv, acc VecVirtual, full bool) {
		q, qh := YMM(), YMM()
		VBROADCASTI128(wb.Offset(2), q) // a lone block's high lane meets y = 0
		if full {
			VINSERTI128(U8(1), wb.Offset(18+2), q, q)
		}
		VPSRLW(U8(4), q, qh)
		VPAND(m4, qh, qh)
		VPAND(m4, q, q)
		VPMADDUBSW(pb, q, q)
		VPMADDUBSW(pb.Offset(32), qh, qh)
		VPADDW(qh, q, q) // |·| ≤ 2·3810: no int16 overflow
		VPSUBW(pb.Offset(64), q, q)
		VPMADDWD(ones, q, q)
		accumulate(acc, q, sv)
	}
	// batch emits count (8 or 4) blocks: their scales at once, then the pairs.
	batch := func(count int) {
		lo := halves4(wp, 0, 18)
		s := XMM()
		VMOVQ(lo, s)
		if count == 8 {
			hi := halves4(wp, 4*18, 18)
			VPINSRQ(U8(1), hi, s, s)
			sy := YMM()
			VCVTPH2PS(s, sy)
			VMULPS(Mem{Base: dp}, sy, sy)
			VMOVUPS(sy, tmp)
		} else {
			VCVTPH2PS(s, s)
			VMULPS(Mem{Base: dp}, s, s)
			VMOVUPS(s, tmp.Offset(0))
		}
		for j := 0; j < count/2; j++ {
			sv := YMM()
			VBROADCASTSD(tmp.Offset(8*j), sv)
			VPERMPS(sv, idx, sv)
			pair(Mem{Base: wp, Disp: 36 * j}, Mem{Base: xp, Disp: 96 * j}, sv, acc[j], true)
		}
		ADDQ(U32(18*count), wp)
		ADDQ(U32(48*count), xp)
		ADDQ(U8(4*count), dp)
		SUBQ(U8(count), n)
	}
	Label("batch8")
	CMPQ(n, U8(8))
	JL(LabelRef("batch4"))
	batch(8)
	JMP(LabelRef("batch8"))
	Label("batch4")
	CMPQ(n, U8(4))
	JL(LabelRef("pair"))
	batch(4)

	Label("pair")
	CMPQ(n, U8(2))
	JL(LabelRef("lone"))
	{
		r, r2 := GP32(), GP32()
		MOVWLZX(Mem{Base: wp}, r)
		MOVWLZX(Mem{Base: wp, Disp: 18}, r2)
		SHLL(U8(16), r2)
		ORL(r2, r)
		s, dx := XMM(), XMM()
		VMOVD(r, s)
		VCVTPH2PS(s, s)
		VMOVQ(Mem{Base: dp}, dx) // (not 16 bytes: d may end here)
		VMULPS(dx, s, s)
		sv := YMM()
		VPERMPS(s.AsY(), idx, sv)
		pair(Mem{Base: wp}, Mem{Base: xp}, sv, acc[2], true)
		ADDQ(U8(36), wp)
		ADDQ(U8(96), xp)
		ADDQ(U8(8), dp)
		SUBQ(U8(2), n)
	}
	Label("lone")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	{
		r := GP32()
		MOVWLZX(Mem{Base: wp}, r)
		s := XMM()
		VMOVD(r, s)
		VCVTPH2PS(s, s)
		VMULSS(Mem{Base: dp}, s, s) // [d_X, 0, 0, 0]
		sv := YMM()
		VPERMPS(s.AsY(), idx, sv)
		pair(Mem{Base: wp}, Mem{Base: xp}, sv, acc[3], false)
	}
	Label("done")
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	dotEpilogue(acc[0])
}

// unsignedWithMin emits the block body of Q4_1/Q5_1: unsigned quants q,
// acc += float32(Σ_4 q·y)·d, then acc += float32(Σ_4 y)·m.
func unsignedWithMin(q VecVirtual, xb Mem, dv, mv, acc, ones16, ones8 VecVirtual) {
	y, ys := YMM(), YMM()
	VMOVDQU(xb.Offset(2), y)
	VPMADDUBSW(y, ones8, ys)
	VPMADDWD(ones16, ys, ys)
	VPMADDUBSW(y, q, q)
	VPMADDWD(ones16, q, q)
	accumulate(acc, q, dv)
	accumulate(acc, ys, mv)
}

func genDotQ4_1() {
	wp, xp, dp, n := dotPrologue("dotQ4_1Q8_0AVX2", "dotQ4_1Q8_0AVX2 is dotQ4_1Q8_0Generic.")
	ones16, ones8, m4 := YMM(), YMM(), YMM()
	VMOVDQU(cWords(1), ones16)
	VMOVDQU(cBytes(1), ones8)
	VMOVDQU(cBytes(0x0f), m4)
	legacyLoop(wp, xp, dp, n, 20, true, func(wb, xb Mem, dv, mv, acc VecVirtual) {
		q := nibbleBytes(wb.Offset(4), m4)
		unsignedWithMin(q, xb, dv, mv, acc, ones16, ones8)
	})
}

func genDotQ5_0() {
	wp, xp, dp, n := dotPrologue("dotQ5_0Q8_0AVX2", "dotQ5_0Q8_0AVX2 is dotQ5_0Q8_0Generic.")
	ones, m4 := YMM(), YMM()
	VMOVDQU(cWords(1), ones)
	VMOVDQU(cBytes(0x0f), m4)
	legacyLoop(wp, xp, dp, n, 22, false, func(wb, xb Mem, dv, _, acc VecVirtual) {
		q := nibbleBytes(wb.Offset(6), m4)
		// (nibble | bit<<4) − 16 is the nibble where the bit is set and
		// int8(0xF0 | nibble) where it is not
		h := fifthBits(wb.Offset(2))
		VPANDN(cBytes(0xf0), h, h)
		VPOR(h, q, q)
		y := YMM()
		VMOVDQU(xb.Offset(2), y)
		VPSIGNB(q, y, y)
		VPSIGNB(q, q, q)
		VPMADDUBSW(y, q, q)
		VPMADDWD(ones, q, q)
		accumulate(acc, q, dv)
	})
}

func genDotQ5_1() {
	wp, xp, dp, n := dotPrologue("dotQ5_1Q8_0AVX2", "dotQ5_1Q8_0AVX2 is dotQ5_1Q8_0Generic.")
	ones16, ones8, m4 := YMM(), YMM(), YMM()
	VMOVDQU(cWords(1), ones16)
	VMOVDQU(cBytes(1), ones8)
	VMOVDQU(cBytes(0x0f), m4)
	legacyLoop(wp, xp, dp, n, 24, true, func(wb, xb Mem, dv, mv, acc VecVirtual) {
		q := nibbleBytes(wb.Offset(8), m4)
		h := fifthBits(wb.Offset(4))
		VPAND(cBytes(0x10), h, h)
		VPOR(h, q, q)
		unsignedWithMin(q, xb, dv, mv, acc, ones16, ones8)
	})
}

// ---- Q8_K-activation dot products ---------------------------------------

// kScales unpacks the 12 packed 6-bit scales and mins of a Q4_K/Q5_K block
// at sp into a YMM register of 16 words: sc0..sc7 in the low lane, m0..m7
// in the high lane.
func kScales(sp Mem, k kMasks) VecVirtual {
	a, b, c := GP64(), GP64(), GP64()
	MOVQ(sp, a)                  // u0 | u1<<32
	MOVL(sp.Offset(8), b.As32()) // u2
	MOVQ(a, c)                   // C = ((a >> 6) & 0x03…) << 4
	SHRQ(U8(6), c)
	ANDQ(k.m03, c)
	SHLQ(U8(4), c)
	ANDQ(k.m3f, a) // E = a & 0x3f… = [sc0-3, m0-3]
	t := GP64()    // B = [u2, u2>>4] & 0x0f…
	MOVL(b.As32(), t.As32())
	SHRL(U8(4), t.As32())
	SHLQ(U8(32), t)
	ORQ(t, b)
	ANDQ(k.m0f, b)
	ORQ(c, b) // D = [sc4-7, m4-7]
	xe, xd := XMM(), XMM()
	VMOVQ(a, xe)
	VMOVQ(b, xd)
	VPUNPCKLDQ(xd, xe, xe) // [sc0-3, sc4-7, m0-3, m4-7]
	sm := YMM()
	VPMOVZXBW(xe, sm)
	return sm
}

// kMasks holds kScales' byte masks in registers, loaded once per call.
type kMasks struct{ m03, m3f, m0f GPVirtual }

func loadKMasks() kMasks {
	k := kMasks{GP64(), GP64(), GP64()}
	MOVQ(U64(0x0303030303030303), k.m03)
	MOVQ(U64(0x3f3f3f3f3f3f3f3f), k.m3f)
	MOVQ(U64(0x0f0f0f0f0f0f0f0f), k.m0f)
	return k
}

// kScaleShuffle is get_scale_shuffle_k4: entry i puts word i of a lane in
// every word.
func kScaleShuffle() Mem {
	b := make([]byte, 256)
	for i := 0; i < 8; i++ {
		for j := 0; j < 16; j++ {
			b[32*i+2*j] = byte(2 * i)
			b[32*i+2*j+1] = byte(2*i + 1)
		}
	}
	return constant("k4shuf", b)
}

func genDotQ4_K() { genDotK45("dotQ4_KQ8_KAVX2", "dotQ4_KQ8_KAVX2 is dotQ4_KQ8_KGeneric.", false) }
func genDotQ5_K() { genDotK45("dotQ5_KQ8_KAVX2", "dotQ5_KQ8_KAVX2 is dotQ5_KQ8_KGeneric.", true) }

func genDotK45(name, doc string, five bool) {
	wp, xp, _, n := dotPrologue(name, doc)
	wsize, qoff := 144, 16
	if five {
		wsize, qoff = 176, 48
	}
	shuf := kScaleShuffle()
	m4 := YMM()
	VMOVDQU(cBytes(0x0f), m4)
	masks := loadKMasks()
	acc, accm := YMM(), XMM()
	VXORPS(acc, acc, acc)
	VXORPS(accm, accm, accm)
	TESTQ(n, n)
	JZ(LabelRef("done"))
	Label("block")

	// d = yd·d_w in every lane of dv, dm = yd·dmin_w in every lane of dmv
	r := GP32()
	s := XMM()
	MOVL(Mem{Base: wp}, r)
	VMOVD(r, s)
	VCVTPH2PS(s, s) // [d_w, dmin_w, 0, 0]
	yd := XMM()
	VBROADCASTSS(Mem{Base: xp}, yd)
	VMULPS(yd, s, s)
	dv, dmv := YMM(), XMM()
	VBROADCASTSS(s, dv)
	VPERMILPS(U8(0x55), s, dmv)

	sm := kScales(Mem{Base: wp, Disp: 4}, masks)

	// mins: accm −= float32(m_{2k}·b_{2k} + m_{2k+1}·b_{2k+1})·dm
	q8s, mins := XMM(), XMM()
	VMOVDQU(Mem{Base: xp, Disp: 260}, q8s)
	VPHADDW(Mem{Base: xp, Disp: 276}, q8s, q8s)
	VEXTRACTI128(U8(1), sm, mins)
	VPMADDWD(q8s, mins, mins)
	VCVTDQ2PS(mins, mins)
	VMULPS(dmv, mins, mins)
	VSUBPS(mins, accm, accm)

	sc := YMM()
	VPERMQ(U8(0x44), sm, sc) // the eight scales in both lanes
	var hb VecVirtual
	if five {
		hb = YMM()
		VMOVDQU(Mem{Base: wp, Disp: 16}, hb)
	}
	sumi := YMM()
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
		VPMADDUBSW(Mem{Base: xp, Disp: 4 + 64*g}, ql, ql)
		VPMADDWD(sl, ql, ql)
		VPMADDUBSW(Mem{Base: xp, Disp: 36 + 64*g}, qh, qh)
		VPMADDWD(sh, qh, qh)
		if g == 0 {
			VPADDD(qh, ql, sumi)
		} else {
			VPADDD(ql, sumi, sumi)
			VPADDD(qh, sumi, sumi)
		}
	}
	accumulate(acc, sumi, dv)

	ADDQ(U32(wsize), wp)
	ADDQ(U32(292), xp)
	DECQ(n)
	JNZ(LabelRef("block"))
	Label("done")
	r8 := hsum8(acc)
	r4 := hsum4(accm)
	VADDSS(r4, r8, r8)
	VZEROUPPER()
	Store(r8, ReturnIndex(0))
	RET()
}

// q6ScaleShuffle is get_scale_shuffle: entry i (16 bytes) is 2i eight
// times, then 2i+1 eight times.
func q6ScaleShuffle() Mem {
	b := make([]byte, 128)
	for i := 0; i < 8; i++ {
		for j := 0; j < 8; j++ {
			b[16*i+j] = byte(2 * i)
			b[16*i+8+j] = byte(2*i + 1)
		}
	}
	return constant("q6shuf", b)
}

// genDotQ6_K sums the unsigned 6-bit quants against y per lane (scaled by
// VPMADDWD with the sub-block scales) and takes the −32 offset off once per
// super-block from the bsums: lane k −= 32·(sc_2k·bsum_2k + sc_2k+1·bsum_2k+1).
func genDotQ6_K() {
	wp, xp, _, n := dotPrologue("dotQ6_KQ8_KAVX2", "dotQ6_KQ8_KAVX2 is dotQ6_KQ8_KGeneric.")
	shuf := q6ScaleShuffle()
	m4, m30 := YMM(), YMM()
	VMOVDQU(cBytes(0x0f), m4)
	VMOVDQU(cBytes(0x30), m30)
	acc := YMM()
	VXORPS(acc, acc, acc)
	TESTQ(n, n)
	JZ(LabelRef("done"))
	Label("block")

	r := GP32()
	s, yd := XMM(), XMM()
	MOVWLZX(Mem{Base: wp, Disp: 208}, r)
	VMOVD(r, s)
	VCVTPH2PS(s, s)
	VMOVSS(Mem{Base: xp}, yd)
	VMULSS(s, yd, s) // yd·d_w
	dv := YMM()
	VBROADCASTSS(s, dv)

	scales := XMM()
	VMOVDQU(Mem{Base: wp, Disp: 192}, scales)
	// sumi = −32·(sc_2k·bsum_2k + sc_2k+1·bsum_2k+1), lanes k < 8
	sumi := YMM()
	VPMOVSXBW(scales, sumi)
	VPMADDWD(Mem{Base: xp, Disp: 260}, sumi, sumi)
	VPSLLD(U8(5), sumi, sumi)
	z := YMM()
	VPXOR(z, z, z)
	VPSUBD(sumi, z, sumi)
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
			VPMADDUBSW(Mem{Base: xp, Disp: 4 + 128*h + 32*c}, q, q) // pairs ≤ 2·63·128: no saturation
			VPMADDWD(sv, q, q)
			VPADDD(q, sumi, sumi)
		}
	}
	accumulate(acc, sumi, dv)

	ADDQ(U32(210), wp)
	ADDQ(U32(292), xp)
	DECQ(n)
	JNZ(LabelRef("block"))
	Label("done")
	dotEpilogue(acc)
}

// ---- float dot products ---------------------------------------------------

// genDotFloat writes Σ w[i]·x[i] for n elements of w (F32, F16 or BF16 by
// name, size bytes each): four 8-lane FMA accumulators over 32 elements a
// step, then 8 at a time, then one at a time into a scalar.
func genDotFloat(name string, size int) {
	TEXT(name, NOSPLIT, "func(w []byte, x []float32, n int) float32")
	Pragma("noescape")
	Doc(name + " returns Σ_{i<n} w[i]·x[i] with fused multiply-adds (w holds n elements, x at least n).")
	wp := Load(Param("w").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("n"), GP64())
	load := func(off int, dst VecVirtual) { // 8 elements of w as floats
		m := Mem{Base: wp, Disp: off}
		switch name {
		case "dotF32AVX2":
			VMOVUPS(m, dst)
		case "dotF16AVX2":
			VCVTPH2PS(m, dst)
		case "dotBF16AVX2":
			VPMOVZXWD(m, dst)
			VPSLLD(U8(16), dst, dst)
		}
	}
	acc := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for _, a := range acc {
		VXORPS(a, a, a)
	}
	Label("loop32")
	CMPQ(n, U8(32))
	JL(LabelRef("loop8"))
	for i, a := range acc {
		t := YMM()
		load(8*size*i, t)
		VFMADD231PS(Mem{Base: xp, Disp: 32 * i}, t, a)
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
	VFMADD231PS(Mem{Base: xp}, t, acc[0])
	ADDQ(U32(8*size), wp)
	ADDQ(U8(32), xp)
	SUBQ(U8(8), n)
	JMP(LabelRef("loop8"))

	Label("reduce")
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	r := hsum8(acc[0])

	Label("tail")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	e := XMM()
	switch name {
	case "dotF32AVX2":
		VMOVSS(Mem{Base: wp}, e)
	case "dotF16AVX2":
		g := GP32()
		MOVWLZX(Mem{Base: wp}, g)
		VMOVD(g, e)
		VCVTPH2PS(e, e)
	case "dotBF16AVX2":
		g := GP32()
		MOVWLZX(Mem{Base: wp}, g)
		SHLL(U8(16), g)
		VMOVD(g, e)
	}
	VFMADD231SS(Mem{Base: xp}, e, r)
	ADDQ(U8(size), wp)
	ADDQ(U8(4), xp)
	DECQ(n)
	JMP(LabelRef("tail"))

	Label("done")
	VZEROUPPER()
	Store(r, ReturnIndex(0))
	RET()
}

// genAxpy writes dst[i] += a·x[i] for n elements of x (F32 or F16 by name,
// size bytes each), one fused multiply-add per element: 32 elements a
// step, then 8, then one at a time.
func genAxpy(name string, size int) {
	TEXT(name, NOSPLIT, "func(dst []float32, a float32, x []byte, n int)")
	Pragma("noescape")
	Doc(name + " computes dst[i] += a·x[i] for i < n with fused multiply-adds (x holds n elements, dst at least n).")
	dp := Load(Param("dst").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("n"), GP64())
	av := YMM()
	VBROADCASTSS(NewParamAddr("a", 24), av)
	load := func(off int, dst VecVirtual) {
		m := Mem{Base: xp, Disp: off}
		if size == 4 {
			VMOVUPS(m, dst)
		} else {
			VCVTPH2PS(m, dst)
		}
	}
	Label("loop32")
	CMPQ(n, U8(32))
	JL(LabelRef("loop8"))
	for i := 0; i < 4; i++ {
		t, d := YMM(), YMM()
		load(8*size*i, t)
		VMOVUPS(Mem{Base: dp, Disp: 32 * i}, d)
		VFMADD231PS(t, av, d)
		VMOVUPS(d, Mem{Base: dp, Disp: 32 * i})
	}
	ADDQ(U32(32*size), xp)
	ADDQ(U32(128), dp)
	SUBQ(U8(32), n)
	JMP(LabelRef("loop32"))

	Label("loop8")
	CMPQ(n, U8(8))
	JL(LabelRef("tail"))
	t, d := YMM(), YMM()
	load(0, t)
	VMOVUPS(Mem{Base: dp}, d)
	VFMADD231PS(t, av, d)
	VMOVUPS(d, Mem{Base: dp})
	ADDQ(U32(8*size), xp)
	ADDQ(U8(32), dp)
	SUBQ(U8(8), n)
	JMP(LabelRef("loop8"))

	Label("tail")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	e, ds := XMM(), XMM()
	if size == 4 {
		VMOVSS(Mem{Base: xp}, e)
	} else {
		g := GP32()
		MOVWLZX(Mem{Base: xp}, g)
		VMOVD(g, e)
		VCVTPH2PS(e, e)
	}
	VMOVSS(Mem{Base: dp}, ds)
	VFMADD231SS(e, av.AsX(), ds)
	VMOVSS(ds, Mem{Base: dp})
	ADDQ(U8(size), xp)
	ADDQ(U8(4), dp)
	DECQ(n)
	JMP(LabelRef("tail"))

	Label("done")
	VZEROUPPER()
	RET()
}
