package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// ---- packed Q4_0 (q4x16.go) --------------------------------------------
//
// The packed kernels dot sixteen Q4_0 rows, interleaved by PackQ4x16, with
// one, two, four or eight Q8_0 inputs at once. In a block unit (288
// bytes) the sixteen rows' quant bytes 4k…4k+3 form the 64-byte vector
// k (k < 4), row r's four bytes at 4r, so that one dword lane holds one
// row: the low nibbles of vector k are elements 4k…4k+3 of every row and
// the high nibbles elements 16+4k…16+4k+3, and a VPDPBUSD of either with
// the input's four matching quants, broadcast to every lane, adds four
// products to each row's lane. Eight VPDPBUSD, started from the input's
// −8·Σy (the layout stores it), leave in lane r the exact integer
//
//	s_r = Σ_{e<32} q_{r,e}·y_e − 8·Σ_{e<32} y_e = Σ_e (q_{r,e} − 8)·y_e,
//
// and the block's float step is the pure-Go twin's (dotQ4x16Generic),
// lane for lane: t = float32(s_r)·(d_r·d_y), then acc_r += t, one
// rounding each, blocks in order. So every result is bit for bit the
// twin's, for any number of inputs.

// genQ4x16VNNI writes dotQ4x16x{ni}VNNI: the sixteen rows of one packed
// group at w (nb block units) against the ni inputs at x (per block,
// their quants by 32 bytes, then their −8·Σy as int32, then their scales
// as float32: 40·ni bytes), input j's sixteen results to
// dst[j·stride : j·stride+16].
func genQ4x16VNNI(ni int) {
	name := fmt.Sprintf("dotQ4x16x%dVNNI", ni)
	TEXT(name, NOSPLIT, "func(w, x []byte, nb, stride int, dst []float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is dotQ4x16Generic for %d input(s) with AVX-512 VNNI.", name, ni))
	wp := Load(Param("w").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("nb"), GP64())
	stride := Load(Param("stride"), GP64())
	dst := Load(Param("dst").Base(), GP64())
	if q4x16Nib == nil {
		m := vecConst("q4x16nib", widen(bytes32(0x0f), 64))
		q4x16Nib = &m
	}
	mask := ZMM()
	VMOVDQU64(*q4x16Nib, mask)
	acc := make([]VecVirtual, ni)
	for j := range acc {
		acc[j] = zeroVec(true)
	}
	loop, done := fmt.Sprintf("q4x16x%dblock", ni), fmt.Sprintf("q4x16x%ddone", ni)
	TESTQ(n, n)
	JZ(LabelRef(done))
	Label(loop)
	// Four blocks on: the rows of a group, and the groups of a chunk,
	// lie one after another, a stream the prefetch keeps ahead of.
	for l := 0; l < 288; l += 64 {
		PREFETCHT0(Mem{Base: wp, Disp: 16*288 + l})
	}
	dw := ZMM()
	VCVTPH2PS(Mem{Base: wp}, dw)
	var lo, hi [4]VecVirtual
	for k := range 4 {
		lo[k], hi[k] = ZMM(), ZMM()
		VMOVDQU64(Mem{Base: wp, Disp: 32 + 64*k}, lo[k])
		VPSRLW(U8(4), lo[k], hi[k])
		VPANDD(mask, lo[k], lo[k])
		VPANDD(mask, hi[k], hi[k])
	}
	// The inputs' chains interleaved, step k of every input before step
	// k+1 of any: each VPDPBUSD then waits on one four steps back, not on
	// the one before it, and the scheduler fills with ready work (8% more
	// multiply-adds per second than input after input, in cache).
	s := make([]VecVirtual, ni)
	for j := range ni {
		s[j] = ZMM()
		VPBROADCASTD(Mem{Base: xp, Disp: 32*ni + 4*j}, s[j])
	}
	for k := range 4 {
		for j := range ni {
			vpdpbusdBcst(Mem{Base: xp, Disp: 32*j + 4*k}, lo[k], s[j])
		}
		for j := range ni {
			vpdpbusdBcst(Mem{Base: xp, Disp: 32*j + 16 + 4*k}, hi[k], s[j])
		}
	}
	for j := range ni {
		VCVTDQ2PS(s[j], s[j])
		d := ZMM()
		VMULPS_BCST(Mem{Base: xp, Disp: 36*ni + 4*j}, dw, d)
		VMULPS(d, s[j], s[j])
		VADDPS(s[j], acc[j], acc[j])
	}
	ADDQ(U32(288), wp)
	ADDQ(U32(40*ni), xp)
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

// q4x16Nib is the 64 bytes 0x0f, declared by the first kernel.
var q4x16Nib *Mem

// vpdpbusdBcst emits VPDPBUSD.BCST: vpdpbusd with the signed side four
// bytes in memory, broadcast to every dword lane.
func vpdpbusdBcst(s Mem, u, acc Op) {
	Instruction(&ir.Instruction{
		Opcode:   "VPDPBUSD",
		Suffixes: []string{"BCST"},
		Operands: []Op{s, u, acc},
		Inputs:   []Op{s, u, acc},
		Outputs:  []Op{acc},
		ISA:      []string{"AVX512VNNI"},
	})
}
