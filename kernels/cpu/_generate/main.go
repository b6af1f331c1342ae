// Command _generate writes the amd64 assembly of package cpu with avo.
//
// It lives in its own module so that avo never becomes a dependency of
// Stoke. Run it through go generate in kernels/cpu (see gen.go there); each
// run writes one kernel family, selected by -family:
//
//	go run . -family dotq8 -out ../dotq8_amd64.s -stubs ../dotq8_stubs_amd64.go -pkg cpu
//
// Every kernel needs AVX2, FMA and F16C and uses only X0–X15/Y0–Y15 (no
// EVEX encodings), except those of the vnni family (vnni.go), which need
// AVX-512 (F, BW, VL, VNNI) and use all 32 vector registers, and the
// …AVXVNNI kernels, which need AVX-VNNI too (their VEX VPDPBUSD, which
// Go's assembler does not encode, goes out as bytes: encodeVEX); the Go
// side checks the CPU before calling any of them.
// The integer-activation kernels reproduce, operation for operation, the
// lane structure their pure-Go twins document (dotq8.go, dotk.go), so the
// two give identical bits; keep them in step.
//
// Most kernels come twice or more: the row kernel (one input) and the
// multi-input kernels of MatMul (…xN, N inputs at once), which one
// generator function writes from the same code, so each input of a
// multi-input kernel takes the row kernel's operations in its order. The
// families live in q4_0.go, legacy.go (Q8_0, Q4_1, Q5_0, Q5_1),
// kquant.go and float.go, the sparse FFN's kernels (prefetching and
// multi-row gathers, multi-row axpys) in axpy.go and gathervnni.go, SiLU and softmax's
// exponential in silu.go, attention's row kernels in attn.go, the
// kernels of the packed (sixteen rows interleaved) Q4_0 and Q8_0 layouts
// in q4x16.go, those of the packed Q4_K, Q5_K and Q6_K layouts in q4kx16.go
// and q6kx16.go; this file has the activation quantizers, the axpy kernels
// and the shared helpers.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

var family = flag.String("family", "", "kernel family to generate: q8act, dotq8, dotk, dotf, axpy, q4tile, vnni, q4x16, q4kx16, q5kx16, q6kx16, silu or attn")

