package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// ---- packed Q6_K (q6kx16.go) --------------------------------------------
//
// The packed Q6_K kernels dot sixteen Q6_K rows, interleaved by
// PackQ6Kx16, with one, two, four or eight Q8_K inputs at once, one row
// per dword lane. Element 128h + 32t + l of a super-block (h < 2, t < 4,
// l < 32) has the 6-bit quant q = nibble | ((qh >> 2t) & 3) << 4, the
// nibble low (t < 2) or high (t ≥ 2) in ql byte 64h + 32(t&1) + l, the
// high bits in qh byte 32h + l; for the four-byte column c = l/4 of every
// row these are the 64-byte ql vector 16h + 8(t&1) + c and qh vector
// 8h + c of the unit, and bits 2t, 2t+1 of each qh byte move to bits 4, 5
// by one word shift (left by 4 − 2t, or right by 2 for t = 3) and a mask
// of 0x30 (the bits a word shift carries across bytes fall outside it).
// For the sixteen-element sub-block k = 8h + 2t + l/16, four VPDPBUSD of
// q against the input's quants, broadcast four at a time, started from
// the input's −32·bs_k (the layout stores it), leave in lane r the exact
// Σ_e (q − 32)·y; a VPMULLD by the rows' signed scales sc_k (one plane,
// sign-extended) and a VPADDD add it to I. The float step is the pure-Go
// twin's (dotQ6Kx16Generic), lane for lane: acc += float32(I)·(d_r·d_y).

