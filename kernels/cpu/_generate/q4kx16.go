package main

import (
	"fmt"

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
func genQ4Kx16VNNI(ni int) {
	const unit = 2304
	in := 276 * ni
	name := fmt.Sprintf("dotQ4Kx16x%dVNNI", ni)
	TEXT(name, NOSPLIT, "func(w, x []byte, nb, stride int, dst []float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is dotQ4Kx16Generic for %d input(s) with AVX-512 VNNI.", name, ni))
	wp := Load(Param("w").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("nb"), GP64())
	stride := Load(Param("stride"), GP64())
	dst := Load(Param("dst").Base(), GP64())
	mask := ZMM()
	VMOVDQU64(q4x16Mask(), mask)
	c63, c15, c30 := dwordConst(63), dwordConst(15), dwordConst(0x30)
	acc := make([]VecVirtual, ni)
	for j := range acc {
		acc[j] = zeroVec(true)
	}
	loop, done := fmt.Sprintf("q4kx16x%dblock", ni), fmt.Sprintf("q4kx16x%ddone", ni)
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
			m := Mem{Base: wp, Disp: 256 + 512*c + 64*k}
			if hi == 1 {
				VPSRLW(U8(4), m, v)
				VPANDD(mask, v, v)
			} else {
				VPANDD(m, mask, v)
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