func main() {
	flag.Parse()
	ConstraintExpr("amd64,!noasm,gc")
	switch *family {
	case "q8act":
		genQuantizeQ8_0()
		genQuantizeQ8_K()
	case "dotq8":
		for _, inputs := range []int{0, 2, 4, 8} {
			genDotQ4_0(inputs, false)
		}
		for _, inputs := range []int{0, 2} {
			genDotQ8_0(inputs)
			genDotQ4_1(inputs)
			genDotQ5_0(inputs)
			genDotQ5_1(inputs)
		}
	case "dotk":
		for _, inputs := range []int{0, 2, 4} {
			genDotK45(false, inputs)
			genDotK45(true, inputs)
			genDotQ6_K(inputs)
		}
	case "dotf":
		genDotFloat("dotF32AVX2", 4, false)
		genDotFloat("dotF16AVX2", 2, false)
		genDotFloat("dotBF16AVX2", 2, false)
		for _, inputs := range []int{2, 3} {
			genDotFloatMulti("dotF32", 4, inputs)
			genDotFloatMulti("dotF16", 2, inputs)
			genDotFloatMulti("dotBF16", 2, inputs)
		}
		genAxpy("axpyF32AVX2", 4)
		genAxpy("axpyF16AVX2", 2)
	case "q4tile":
		genDotQ4_0Tile()
	case "vnni":
		for _, inputs := range []int{0, 2, 4, 8} {
			genDotQ4_0VNNI(inputs, false)
		}
		genDotQ4_0VNNI(8, true)
		for _, ni := range []int{2, 4, 8} {
			genDotQ4_0VNNIRows2(ni, false)
		}
		genDotQ4_0VNNIRows2(8, true)
		genDotQ8_0VNNI(0)
		for _, inputs := range []int{2, 4, 8} {
			genDotQ8_0VNNIPairs(inputs)
		}
		for _, inputs := range []int{0, 2, 4} {
			genDotQ4_KVNNI(inputs)
			genDotQ6_KVNNI(inputs)
		}
		genDotQ4_0VNNIRows4()
	case "q4kx16":
		for _, ni := range []int{1, 2, 4, 8} {
			genQ4Kx16VNNI(ni)
		}
		for _, ni := range []int{1, 2, 4, 8} {
			genQ4Kx16AVX2(ni)
		}
		for _, ni := range []int{1, 2, 4, 8} {
			genK45x16AVX2(false, ni, true)
		}
	case "q5kx16":
		for _, ni := range []int{1, 2, 4, 8} {
			genQ5Kx16VNNI(ni)
		}
		for _, ni := range []int{1, 2, 4, 8} {
			genQ5Kx16AVX2(ni)
		}
		for _, ni := range []int{1, 2, 4, 8} {
			genK45x16AVX2(true, ni, true)
		}
	case "q6kx16":
		for _, ni := range []int{1, 2, 4, 8} {
			genQ6Kx16VNNI(ni)
		}
		for _, ni := range []int{1, 2, 4, 8} {
			genQ6Kx16AVX2(ni)
		}
	case "q4x16":
		for _, ni := range []int{1, 2, 4, 8} {
			genQ4x16VNNI(ni)
		}
		for _, ni := range []int{1, 2, 4, 8} {
			genQ8x16VNNI(ni)
		}
		for _, ni := range []int{1, 2, 4, 8} {
			genQ4x16AVX2(ni, false)
		}
		for _, ni := range []int{1, 2, 4, 8} {
			genQ4x16AVX2(ni, true)
		}
	case "silu":
		genSiLU()
		genExpSub()
	case "attn":
		genAttnScores()
		genAttnValues()
	case "axpy":
		genPrefetch()
		genDotFloat("dotF32pfAVX2", 4, true)
		genDotFloat("dotF16pfAVX2", 2, true)
		genDotFloat("dotBF16pfAVX2", 2, true)
		genDotQ4_0(0, true)
		genDotQ4_0Rows()
		genDotFloatRows("F32", 4)
		genDotFloatRows("F16", 2)
		genDotFloatRows("BF16", 2)
		for _, k := range axpyKinds {
			for _, rows := range []int{1, 4} {
				genAxpyRows(k, rows, false)
			}
		}
		for _, k := range axpyKinds {
			for _, rows := range []int{1, 4} {
				genAxpyRows(k, rows, true)
			}
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown -family %q\n", *family)
		os.Exit(2)
	}
	Generate()
	if err := encodeVEX(flag.Lookup("out").Value.String()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// encodeVEX rewrites, in the assembly file at path, every VPDPBUSDVEX
// placeholder (vpdpbusdVEX) as the bytes of AVX-VNNI's VPDPBUSD:
//
//	VEX.256.66.0F38.W0 50 /r: C4, [R̄ X̄ B̄ 00010], [0 v̄v̄v̄v̄ 1 01], 50, ModRM
//
// with Go's operand order (source, source, destination): the first, the
// signed bytes, is ModRM.rm, the second, the unsigned ones, VEX.vvvv, and
// the destination ModRM.reg. Only Y0–Y15 have a VEX encoding: a
// placeholder with any other operand fails the generation.
func encodeVEX(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	n := 0
	for i, l := range lines {
		f := strings.Fields(strings.ReplaceAll(l, ",", " "))
		if len(f) == 0 || f[0] != "VPDPBUSDVEX" {
			continue
		}
		var r [3]int
		if len(f) != 4 {
			return fmt.Errorf("%s: %q: want three Y registers", path, l)
		}
		for k, op := range f[1:] {
			v, err := strconv.Atoi(strings.TrimPrefix(op, "Y"))
			if err != nil || !strings.HasPrefix(op, "Y") || v > 15 {
				return fmt.Errorf("%s: %q: operand %q has no VEX encoding", path, l, op)
			}
			r[k] = v
		}
		rm, vvvv, reg := r[0], r[1], r[2]
		inv := func(bit int) byte { return byte(1 - bit) }
		b1 := inv(reg>>3)<<7 | 1<<6 | inv(rm>>3)<<5 | 0x02
		b2 := byte(^vvvv&0xf)<<3 | 1<<2 | 0x01
		modrm := 0xc0 | byte(reg&7)<<3 | byte(rm&7)
		indent := l[:len(l)-len(strings.TrimLeft(l, "\t "))]
		lines[i] = fmt.Sprintf("%sBYTE $0xc4; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x50; BYTE $0x%02x // VPDPBUSD %s, %s, %s (VEX)",
			indent, b1, b2, modrm, f[1], f[2], f[3])
		n++
	}
	if n == 0 {
		return nil
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
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
	return dotPrologueSig(name, doc, qSig)
}

// dotPrologueSig is dotPrologue for a kernel whose signature starts as
// qSig's.
func dotPrologueSig(name, doc, sig string) (wp, xp, dp, n Register) {
	TEXT(name, NOSPLIT, sig)
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

// ---- Q8_K-activation dot products ---------------------------------------

// kScales unpacks the 12 packed 6-bit scales and mins of a Q4_K/Q5_K block
// at sp into a YMM register of 16 words: sc0..sc7 in the low lane, m0..m7
// in the high lane.
func kScales(sp Mem, k kMasks) VecVirtual {
	a, b := kScalesGP(sp, k)
	xe, xd := XMM(), XMM()
	VMOVQ(a, xe)
	VMOVQ(b, xd)
	VPUNPCKLDQ(xd, xe, xe) // [sc0-3, sc4-7, m0-3, m4-7]
	sm := YMM()
	VPMOVZXBW(xe, sm)
	return sm
}

// kScalesGP is the general-register part of kScales: it returns the
// unpacked scales and mins as bytes, a = [sc0-3, m0-3] and b = [sc4-7,
// m4-7] (the first in the low byte).
func kScalesGP(sp Mem, k kMasks) (a, b GPVirtual) {
	a, b = GP64(), GP64()
	c := GP64()
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
	return a, b
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

// ---- float dot products ---------------------------------------------------

// genDotFloat writes Σ w[i]·x[i] for n elements of w (F32, F16 or BF16 by
// name, size bytes each): four 8-lane FMA accumulators over 32 elements a
// step, then 8 at a time, then one at a time into a scalar. With pf (the
// sparse kernels, axpy.go) the kernel takes a fourth argument, pf []byte,
// and prefetches it alongside w, the same offsets; the arithmetic is the
// same instructions.
func genDotFloat(name string, size int, pf bool) {
	typ := strings.TrimPrefix(strings.TrimSuffix(strings.TrimSuffix(name, "AVX2"), "pf"), "dot")
	if pf {
		TEXT(name, NOSPLIT, "func(w []byte, x []float32, n int, pf []byte) float32")
		Pragma("noescape")
		Doc(name + " is dot" + typ + "AVX2(w, x, n) that also prefetches the len(w) bytes at pf, as it reads w.")
	} else {
		TEXT(name, NOSPLIT, "func(w []byte, x []float32, n int) float32")
		Pragma("noescape")
		Doc(name + " returns Σ_{i<n} w[i]·x[i] with fused multiply-adds (w holds n elements, x at least n).")
	}
	wp := Load(Param("w").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("n"), GP64())
	var pfp GPVirtual
	if pf {
		pfp = GP64()
		Load(Param("pf").Base(), pfp)
	}
	load := func(off int, dst VecVirtual) { // 8 elements of w as floats
		m := Mem{Base: wp, Disp: off}
		switch typ {
		case "F32":
			VMOVUPS(m, dst)
		case "F16":
			VCVTPH2PS(m, dst)
		case "BF16":
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
	if pf {
		for l := 0; l < 32*size; l += 64 {
			PREFETCHT0(Mem{Base: pfp, Disp: l})
		}
		ADDQ(U32(32*size), pfp)
	}
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
	if pf { // the rest of pf, under 32 elements: once more each step of loop8
		for l := 0; l < 32*size; l += 64 {
			PREFETCHT0(Mem{Base: pfp, Disp: l})
		}
	}
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
	switch typ {
	case "F32":
		VMOVSS(Mem{Base: wp}, e)
	case "F16":
		g := GP32()
		MOVWLZX(Mem{Base: wp}, g)
		VMOVD(g, e)
		VCVTPH2PS(e, e)
	case "BF16":
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
