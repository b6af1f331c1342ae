package main

import (
	"encoding/binary"
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// ---- sparse kernels: multi-row axpy and prefetch ----------------------------

// The axpy family serves the sparse FFN (sparse.go, MatVecRows): a
// software prefetch of a byte range; for MatVecRows, the Q4_0 and float
// row kernels with prefetching (genDotQ4_0 and genDotFloat with pf, in
// q4_0.go and main.go) and a four-row Q4_0 kernel (genDotQ4_0Rows, below);
// and the row-accumulating kernels of AxpyRows, which add rows (1 or 4)
// of F32, F16, Q8_0 or Q4_0 weights, scaled, into dst in one pass,
//
//	dst[e] = fma(c[R−1], W_{R−1}[e], … fma(c[1], W_1[e], fma(c[0], W_0[e], dst[e])))
//
// (for Q8_0 and Q4_0, W_j[e]·c[j] is float32(q)·(c[j]·d) per block, q the
// quant, int8 or nibble − 8, the scale product rounded once), so that dst
// is loaded and stored once per R rows
// and each element takes the FMAs of R single-row axpys in row order. Row
// j starts at w + offs[j]; while they run the kernels prefetch the rows at
// w + offs[R+j], at the same offsets, so the next rows are on their way
// while these are summed: the rows of a sparse product are scattered and
// short, and the hardware prefetchers do not follow them.

const axpyRowsSig = "func(dst []float32, c []float32, w []byte, offs []int)"

// genPrefetch writes prefetchLines(b): PREFETCHT0 of every cache line that
// holds a byte of b.
func genPrefetch() {
	TEXT("prefetchLines", NOSPLIT, "func(b []byte)")
	Pragma("noescape")
	Doc("prefetchLines asks for every 64-byte cache line that holds a byte of b to be brought into the cache (PREFETCHT0); it reads nothing.")
	p := Load(Param("b").Base(), GP64())
	n := Load(Param("b").Len(), GP64())
	end := GP64()
	LEAQ(Mem{Base: p, Index: n, Scale: 1}, end)
	ANDQ(I8(-64), p)
	CMPQ(p, end)
	JAE(LabelRef("done"))
	Label("line")
	PREFETCHT0(Mem{Base: p})
	ADDQ(U8(64), p)
	CMPQ(p, end)
	JB(LabelRef("line"))
	Label("done")
	RET()
}

// axpyKind is the weight type of a row-accumulating kernel.
type axpyKind struct {
	name  string // F32, F16, Q8_0, Q4_0
	size  int    // bytes per element (F32, F16); 0 for the block types
	block int    // bytes per block of 32 elements (Q8_0, Q4_0)
}

var axpyKinds = []axpyKind{{"F32", 4, 0}, {"F16", 2, 0}, {"Q8_0", 0, 34}, {"Q4_0", 0, 18}}

// genAxpyRows writes axpy<kind>x<rows>AVX2 (axpyRowsSig): dst[e] += Σ_j
// c[j]·W_j[e] for e < len(dst), as described above. F32 and F16 rows go
// 32 elements a step, then 8, then one at a time; Q8_0 and Q4_0 rows a
// block (34 or 18 bytes, 32 elements) a step, len(dst) a multiple of 32.
//
// With z it writes axpy<kind>x<rows>AVX512, the same kernel with AVX-512
// (F) vectors of 16 floats in its 32-element steps: each element takes
// the AVX2 kernel's operations (the same products, the same fused
// multiply-adds, in row order), so the two give the same bits; they
// differ in how many instructions a block costs (genAxpyBlockBodyZ). On
// CPUs with full-width 512-bit units (the 2-core development machine, a
// Zen 5) a ZMM instruction costs what a YMM one does.
func genAxpyRows(k axpyKind, rows int, z bool) {
	isa := "AVX2"
	if z {
		isa = "AVX512"
	}
	name := fmt.Sprintf("axpy%sx%d%s", k.name, rows, isa)
	TEXT(name, NOSPLIT, axpyRowsSig)
	Pragma("noescape")
	unit := "elements"
	if k.size == 0 {
		unit = fmt.Sprintf("%s blocks (len(dst)/32 of them)", k.name)
	}
	if z {
		Doc(fmt.Sprintf("%s is axpy%sx%dAVX2 with AVX-512 vectors: the same operations on every element, so the same bits.", name, k.name, rows))
	} else {
		Doc(fmt.Sprintf("%s adds c[j]·W_j to dst for j < %d, W_j the len(dst) %s at w[offs[j]:], with fused multiply-adds in row order; it prefetches the rows at w[offs[%d+j]:].", name, rows, unit, rows))
	}
	dp := Load(Param("dst").Base(), GP64())
	n := Load(Param("dst").Len(), GP64())
	cp := Load(Param("c").Base(), GP64())
	wb := Load(Param("w").Base(), GP64())
	op := Load(Param("offs").Base(), GP64())
	r := make([]GPVirtual, rows) // the rows
	p := make([]GPVirtual, rows) // the rows to prefetch
	for j := range rows {
		r[j], p[j] = GP64(), GP64()
		MOVQ(Mem{Base: op, Disp: 8 * j}, r[j])
		ADDQ(wb, r[j])
		MOVQ(Mem{Base: op, Disp: 8 * (rows + j)}, p[j])
		ADDQ(wb, p[j])
	}
	o := GP64() // byte offset in the rows
	XORQ(o, o)
	switch {
	case k.size == 0 && z:
		genAxpyBlockBodyZ(k, dp, n, cp, r, p, o)
	case k.size == 0:
		genAxpyBlockBody(k, dp, n, cp, r, p, o)
	default:
		genAxpyFloatBody(k.size, z, dp, n, cp, r, p, o)
	}
	Label("done")
	VZEROUPPER()
	RET()
}

// genAxpyFloatBody adds F32 or F16 rows (size 4 or 2 bytes an element):
// 32 elements a step in four YMM or (z) two ZMM accumulators, then 8 in
// one YMM, then one at a time.
func genAxpyFloatBody(size int, z bool, dp, n, cp Register, r, p []GPVirtual, o Register) {
	cv := make([]VecVirtual, len(r))
	for j := range r {
		if z {
			cv[j] = ZMM()
		} else {
			cv[j] = YMM()
		}
		VBROADCASTSS(Mem{Base: cp, Disp: 4 * j}, cv[j])
	}
	vec, lanes := YMM, 8 // the 32-element step's vectors
	if z {
		vec, lanes = ZMM, 16
	}
	load := func(m Mem, dst VecVirtual) {
		if size == 4 {
			VMOVUPS(m, dst)
		} else {
			VCVTPH2PS(m, dst)
		}
	}
	Label("loop32")
	CMPQ(n, U8(32))
	JL(LabelRef("loop8"))
	d := make([]VecVirtual, 32/lanes)
	for i := range d {
		d[i] = vec()
		VMOVUPS(Mem{Base: dp, Disp: 4 * lanes * i}, d[i])
	}
	for j := range r {
		for l := 0; l < 32*size; l += 64 {
			PREFETCHT0(Mem{Base: p[j], Index: o, Scale: 1, Disp: l})
		}
		for i, v := range d {
			t := vec()
			load(Mem{Base: r[j], Index: o, Scale: 1, Disp: lanes * size * i}, t)
			VFMADD231PS(t, cv[j], v)
		}
	}
	for i, v := range d {
		VMOVUPS(v, Mem{Base: dp, Disp: 4 * lanes * i})
	}
	ADDQ(U32(32*size), o)
	ADDQ(U32(128), dp)
	SUBQ(U8(32), n)
	JMP(LabelRef("loop32"))

	Label("loop8")
	CMPQ(n, U8(8))
	JL(LabelRef("tail"))
	v := YMM()
	VMOVUPS(Mem{Base: dp}, v)
	for j := range r {
		t := YMM()
		load(Mem{Base: r[j], Index: o, Scale: 1}, t)
		VFMADD231PS(t, cv[j].AsY(), v)
	}
	VMOVUPS(v, Mem{Base: dp})
	ADDQ(U32(8*size), o)
	ADDQ(U8(32), dp)
	SUBQ(U8(8), n)
	JMP(LabelRef("loop8"))

	Label("tail")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	s := XMM()
	VMOVSS(Mem{Base: dp}, s)
	for j := range r {
		e := XMM()
		if size == 4 {
			VMOVSS(Mem{Base: r[j], Index: o, Scale: 1}, e)
		} else {
			g := GP32()
			MOVWLZX(Mem{Base: r[j], Index: o, Scale: 1}, g)
			VMOVD(g, e)
			VCVTPH2PS(e, e)
		}
		VFMADD231SS(e, cv[j].AsX(), s)
	}
	VMOVSS(s, Mem{Base: dp})
	ADDQ(U8(size), o)
	ADDQ(U8(4), dp)
	DECQ(n)
	JMP(LabelRef("tail"))
}

// genAxpyBlockBody adds Q8_0 or Q4_0 rows, a block of 32 elements a
// step. With four rows, the four scales of a block are widened and
// multiplied by c in one vector, then broadcast row by row (VPERMPS),
// which leaves more of the vector pipes to the conversions of the quants;
// the products are the same.
//
// A Q8_0 block's quants (int8) are widened to dwords eight at a time
// (VPMOVSXBD). A Q4_0 block's 16 bytes of nibbles are widened eight bytes
// at a time (VPMOVZXBD), bytes 0–7 and 8–15, and each such vector gives
// two: its low nibbles (VPAND 15; elements 0–7 and 8–15) and its high
// ones (VPSRLD 4, the byte having been zero-extended; elements 16–23 and
// 24–31); 8 comes off as integers (VPSUBD), which leaves q − 8 exact for
// the conversion.
func genAxpyBlockBody(k axpyKind, dp, n, cp Register, r, p []GPVirtual, o Register) {
	four := len(r) == 4
	q4 := k.name == "Q4_0"
	c := make([]VecVirtual, len(r))
	var cv VecVirtual
	var lane []VecVirtual // lane j of a vector in every lane, j ≥ 1
	if four {
		cv = XMM()
		VMOVUPS(Mem{Base: cp}, cv)
		for j := 1; j < 4; j++ {
			l := YMM()
			VMOVDQU(constant(fmt.Sprintf("lane%d", j), dwords32(uint32(j))), l)
			lane = append(lane, l)
		}
	} else {
		for j := range r {
			c[j] = XMM()
			VMOVSS(Mem{Base: cp, Disp: 4 * j}, c[j])
		}
	}
	var m15, eight VecVirtual // Q4_0: dwords 15 and 8
	if q4 {
		m15, eight = YMM(), YMM()
		VMOVDQU(cDwords(15), m15)
		VMOVDQU(cDwords(8), eight)
	}
	SHRQ(U8(5), n) // blocks
	JZ(LabelRef("done"))
	Label("block")
	d := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for i, v := range d {
		VMOVUPS(Mem{Base: dp, Disp: 32 * i}, v)
	}
	var sv VecVirtual // four: c[j]·d_j in lane j
	if four {
		h, t := GP64(), GP64()
		MOVWQZX(Mem{Base: r[0], Index: o, Scale: 1}, h)
		for j := 1; j < 4; j++ {
			MOVWQZX(Mem{Base: r[j], Index: o, Scale: 1}, t)
			SHLQ(U8(16*j), t)
			ORQ(t, h)
		}
		sv = XMM()
		VMOVQ(h, sv)
		VCVTPH2PS(sv, sv)
		VMULPS(cv, sv, sv) // s_j = c_j·d_j, as the twin rounds it
	}
	for j := range r {
		PREFETCHT0(Mem{Base: p[j], Index: o, Scale: 1})
		s := YMM()
		switch {
		case four && j == 0:
			VBROADCASTSS(sv, s)
		case four:
			VPERMPS(sv.AsY(), lane[j-1], s)
		default:
			g := GP32()
			MOVWLZX(Mem{Base: r[j], Index: o, Scale: 1}, g)
			sx := XMM()
			VMOVD(g, sx)
			VCVTPH2PS(sx, sx)
			VMULSS(c[j], sx, sx) // s = c·d, as the twin rounds it
			VBROADCASTSS(sx, s)
		}
		if !q4 {
			for i, v := range d {
				t := YMM()
				VPMOVSXBD(Mem{Base: r[j], Index: o, Scale: 1, Disp: 2 + 8*i}, t)
				VCVTDQ2PS(t, t)
				VFMADD231PS(t, s, v)
			}
			continue
		}
		for h := range 2 { // bytes 8h to 8h+7: elements 8h… and 16+8h…
			x := YMM()
			VPMOVZXBD(Mem{Base: r[j], Index: o, Scale: 1, Disp: 2 + 8*h}, x)
			lo, hi := YMM(), YMM()
			VPAND(m15, x, lo)
			VPSRLD(U8(4), x, hi)
			for i, t := range []VecVirtual{lo, hi} {
				VPSUBD(eight, t, t)
				VCVTDQ2PS(t, t)
				VFMADD231PS(t, s, d[h+2*i])
			}
		}
	}
	for i, v := range d {
		VMOVUPS(v, Mem{Base: dp, Disp: 32 * i})
	}
	ADDQ(U8(k.block), o)
	ADDQ(U32(128), dp)
	DECQ(n)
	JNZ(LabelRef("block"))
}

// genDotQ4_0Rows writes dotQ4_0Q8_0r4AVX2, the Q4_0 row kernel (q4_0.go)
// for four rows of w against one input: row j at w + offs[j], result in
// dst[j]. Each row has its own accumulator, which takes the row kernel's
// operations in the row kernel's order, so dst[j] is the row kernel's bits
// for row j; what the four rows share is the time their loads are in
// flight: a gather mat-vec's rows are short and scattered, and one row
// at a time leaves the memory system idle between them. While they run,
// the rows at w + offs[4+j] are prefetched at the same offsets.
func genDotQ4_0Rows() {
	const rows = 4
	name := "dotQ4_0Q8_0r4AVX2"
	TEXT(name, NOSPLIT, "func(w []byte, offs []int, x []byte, d []float32, nb int, dst []float32)")
	Pragma("noescape")
	Doc(name + " computes dst[j] = dotQ4_0Q8_0AVX2(w[offs[j]:], x, d, nb) for j < 4, prefetching the rows at w[offs[4+j]:] as it reads them.")
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
	c := newQ4Consts(false)
	acc := make([]VecVirtual, rows)
	for j := range acc {
		acc[j] = YMM()
		VXORPS(acc[j], acc[j], acc[j])
	}
	quad := func(k, count int) {
		for j := range rows {
			dw := q4Scales(r[j], 72*k, count, c)
			q := q4Decode(Mem{Base: r[j], Disp: 72 * k}, count, c)
			q4Input(q, Mem{Base: xp, Disp: q4QuadBytes * k}, dw, acc[j], c)
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
	Label("quad2")
	CMPQ(n, U8(8))
	JL(LabelRef("quad1"))
	prefetch()
	quad(0, 4)
	quad(1, 4)
	advance(144)
	ADDQ(U32(2*q4QuadBytes), xp)
	SUBQ(U8(8), n)
	JMP(LabelRef("quad2"))

	Label("quad1")
	prefetch() // the rest of the rows to prefetch, under 144 bytes
	CMPQ(n, U8(4))
	JL(LabelRef("tail"))
	quad(0, 4)
	advance(72)
	ADDQ(U32(q4QuadBytes), xp)
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
	dst := Load(Param("dst").Base(), GP64())
	for j, a := range acc {
		VMOVSS(hsum8(a), Mem{Base: dst, Disp: 4 * j})
	}
	VZEROUPPER()
	RET()
}

// genDotFloatRows writes dot<typ>r2AVX2, genDotFloat's kernel (main.go)
// for two rows of w against one x: row j at w + offs[j], result in dst[j],
// each row with genDotFloat's four accumulators taking its operations in
// its order (so dst[j] is the row kernel's bits), the two rows' loads in
// flight together; the rows at w + offs[2+j] are prefetched meanwhile.
func genDotFloatRows(typ string, size int) {
	const rows = 2
	name := "dot" + typ + "r2AVX2"
	TEXT(name, NOSPLIT, "func(w []byte, offs []int, x []float32, n int, dst []float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes dst[j] = dot%sAVX2(w[offs[j]:], x, n) for j < 2, prefetching the rows at w[offs[2+j]:] as it reads them.", name, typ))
	wb := Load(Param("w").Base(), GP64())
	op := Load(Param("offs").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("n"), GP64())
	r := make([]GPVirtual, rows)
	p := make([]GPVirtual, rows)
	for j := range rows {
		r[j], p[j] = GP64(), GP64()
		MOVQ(Mem{Base: op, Disp: 8 * j}, r[j])
		ADDQ(wb, r[j])
		MOVQ(Mem{Base: op, Disp: 8 * (rows + j)}, p[j])
		ADDQ(wb, p[j])
	}
	load := func(m Mem, dst VecVirtual) { // 8 elements as floats
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
	acc := make([][]VecVirtual, rows)
	for j := range acc {
		acc[j] = []VecVirtual{YMM(), YMM(), YMM(), YMM()}
		for _, a := range acc[j] {
			VXORPS(a, a, a)
		}
	}
	Label("loop32")
	CMPQ(n, U8(32))
	JL(LabelRef("loop8"))
	for j := range rows {
		for l := 0; l < 32*size; l += 64 {
			PREFETCHT0(Mem{Base: p[j], Disp: l})
		}
		ADDQ(U32(32*size), p[j])
	}
	for i := 0; i < 4; i++ {
		for j := range rows {
			t := YMM()
			load(Mem{Base: r[j], Disp: 8 * size * i}, t)
			VFMADD231PS(Mem{Base: xp, Disp: 32 * i}, t, acc[j][i])
		}
	}
	for j := range rows {
		ADDQ(U32(32*size), r[j])
	}
	ADDQ(U32(128), xp)
	SUBQ(U8(32), n)
	JMP(LabelRef("loop32"))

	Label("loop8")
	for j := range rows { // the rest of the rows to prefetch, under 32 elements
		for l := 0; l < 32*size; l += 64 {
			PREFETCHT0(Mem{Base: p[j], Disp: l})
		}
	}
	CMPQ(n, U8(8))
	JL(LabelRef("reduce"))
	for j := range rows {
		t := YMM()
		load(Mem{Base: r[j]}, t)
		VFMADD231PS(Mem{Base: xp}, t, acc[j][0])
		ADDQ(U32(8*size), r[j])
	}
	ADDQ(U8(32), xp)
	SUBQ(U8(8), n)
	JMP(LabelRef("loop8"))

	Label("reduce")
	res := make([]VecVirtual, rows)
	for j, a := range acc {
		VADDPS(a[1], a[0], a[0])
		VADDPS(a[3], a[2], a[2])
		VADDPS(a[2], a[0], a[0])
		res[j] = hsum8(a[0])
	}

	Label("tail")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	for j := range rows {
		e := XMM()
		switch typ {
		case "F32":
			VMOVSS(Mem{Base: r[j]}, e)
		case "F16":
			g := GP32()
			MOVWLZX(Mem{Base: r[j]}, g)
			VMOVD(g, e)
			VCVTPH2PS(e, e)
		case "BF16":
			g := GP32()
			MOVWLZX(Mem{Base: r[j]}, g)
			SHLL(U8(16), g)
			VMOVD(g, e)
		}
		VFMADD231SS(Mem{Base: xp}, e, res[j])
		ADDQ(U8(size), r[j])
	}
	ADDQ(U8(4), xp)
	DECQ(n)
	JMP(LabelRef("tail"))

	Label("done")
	dst := Load(Param("dst").Base(), GP64())
	for j := range rows {
		VMOVSS(res[j], Mem{Base: dst, Disp: 4 * j})
	}
	VZEROUPPER()
	RET()
}

// genAxpyBlockBodyZ is genAxpyBlockBody with AVX-512: a block's 32
// elements are two ZMM accumulators, and each row's block costs six
// vector instructions where the AVX2 kernel needs twelve (Q8_0) or
// eighteen (Q4_0):
//
//   - Q8_0: the quants widened sixteen at a time (VPMOVSXBD) and
//     converted (VCVTDQ2PS), as in the AVX2 kernel;
//   - Q4_0: the 16 bytes of nibbles widened to dwords at once (VPMOVZXBD)
//     index a table of the sixteen values float32(q − 8) with VPERMPS,
//     which reads the low four bits of each index: as they are they give
//     the low nibbles (elements 0–15), shifted right by 4 (VPSRLD) the
//     high ones (16–31). The table gives exactly what the AVX2 kernel's
//     subtract and convert give.
//
// The products are then the AVX2 kernel's fused multiply-adds by s =
// c[j]·d (rounded once); with four rows the four s are computed in one
// vector, as there, and broadcast row by row (VPERMPS). (Storing them to
// the frame for the FMAs' embedded broadcasts instead was 20% slower for
// Q8_0 on the development machine: each block's loads wait on its store.)
func genAxpyBlockBodyZ(k axpyKind, dp, n, cp Register, r, p []GPVirtual, o Register) {
	four := len(r) == 4
	q4 := k.name == "Q4_0"
	var cv VecVirtual
	var lane []VecVirtual // lane j of a vector in every lane
	if four {
		cv = XMM()
		VMOVUPS(Mem{Base: cp}, cv)
		for j := 0; j < 4; j++ {
			l := ZMM()
			VPBROADCASTD(constant(fmt.Sprintf("lane%d", j), dwords32(uint32(j))).Offset(0), l)
			lane = append(lane, l)
		}
	} else {
		cv = XMM()
		VMOVSS(Mem{Base: cp}, cv)
	}
	var tab VecVirtual // Q4_0: float32(q − 8) in lane q
	if q4 {
		b := make([]byte, 64)
		for q := range 16 {
			binary.LittleEndian.PutUint32(b[4*q:], math.Float32bits(float32(q-8)))
		}
		tab = ZMM()
		VMOVUPS(constant("q4m8f", b), tab)
	}
	SHRQ(U8(5), n) // blocks
	JZ(LabelRef("done"))
	Label("block")
	d := []VecVirtual{ZMM(), ZMM()}
	for i, v := range d {
		VMOVUPS(Mem{Base: dp, Disp: 64 * i}, v)
	}
	var sz VecVirtual // one row: s in every lane
	var sj [4]VecVirtual
	if four {
		h, t := GP64(), GP64()
		MOVWQZX(Mem{Base: r[0], Index: o, Scale: 1}, h)
		for j := 1; j < 4; j++ {
			MOVWQZX(Mem{Base: r[j], Index: o, Scale: 1}, t)
			SHLQ(U8(16*j), t)
			ORQ(t, h)
		}
		sv := XMM()
		VMOVQ(h, sv)
		VCVTPH2PS(sv, sv)
		VMULPS(cv, sv, sv) // s_j = c_j·d_j, as the twin rounds it
		for j := range 4 {
			sj[j] = ZMM()
			VPERMPS(sv.AsZ(), lane[j], sj[j])
		}
	} else {
		g := GP32()
		MOVWLZX(Mem{Base: r[0], Index: o, Scale: 1}, g)
		sx := XMM()
		VMOVD(g, sx)
		VCVTPH2PS(sx, sx)
		VMULSS(cv, sx, sx) // s = c·d, as the twin rounds it
		sz = ZMM()
		VBROADCASTSS(sx, sz)
	}
	for j := range r {
		PREFETCHT0(Mem{Base: p[j], Index: o, Scale: 1})
		fma := func(t, acc VecVirtual) { // acc += t·s_j
			if four {
				VFMADD231PS(sj[j], t, acc)
			} else {
				VFMADD231PS(sz, t, acc)
			}
		}
		if !q4 {
			for i, v := range d {
				t := ZMM()
				VPMOVSXBD(Mem{Base: r[j], Index: o, Scale: 1, Disp: 2 + 16*i}, t)
				VCVTDQ2PS(t, t)
				fma(t, v)
			}
			continue
		}
		x, lo, hi := ZMM(), ZMM(), ZMM()
		VPMOVZXBD(Mem{Base: r[j], Index: o, Scale: 1, Disp: 2}, x)
		VPERMPS(tab, x, lo)
		fma(lo, d[0])
		VPSRLD(U8(4), x, x)
		VPERMPS(tab, x, hi)
		fma(hi, d[1])
	}
	for i, v := range d {
		VMOVUPS(v, Mem{Base: dp, Disp: 64 * i})
	}
	ADDQ(U8(k.block), o)
	ADDQ(U32(128), dp)
	DECQ(n)
	JNZ(LabelRef("block"))
}