// genQ6Kx16VNNI writes dotQ6Kx16x{ni}VNNI: the sixteen rows of one packed
// Q6_K group at w (nb super-block units of 3360 bytes) against the ni
// inputs at x (q6kx16Put's layout, 324·ni bytes per super-block), input
// j's sixteen results to dst[j·stride : j·stride+16].
func genQ6Kx16VNNI(ni int) {
	const unit = 3360
	in := 324 * ni
	name := fmt.Sprintf("dotQ6Kx16x%dVNNI", ni)
	TEXT(name, NOSPLIT, "func(w, x []byte, nb, stride int, dst []float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is dotQ6Kx16Generic for %d input(s) with AVX-512 VNNI.", name, ni))
	wp := Load(Param("w").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("nb"), GP64())
	stride := Load(Param("stride"), GP64())
	dst := Load(Param("dst").Base(), GP64())
	m0f, m30 := ZMM(), ZMM()
	VMOVDQU64(q4x16Mask(), m0f)
	VPBROADCASTD(q6kx16Bits(), m30)
	acc := make([]VecVirtual, ni)
	for j := range acc {
		acc[j] = zeroVec(true)
	}
	loop, done := fmt.Sprintf("q6kx16x%dblock", ni), fmt.Sprintf("q6kx16x%ddone", ni)
	TESTQ(n, n)
	JZ(LabelRef(done))
	Label(loop)
	// Two units on: the groups of a chunk lie one after another.
	for l := 0; l < unit; l += 64 {
		PREFETCHT0(Mem{Base: wp, Disp: 2*unit + l})
	}
	I := make([]VecVirtual, ni)
	S := make([]VecVirtual, ni)
	for j := range ni {
		I[j] = zeroVec(true)
	}
	for h := range 2 {
		for t := range 4 {
			for is := range 2 {
				k := 8*h + 2*t + is
				for j := range ni {
					S[j] = ZMM()
					VPBROADCASTD(Mem{Base: xp, Disp: 256*ni + 64*j + 4*k}, S[j])
				}
				for c := 4 * is; c < 4*is+4; c++ {
					ql := Mem{Base: wp, Disp: 288 + 64*(16*h+8*(t&1)+c)}
					qh := Mem{Base: wp, Disp: 2336 + 64*(8*h+c)}
					q, hb := ZMM(), ZMM()
					if t < 2 {
						VPANDD(ql, m0f, q)
					} else {
						VPSRLW(U8(4), ql, q)
						VPANDD(m0f, q, q)
					}
					switch t {
					case 0:
						VPSLLW(U8(4), qh, hb)
						VPANDD(m30, hb, hb)
					case 1:
						VPSLLW(U8(2), qh, hb)
						VPANDD(m30, hb, hb)
					case 2:
						VPANDD(qh, m30, hb)
					default:
						VPSRLW(U8(2), qh, hb)
						VPANDD(m30, hb, hb)
					}
					VPORD(hb, q, q)
					for j := range ni {
						vpdpbusdBcst(Mem{Base: xp, Disp: 256*j + 128*h + 32*t + 4*c}, q, S[j])
					}
				}
				sc := ZMM()
				VPMOVSXBD(Mem{Base: wp, Disp: 32 + 16*k}, sc)
				for j := range ni {
					VPMULLD(sc, S[j], S[j])
					VPADDD(S[j], I[j], I[j])
				}
			}
		}
	}
	dw := ZMM()
	VCVTPH2PS(Mem{Base: wp}, dw)
	for j := range ni {
		d := ZMM()
		VMULPS_BCST(Mem{Base: xp, Disp: 320*ni + 4*j}, dw, d)
		VCVTDQ2PS(I[j], I[j])
		VMULPS(d, I[j], I[j])
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

// q6kx16Bits is the dword 0x30303030: bits 4 and 5 of every byte.
func q6kx16Bits() Mem {
	const name = "q6kx16bits"
	if m, ok := consts[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	DATA(0, U32(0x30303030))
	consts[name] = m
	return m
}

// genQ6Kx16AVX2 writes dotQ6Kx16x{ni}AVX2, genQ6Kx16VNNI's kernel for
// CPUs without AVX-512: the same arguments, the same bits. As in
// genQ4x16AVX2 a 256-bit register holds eight dword lanes, so a group is
// two halves of eight rows, half hf the bytes [32hf, 32hf+32) of every
// 64-byte vector and the scales of rows 8hf…8hf+7, and a VPMADDUBSW (q
// unsigned, the input's four quants y, broadcast, signed) takes the place
// of VPDPBUSD: it leaves two words in each lane, each q·y + q'·y' and so
// at most 2·63·128 = 16128 in magnitude. Two such results add up in int16
// (at most 32256 < 2¹⁵: the words are exact; a third could wrap), so the
// four columns of a sub-block go by pairs, each VPMADDUBSW, VPMADDUBSW,
// VPADDW and a VPMADDWD by words of 1 that makes the lane's int32 sum of
// eight products. The two pairs' sums and the input's −32·bs_k (the
// layout stores it; broadcast) make the exact Σ_e (q − 32)·y of the
// sub-block, which a VPMULLD by the rows' scales sc_k (VPMOVSXBD of the
// half's eight bytes of plane k) and a VPADDD add to I. Integer sums are
// exact in any order and |I| < 2³¹, so I is the twin's; the float step is
// genQ6Kx16VNNI's, lane for lane: float32(I)·(d_r·d_y), then acc +=,
// each one rounding, no FMA.
//
// The decoding is the dear part: a quant vector takes a nibble and two
// high bits from two vectors (the ql and qh vectors of genQ6Kx16VNNI),
// seventeen vector operations besides the loads for the four t of a
// column, 34 for a sub-block's eight vectors, where an input's integer
// work on them is 24 (eight VPMADDUBSW, four VPADDW, four VPMADDWD, two
// VPMULLD, six VPADDD). So the loop goes by sub-block, each decoded once
// into eight registers (four columns, two halves), and every input then
// takes them in turn: it broadcasts each column's quants once for both
// halves and needs six registers (two broadcasts, two products, a sum by
// half), fifteen with the words of 1. What does not fit stays in the frame: I, one VPADDD
// from memory and a store per input, half and sub-block; the float
// accumulators; and, from two inputs, the sub-block's scales,
// sign-extended once for all of them. On the 2-core Zen 5 machine (one
// thread, the group in L1) that is 48, 61, 76 and 91 GMAC/s for one, two,
// four and eight inputs, about four fifths of the bound of the four
// vector pipes (two of which take every multiply), where the VNNI
// kernels make 78, 110, 156 and 205. Scaling by VPMADDWD with words
// (sc_k, sc_k) instead of words of 1, and adding Σ_k sc_k·(−32·bs_k)
// once a super-block by VPMADDWD of scale pairs with bs pairs, saves the
// VPMULLD and VPADDD of the bias but was no faster (1–3% slower).
//
// The sixteen sub-blocks written out made loops of tens of kilobytes of
// code, past what the front end caches (four inputs ran at 66 GMAC/s):
// the loop goes by (h, is), the four t written out (each its own
// shifts), which took four inputs to 76 and left the others as they were.
func genQ6Kx16AVX2(ni int) {
	const unit = 3360
	in := 324 * ni
	name := fmt.Sprintf("dotQ6Kx16x%dAVX2", ni)
	// The frame: the float accumulators and I, by input and half; from
	// two inputs, the sub-block's sign-extended scales, by half.
	accOff, iOff, scOff := 0, 64*ni, 128*ni
	scMem := ni > 1
	size := scOff
	if scMem {
		size += 64
	}
	flags := NOSPLIT
	if size > 512 {
		// Past what a chain of NOSPLIT functions may take (with the ABI
		// wrapper of a call through a func value): the kernel takes the
		// stack check of any Go function.
		flags = 0
	}
	TEXT(name, flags, "func(w, x []byte, nb, stride int, dst []float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is dotQ6Kx16Generic for %d input(s) with AVX2.", name, ni))
	wp := Load(Param("w").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("nb"), GP64())
	stride := Load(Param("stride"), GP64())
	dst := Load(Param("dst").Base(), GP64())
	frame := AllocLocal(size)
	accSlot := func(j, hf int) Mem { return frame.Offset(accOff + 32*(2*j+hf)) }
	iSlot := func(j, hf int) Mem { return frame.Offset(iOff + 32*(2*j+hf)) }
	scSlot := func(hf int) Mem { return frame.Offset(scOff + 32*hf) }
	z := YMM()
	VXORPS(z, z, z)
	for i := range 2 * ni {
		VMOVUPS(z, accSlot(i/2, i%2))
	}
	loop, done := fmt.Sprintf("q6kx16x%davx2block", ni), fmt.Sprintf("q6kx16x%davx2done", ni)
	sub := fmt.Sprintf("q6kx16x%davx2sub", ni)
	odd, next := fmt.Sprintf("q6kx16x%davx2odd", ni), fmt.Sprintf("q6kx16x%davx2next", ni)
	TESTQ(n, n)
	JZ(LabelRef(done))
	Label(loop)
	// The VNNI kernels' prefetch, two units on.
	for l := 0; l < unit; l += 64 {
		PREFETCHT0(Mem{Base: wp, Disp: 2*unit + l})
	}
	zi := YMM()
	VPXOR(zi, zi, zi)
	for i := range 2 * ni {
		VMOVDQU(zi, iSlot(i/2, i%2))
	}
	// Sub-block k = 8h + 2t + is, the loop going by (h, is) = (0, 0),
	// (0, 1), (1, 0), (1, 1) and t written out: its ql vectors are
	// 16h + 8(t&1) + 4is + c (c < 4), at qlp + 64(8(t&1) + c); its qh
	// vectors 8h + 4is + c, at qhp + 64c; its scales at scp + 32t; input
	// j's quants at yp + 256j + 32t + 4c and its −32·bs_k at
	// bp + 64j + 8t.
	qlp, qhp, scp, yp, bp, cnt := GP64(), GP64(), GP64(), GP64(), GP64(), GP64()
	LEAQ(Mem{Base: wp, Disp: 288}, qlp)
	LEAQ(Mem{Base: wp, Disp: 2336}, qhp)
	LEAQ(Mem{Base: wp, Disp: 32}, scp)
	MOVQ(xp, yp)
	LEAQ(Mem{Base: xp, Disp: 256 * ni}, bp)
	MOVQ(U32(4), cnt)
	Label(sub)
	for t := range 4 {
		// The constants are loaded again for every sub-block, so that
		// the nibble mask and the 0x30s leave their registers to the
		// inputs once the quants are decoded.
		m0f, m30, ones := YMM(), YMM(), YMM()
		VMOVDQU(q4x16Mask(), m0f)
		VMOVDQU(cBytes(0x30), m30)
		VMOVDQU(cWords(1), ones)
		// q[c][hf]: column c of half hf, nibble | ((qh >> 2t) & 3) << 4,
		// by genQ6Kx16VNNI's shifts and masks.
		var q [4][2]VecVirtual
		for c := range 4 {
			for hf := range 2 {
				ql := Mem{Base: qlp, Disp: 64*(8*(t&1)+c) + 32*hf}
				qh := Mem{Base: qhp, Disp: 64*c + 32*hf}
				v, hb := YMM(), YMM()
				if t < 2 {
					VPAND(ql, m0f, v)
				} else {
					VMOVDQU(ql, v)
					VPSRLW(U8(4), v, v)
					VPAND(m0f, v, v)
				}
				if t == 2 {
					VPAND(qh, m30, hb)
				} else {
					VMOVDQU(qh, hb)
					switch t {
					case 0:
						VPSLLW(U8(4), hb, hb)
					case 1:
						VPSLLW(U8(2), hb, hb)
					default:
						VPSRLW(U8(2), hb, hb)
					}
					VPAND(m30, hb, hb)
				}
				VPOR(hb, v, v)
				q[c][hf] = v
			}
		}
		if scMem {
			for hf := range 2 {
				s := YMM()
				VPMOVSXBD(Mem{Base: scp, Disp: 32*t + 8*hf}, s)
				VMOVDQU(s, scSlot(hf))
			}
		}
		for j := range ni {
			var S [2]VecVirtual // by half
			for m := range 2 {  // columns 2m, 2m+1
				y := [2]VecVirtual{YMM(), YMM()}
				for i := range 2 {
					VPBROADCASTD(Mem{Base: yp, Disp: 256*j + 32*t + 4*(2*m+i)}, y[i])
				}
				for hf := range 2 {
					p := y // the second half's products replace the broadcasts
					if hf == 0 {
						p = [2]VecVirtual{YMM(), YMM()}
					}
					VPMADDUBSW(y[0], q[2*m][hf], p[0])
					VPMADDUBSW(y[1], q[2*m+1][hf], p[1])
					VPADDW(p[1], p[0], p[0]) // |word| ≤ 2·16128
					VPMADDWD(ones, p[0], p[0])
					if m == 0 {
						S[hf] = p[0]
					} else {
						VPADDD(p[0], S[hf], S[hf])
					}
				}
			}
			b := YMM()
			VPBROADCASTD(Mem{Base: bp, Disp: 64*j + 8*t}, b)
			for hf := range 2 {
				VPADDD(b, S[hf], S[hf])
				if scMem {
					VPMULLD(scSlot(hf), S[hf], S[hf])
				} else {
					s := YMM()
					VPMOVSXBD(Mem{Base: scp, Disp: 32*t + 8*hf}, s)
					VPMULLD(s, S[hf], S[hf])
				}
				VPADDD(iSlot(j, hf), S[hf], S[hf])
				VMOVDQU(S[hf], iSlot(j, hf))
			}
		}
	}
	// On to the next (h, is): is 0 → 1, or is 1 → h+1 and is 0.
	TESTQ(U32(1), cnt)
	JNZ(LabelRef(odd))
	ADDQ(U32(256), qlp)
	ADDQ(U32(256), qhp)
	ADDQ(U32(16), scp)
	ADDQ(U32(16), yp)
	ADDQ(U32(4), bp)
	JMP(LabelRef(next))
	Label(odd)
	ADDQ(U32(1024-256), qlp)
	ADDQ(U32(512-256), qhp)
	ADDQ(U32(128-16), scp)
	ADDQ(U32(128-16), yp)
	ADDQ(U32(32-4), bp)
	Label(next)
	DECQ(cnt)
	JNZ(LabelRef(sub))
	// acc += float32(I)·(d_r·d_y), lane for lane as genQ6Kx16VNNI.
	var dw [2]VecVirtual
	for hf := range 2 {
		dw[hf] = YMM()
		VCVTPH2PS(Mem{Base: wp, Disp: 16 * hf}, dw[hf])
	}
	for j := range ni {
		dy := YMM()
		VBROADCASTSS(Mem{Base: xp, Disp: 320*ni + 4*j}, dy)
		for hf := range 2 {
			d, v := YMM(), YMM()
			VMULPS(dw[hf], dy, d)
			VCVTDQ2PS(iSlot(j, hf), v)
			VMULPS(d, v, v)
			VADDPS(accSlot(j, hf), v, v)
			VMOVUPS(v, accSlot(j, hf))
		}
	}
	ADDQ(U32(unit), wp)
	ADDQ(U32(in), xp)
	DECQ(n)
	JNZ(LabelRef(loop))
	Label(done)
	SHLQ(U8(2), stride)
	for j := range ni {
		for hf := range 2 {
			v := YMM()
			VMOVUPS(accSlot(j, hf), v)
			VMOVUPS(v, Mem{Base: dst, Disp: 32 * hf})
		}
		if j+1 < ni {
			ADDQ(stride, dst)
		}
	}
	VZEROUPPER()
	RET()
}
