package main

import (
	"fmt"
	"strings"

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
func genQ4x16VNNI(ni int) { genPackedVNNI(false, ni) }

// genQ8x16VNNI writes dotQ8x16x{ni}VNNI: genQ4x16VNNI for Q8_0 rows
// packed by PackQ8x16 (block units of 544 bytes: the sixteen scales,
// then eight 64-byte vectors, vector k holding every row's quants
// 4k…4k+3). The quants are signed: each vector, XORed with 0x80, is
// q+128 unsigned, and the lane starts from the layout's −128·Σy, so that
// it ends at the exact Σ q·y.
func genQ8x16VNNI(ni int) { genPackedVNNI(true, ni) }

// genPackedVNNI writes the VNNI kernel of a packed Q4_0 (q8 false) or
// Q8_0 layout for ni inputs.
func genPackedVNNI(q8 bool, ni int) {
	kind, unit := "Q4", 288
	if q8 {
		kind, unit = "Q8", 544
	}
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
	if q8 {
		if q8x16Bias == nil {
			m := vecConst("q8x16bias", widen(bytes32(0x80), 64))
			q8x16Bias = &m
		}
		VMOVDQU64(*q8x16Bias, mask)
	} else {
		VMOVDQU64(q4x16Mask(), mask)
	}
	acc := make([]VecVirtual, ni)
	for j := range acc {
		acc[j] = zeroVec(true)
	}
	loop, done := fmt.Sprintf("%sx16x%dblock", strings.ToLower(kind), ni), fmt.Sprintf("%sx16x%ddone", strings.ToLower(kind), ni)
	TESTQ(n, n)
	JZ(LabelRef(done))
	Label(loop)
	// Sixteen block units on: the rows of a group, and the groups of a
	// chunk, lie one after another, a stream the prefetch keeps ahead of.
	// Not for one Q8_0 input, which streams its rows as fast as memory
	// gives them without it and lost 5–15% with it (BenchmarkMatMulQ8x16
	// …/n=1/dram), where eight inputs gained 7–30%.
	for l := 0; l < unit && (!q8 || ni > 1); l += 64 {
		PREFETCHT0(Mem{Base: wp, Disp: 16*unit + l})
	}
	dw := ZMM()
	VCVTPH2PS(Mem{Base: wp}, dw)
	// The weight vectors and the offset, within an input's 32 quants, of
	// the four each lane multiplies: Q4_0's low nibbles of vector k are
	// elements 4k…4k+3, its high ones 16+4k…; Q8_0's vector k is 4k….
	type operand struct {
		w   VecVirtual
		off int
	}
	var ops []operand
	if q8 {
		for k := range 8 {
			v := ZMM()
			VPXORD(Mem{Base: wp, Disp: 32 + 64*k}, mask, v)
			ops = append(ops, operand{v, 4 * k})
		}
	} else {
		for k := range 4 {
			lo, hi := ZMM(), ZMM()
			VMOVDQU64(Mem{Base: wp, Disp: 32 + 64*k}, lo)
			VPSRLW(U8(4), lo, hi)
			VPANDD(mask, lo, lo)
			VPANDD(mask, hi, hi)
			ops = append(ops, operand{lo, 4 * k}, operand{hi, 16 + 4*k})
		}
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
	for _, o := range ops {
		for j := range ni {
			vpdpbusdBcst(Mem{Base: xp, Disp: 32*j + o.off}, o.w, s[j])
		}
	}
	for j := range ni {
		VCVTDQ2PS(s[j], s[j])
		d := ZMM()
		VMULPS_BCST(Mem{Base: xp, Disp: 36*ni + 4*j}, dw, d)
		VMULPS(d, s[j], s[j])
		VADDPS(s[j], acc[j], acc[j])
	}
	ADDQ(U32(unit), wp)
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

// q8x16Bias is the 64 bytes 0x80, declared by the first Q8_0 kernel.
var q8x16Bias *Mem

// genQ4x16AVX2 writes dotQ4x16x{ni}AVX2, genQ4x16VNNI's kernel for CPUs
// without AVX-512: the same arguments, the same bits. A 256-bit register
// holds eight dword lanes, so a group is two halves of eight rows, half h
// the bytes [32h, 32h+32) of every 64-byte vector k and the scales at
// [16h, 16h+16). Where VNNI adds four products to a lane in one
// VPDPBUSD, AVX2 takes a VPMADDUBSW (two int16 pairs per lane) and a
// VPADDW: the eight of a block add up in int16, each word at most
// 8·2·15·128 = 30720 in magnitude, so nothing saturates and the words
// are exact, and one VPMADDWD by words of 1 makes them the lane's int32
// sum, to which the layout's −8·Σy is added. Integer sums are exact in
// any order, so s_r is the twin's, and the float step is genQ4x16VNNI's,
// lane for lane.
//
// Both halves go together, each broadcast of the input's quants serving
// the two. On the 2-core Zen 5 machine (one thread, a group in L1) the
// halves one after the other, a broadcast each and the constants as
// memory operands, were bound by the vector loads (two a cycle): 67
// GMAC/s with one input, 115 with four. Sharing the broadcasts and
// keeping the constants in registers made that 85 and 123, near the
// bound of the vector pipes, four there, two of which take every
// VPMADDUBSW, VPMADDWD and VMULPS (eleven per input and half a block,
// of about 21 instructions). Sixteen registers then hold four nibble
// vectors (vector k of both halves, low and high), a broadcast and a
// product, the nibble mask and the words of 1, and two int16 sums per
// input: four inputs at most at a time, so eight take a block's vectors
// twice, four and four (the weights are in L1 the second time). The 2·ni
// accumulators stay in registers up to two inputs; from four they live
// in the frame, one VADDPS from memory and one store per input and half
// a block, which the load ports have room for.
//
// With vex it writes dotQ4x16x{ni}AVXVNNI, for CPUs with AVX-VNNI but not
// AVX-512 (Intel's 12th-generation and later desktop parts): the VEX
// VPDPBUSD on 256-bit registers adds a step's four products to each
// int32 lane at once, so the int16 sums, their VPADDW and the final
// VPMADDWD go, and each input's lanes start from the layout's −8·Σy.
// The sums are the same exact integers, so the bits are the AVX2 ones.
// On the 2-core Zen 5 machine, forced onto the 256-bit kernels
// (STOKE_NOVNNI; BenchmarkMatMulQ4x16/…/x16, three alternating runs),
// eight inputs over 5632×2048 from cache ran at 236–244 GMAC/s against
// 166–206 with AVX2, from memory at 188–237 against 192–201.
func genQ4x16AVX2(ni int, vex bool) {
	name := fmt.Sprintf("dotQ4x16x%dAVX2", ni)
	if vex {
		name = fmt.Sprintf("dotQ4x16x%dAVXVNNI", ni)
	}
	TEXT(name, NOSPLIT, "func(w, x []byte, nb, stride int, dst []float32)")
	Pragma("noescape")
	if vex {
		Doc(fmt.Sprintf("%s is dotQ4x16Generic for %d input(s) with AVX2 and AVX-VNNI.", name, ni))
	} else {
		Doc(fmt.Sprintf("%s is dotQ4x16Generic for %d input(s) with AVX2.", name, ni))
	}
	wp := Load(Param("w").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("nb"), GP64())
	stride := Load(Param("stride"), GP64())
	dst := Load(Param("dst").Base(), GP64())
	mask, ones := YMM(), YMM()
	VMOVDQU(q4x16Mask(), mask)
	if !vex {
		VMOVDQU(cWords(1), ones)
	}
	const pass = 4 // inputs at a time
	// acc[2j+h] accumulates input j's rows 8h…8h+7: in a register up to
	// two inputs, else in slot 2j+h of the frame.
	var acc []VecVirtual
	var frame Mem
	if ni <= 2 {
		acc = make([]VecVirtual, 2*ni)
		for i := range acc {
			acc[i] = YMM()
			VXORPS(acc[i], acc[i], acc[i])
		}
	} else {
		frame = AllocLocal(32 * 2 * ni)
		z := YMM()
		VXORPS(z, z, z)
		for i := range 2 * ni {
			VMOVUPS(z, frame.Offset(32*i))
		}
	}
	isa := "avx2"
	if vex {
		isa = "avxvnni"
	}
	loop, done := fmt.Sprintf("q4x16x%d%sblock", ni, isa), fmt.Sprintf("q4x16x%d%sdone", ni, isa)
	TESTQ(n, n)
	JZ(LabelRef(done))
	Label(loop)
	// The VNNI kernels' prefetch, sixteen block units on.
	for l := 0; l < 288; l += 64 {
		PREFETCHT0(Mem{Base: wp, Disp: 16*288 + l})
	}
	for j0 := 0; j0 < ni; j0 += pass {
		g := min(ni-j0, pass)
		s := make([][2]VecVirtual, g) // input j's int16 sums (int32 with vex), by half
		// vex: chains[j][h][c] takes the steps 2k+part ≡ c (mod len),
		// so that one input has two independent VPDPBUSD chains a half
		// (as genK45x16AVX2; the registers allow no more here).
		nc := max(1, 2/g)
		var chains [][2][]VecVirtual
		if vex {
			chains = make([][2][]VecVirtual, g)
			for j := range g {
				for h := range 2 {
					for c := range nc {
						z := YMM()
						if c == 0 {
							VPBROADCASTD(Mem{Base: xp, Disp: 32*ni + 4*(j0+j)}, z)
						} else {
							VPSUBD(z, z, z)
						}
						chains[j][h] = append(chains[j][h], z)
					}
					s[j][h] = chains[j][h][0]
				}
			}
		}
		for k := range 4 {
			var q [2][2]VecVirtual // nibbles: low, high; by half
			for h := range 2 {
				lo, hi := YMM(), YMM()
				VMOVDQU(Mem{Base: wp, Disp: 32 + 64*k + 32*h}, lo)
				VPSRLW(U8(4), lo, hi)
				VPAND(mask, lo, lo)
				VPAND(mask, hi, hi)
				q[0][h], q[1][h] = lo, hi
			}
			// Step k of every input before step k+1 of any, as in the
			// VNNI kernels: the inputs' sums are independent chains.
			for part := range 2 {
				for j := range g {
					y := YMM()
					VPBROADCASTD(Mem{Base: xp, Disp: 32*(j0+j) + 16*part + 4*k}, y)
					for h := range 2 {
						if vex {
							vpdpbusdVEX(y, q[part][h], chains[j][h][(2*k+part)%nc])
							continue
						}
						p := y
						if h == 0 {
							p = YMM()
						}
						VPMADDUBSW(y, q[part][h], p)
						if k == 0 && part == 0 {
							s[j][h] = p
						} else {
							VPADDW(p, s[j][h], s[j][h])
						}
					}
				}
			}
		}
		for j := range chains {
			for h := range 2 {
				for _, c := range chains[j][h][1:] {
					VPADDD(c, s[j][h], s[j][h])
				}
			}
		}
		var dw [2]VecVirtual
		for h := range 2 {
			dw[h] = YMM()
			VCVTPH2PS(Mem{Base: wp, Disp: 16 * h}, dw[h])
		}
		for j := range g {
			c, dy := YMM(), YMM()
			if !vex {
				VPBROADCASTD(Mem{Base: xp, Disp: 32*ni + 4*(j0+j)}, c)
			}
			VBROADCASTSS(Mem{Base: xp, Disp: 36*ni + 4*(j0+j)}, dy)
			for h := range 2 {
				t := s[j][h]
				if !vex {
					VPMADDWD(ones, t, t)
					VPADDD(c, t, t)
				}
				VCVTDQ2PS(t, t)
				d := YMM()
				VMULPS(dw[h], dy, d)
				VMULPS(d, t, t)
				if i := 2*(j0+j) + h; acc != nil {
					VADDPS(t, acc[i], acc[i])
				} else {
					VADDPS(frame.Offset(32*i), t, t)
					VMOVUPS(t, frame.Offset(32*i))
				}
			}
		}
	}
	ADDQ(U32(288), wp)
	ADDQ(U32(40*ni), xp)
	DECQ(n)
	JNZ(LabelRef(loop))
	Label(done)
	SHLQ(U8(2), stride)
	for j := range ni {
		for h := range 2 {
			out := Mem{Base: dst, Disp: 32 * h}
			if i := 2*j + h; acc != nil {
				VMOVUPS(acc[i], out)
			} else {
				t := YMM()
				VMOVUPS(frame.Offset(32*i), t)
				VMOVUPS(t, out)
			}
		}
		if j+1 < ni {
			ADDQ(stride, dst)
		}
	}
	VZEROUPPER()
	RET()
}

// q4x16Nib is the 64 bytes 0x0f, declared by the first kernel that asks
// q4x16Mask for it; the AVX2 kernels read its first 32.
var q4x16Nib *Mem

func q4x16Mask() Mem {
	if q4x16Nib == nil {
		m := vecConst("q4x16nib", widen(bytes32(0x0f), 64))
		q4x16Nib = &m
	}
	return *q4x16Nib
}

// vpdpbusdVEX emits AVX-VNNI's VPDPBUSD (VEX, 256 bits), s signed bytes
// and u unsigned ones in Y registers. Go's assembler encodes VPDPBUSD only
// as EVEX, which needs AVX-512, so it goes out as the placeholder
// VPDPBUSDVEX, which encodeVEX turns into the instruction's bytes once
// the registers are allocated.
func vpdpbusdVEX(s, u, acc Op) {
	Instruction(&ir.Instruction{
		Opcode:   "VPDPBUSDVEX",
		Operands: []Op{s, u, acc},
		Inputs:   []Op{s, u, acc},
		Outputs:  []Op{acc},
		ISA:      []string{"AVXVNNI"},
	})
}

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
