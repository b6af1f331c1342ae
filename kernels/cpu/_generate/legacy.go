package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// ---- Q8_0, Q4_1, Q5_0, Q5_1 ------------------------------------------------

// accSlot is one float accumulator of a kernel: a register (row kernels) or
// a 32-byte stack slot (multi-input kernels, whose inputs need more
// accumulators than there are registers). open returns a register holding
// its value; close stores that register back. In between the kernel adds
// to the register exactly as a row kernel adds to its accumulator, so a
// slot takes the same float operations in the same order.
type accSlot struct {
	reg VecVirtual
	mem Mem
}

func (a accSlot) open() VecVirtual {
	if a.reg != nil {
		return a.reg
	}
	r := YMM()
	VMOVUPS(a.mem, r)
	return r
}

func (a accSlot) close(r VecVirtual) {
	if a.reg == nil {
		VMOVUPS(r, a.mem)
	}
}

// newAccs returns count accumulators per input, all zero: registers for
// the row kernel (inputs = 0) or where inRegs, else stack slots.
func newAccs(inputs, count int, inRegs bool) [][]accSlot {
	accs := make([][]accSlot, max(inputs, 1))
	if inputs == 0 || inRegs {
		for j := range accs {
			accs[j] = make([]accSlot, count)
			for k := range accs[j] {
				r := YMM()
				VXORPS(r, r, r)
				accs[j][k] = accSlot{reg: r}
			}
		}
		return accs
	}
	m := AllocLocal(32 * count * inputs)
	z := YMM()
	VXORPS(z, z, z)
	for j := range accs {
		accs[j] = make([]accSlot, count)
		for k := range accs[j] {
			accs[j][k] = accSlot{mem: m.Offset(32 * (count*j + k))}
			VMOVUPS(z, accs[j][k].mem)
		}
	}
	return accs
}

// legacyKernel describes a 32-element block kernel with Q8_0 activations.
// decode emits the work on the weight block at wb that does not depend on
// the activations and returns the per-input rest: activations (a Q8_0
// block) at xb, d_w·d_x in every lane of dv (m_w·d_x in mv), accumulator
// register acc.
type legacyKernel struct {
	name    string
	wsize   int
	withMin bool
	decode  func(wb Mem) func(xb Mem, dv, mv, acc VecVirtual)
	setup   func() // loads constants into registers, before the loop
	isa     string // the kernels' name suffix: "AVX2" when empty, "VNNI"
}

// legacyLoop emits a 32-element block kernel whose weight blocks are
// wsize bytes with the f16 scale d_w first (and, when withMin, the f16 min
// m_w after it): the row kernel (inputs = 0, qSig) or the kernel for
// inputs inputs at once (multiSig).
//
// Block i adds into acc[i mod 4] (four independent chains, so the loop is
// not bound by the latency of VADDPS). Blocks go eight at a time: their
// eight d_w are widened together (the integer units gather them, one
// VCVTPH2PS converts them), multiplied by the eight float32 activation
// scales in one VMULPS and parked on the stack, from where each block
// broadcasts its d_w·d_x (likewise m_w·d_x); then four at a time the same
// way, then the last nb mod 4 one at a time. Each product is the same
// float32 the generic twin computes.
//
// The multi-input kernels run the same loop with the weights decoded once
// per block for all inputs. Their accumulators stay in registers for two
// inputs (eight of them; more inputs would need stack slots, whose load
// and store per block cost more than sharing the decoding saves: on the
// development machine four inputs with stack accumulators ran 15% slower
// per input than two with registers). Their activations come interleaved: x holds, per block, the inputs'
// Q8_0 blocks one after another (34 bytes each), and d, per eight blocks,
// each input's eight scales (the last eight zero-padded); the row kernel's
// d is that layout for one input.
func legacyLoop(k legacyKernel, inputs int) {
	var wp, xp, dp, n, dst Register
	isa := k.isa
	if isa == "" {
		isa = "AVX2"
	}
	if inputs == 0 {
		wp, xp, dp, n = dotPrologue(k.name+isa, fmt.Sprintf("%s%s is %sGeneric.", k.name, isa, k.name))
	} else {
		name := fmt.Sprintf("%sx%d%s", k.name, inputs, isa)
		wp, xp, dp, n, dst = multiPrologue(name, fmt.Sprintf("%s is %sMultiGeneric for %d inputs; x and d interleave their blocks and scales (see legacyLoop).", name, k.name, inputs), true)
	}
	ni := max(inputs, 1)
	if k.setup != nil {
		k.setup()
	}
	accs := newAccs(inputs, 4, inputs <= 2)
	offs := []int{0}
	if k.withMin {
		offs = append(offs, 2)
	}
	wsize := k.wsize
	// slot (input j, field f) of the scales parked on the stack
	tmp := AllocLocal(32 * len(offs) * ni)
	slot := func(j, f int) Mem { return tmp.Offset(32 * (len(offs)*j + f)) }
	// scales widens the f16 at offset off of count (4 or 8) blocks and
	// parks them, times each input's activation scales, on the stack.
	scales := func(count int) {
		for f, off := range offs {
			var w VecVirtual
			if count == 8 {
				lo, hi := halves4(wp, off, wsize), halves4(wp, off+4*wsize, wsize)
				s := XMM()
				VMOVQ(lo, s)
				VPINSRQ(U8(1), hi, s, s)
				w = YMM()
				VCVTPH2PS(s, w)
			} else {
				q4 := halves4(wp, off, wsize)
				w = XMM()
				VMOVQ(q4, w)
				VCVTPH2PS(w, w)
			}
			for j := 0; j < ni; j++ {
				var s VecVirtual = YMM()
				if count == 4 {
					s = XMM()
				}
				VMULPS(Mem{Base: dp, Disp: 32 * j}, w, s)
				VMOVUPS(s, slot(j, f))
			}
		}
	}
	block := func(wb Mem, xb func(j int) Mem, sv func(j, f int) VecVirtual, acc int) {
		in := k.decode(wb)
		for j := 0; j < ni; j++ {
			dv, mv := sv(j, 0), VecVirtual(nil)
			if k.withMin {
				mv = sv(j, 1)
			}
			a := accs[j][acc]
			r := a.open()
			in(xb(j), dv, mv, r)
			a.close(r)
		}
	}
	blocks := func(count int) {
		for b := 0; b < count; b++ {
			xb := func(j int) Mem { return Mem{Base: xp, Disp: 34 * (ni*b + j)} }
			sv := func(j, f int) VecVirtual {
				v := YMM()
				VBROADCASTSS(slot(j, f).Offset(4*b), v)
				return v
			}
			block(Mem{Base: wp, Disp: wsize * b}, xb, sv, b%4)
		}
		ADDQ(U32(count*wsize), wp)
		ADDQ(U32(count*34*ni), xp)
		if count == 8 {
			ADDQ(U32(32*ni), dp)
		} else {
			ADDQ(U8(4*count), dp)
		}
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
	for b := 0; b < 3; b++ {
		TESTQ(n, n)
		JZ(LabelRef("done"))
		for f, off := range offs {
			r := GP32()
			MOVWLZX(Mem{Base: wp, Disp: off}, r)
			w := XMM()
			VMOVD(r, w)
			VCVTPH2PS(w, w)
			for j := 0; j < ni; j++ {
				s := XMM()
				VMULSS(Mem{Base: dp, Disp: 32 * j}, w, s)
				VMOVSS(s, slot(j, f))
			}
		}
		xb := func(j int) Mem { return Mem{Base: xp, Disp: 34 * j} }
		sv := func(j, f int) VecVirtual {
			v := YMM()
			VBROADCASTSS(slot(j, f), v)
			return v
		}
		block(Mem{Base: wp}, xb, sv, b)
		ADDQ(U8(wsize), wp)
		ADDQ(U8(34*ni), xp)
		ADDQ(U8(4), dp)
		DECQ(n)
	}
	Label("done")
	// (acc0 + acc1) + (acc2 + acc3), lane by lane, then hsum8
	for j := 0; j < ni; j++ {
		a := make([]VecVirtual, 4)
		for i := range a {
			a[i] = accs[j][i].open()
		}
		VADDPS(a[1], a[0], a[0])
		VADDPS(a[3], a[2], a[2])
		VADDPS(a[2], a[0], a[0])
		if inputs == 0 {
			dotEpilogue(a[0])
			return
		}
		VMOVSS(hsum8(a[0]), Mem{Base: dst, Disp: 4 * j})
	}
	VZEROUPPER()
	RET()
}

// nibbleBytes returns the 32 quants of 16 bytes of nibbles at m, low
// nibbles (elements 0–15) in the low lane, high nibbles in the high lane.
func nibbleBytes(m Mem, m4 Op) VecVirtual {
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

// legacyConsts are the constants of the Q8_0-activation kernels: setup
// loads the multipliers into registers and leaves the nibble mask, used
// once per block, in memory (the two-input Q4_1/Q5_1 kernels need every
// register).
type legacyConsts struct {
	ones16, ones8 VecVirtual
	m4            Op
}

func (c *legacyConsts) setup() {
	c.ones16, c.ones8, c.m4 = YMM(), YMM(), cBytes(0x0f)
	VMOVDQU(cWords(1), c.ones16)
	VMOVDQU(cBytes(1), c.ones8)
}

func genDotQ8_0(inputs int) {
	var c legacyConsts
	legacyLoop(legacyKernel{name: "dotQ8_0Q8_0", wsize: 34, setup: func() {
		c.ones16 = YMM()
		VMOVDQU(cWords(1), c.ones16)
	}, decode: func(wb Mem) func(xb Mem, dv, mv, acc VecVirtual) {
		qw, aw := YMM(), YMM()
		VMOVDQU(wb.Offset(2), qw)
		VPSIGNB(qw, qw, aw)
		return func(xb Mem, dv, _, acc VecVirtual) {
			// |w| (unsigned) times y with w's sign: Σ w·y by pairs, then fours
			qx, t := YMM(), YMM()
			VMOVDQU(xb.Offset(2), qx)
			VPSIGNB(qw, qx, qx)
			VPMADDUBSW(qx, aw, t)
			VPMADDWD(c.ones16, t, t)
			accumulate(acc, t, dv)
		}
	}}, inputs)
}

// unsignedWithMin emits the per-input body of Q4_1/Q5_1: unsigned quants
// q, acc += float32(Σ_4 q·y)·d, then acc += float32(Σ_4 y)·m.
func unsignedWithMin(q VecVirtual, xb Mem, dv, mv, acc VecVirtual, c *legacyConsts) {
	ys, t := YMM(), YMM()
	VPMADDUBSW(xb.Offset(2), c.ones8, ys)
	VPMADDWD(c.ones16, ys, ys)
	VPMADDUBSW(xb.Offset(2), q, t)
	VPMADDWD(c.ones16, t, t)
	accumulate(acc, t, dv)
	accumulate(acc, ys, mv)
}

func genDotQ4_1(inputs int) {
	var c legacyConsts
	legacyLoop(legacyKernel{name: "dotQ4_1Q8_0", wsize: 20, withMin: true, setup: c.setup, decode: func(wb Mem) func(xb Mem, dv, mv, acc VecVirtual) {
		q := nibbleBytes(wb.Offset(4), c.m4)
		return func(xb Mem, dv, mv, acc VecVirtual) {
			unsignedWithMin(q, xb, dv, mv, acc, &c)
		}
	}}, inputs)
}

func genDotQ5_0(inputs int) {
	var c legacyConsts
	legacyLoop(legacyKernel{name: "dotQ5_0Q8_0", wsize: 22, setup: func() {
		r := YMM()
		VMOVDQU(cBytes(0x0f), r)
		c.ones16, c.m4 = YMM(), r
		VMOVDQU(cWords(1), c.ones16)
	}, decode: func(wb Mem) func(xb Mem, dv, mv, acc VecVirtual) {
		q := nibbleBytes(wb.Offset(6), c.m4)
		// (nibble | bit<<4) − 16 is the nibble where the bit is set and
		// int8(0xF0 | nibble) where it is not
		h := fifthBits(wb.Offset(2))
		VPANDN(cBytes(0xf0), h, h)
		VPOR(h, q, q)
		aq := YMM()
		VPSIGNB(q, q, aq)
		return func(xb Mem, dv, _, acc VecVirtual) {
			y, t := YMM(), YMM()
			VMOVDQU(xb.Offset(2), y)
			VPSIGNB(q, y, y)
			VPMADDUBSW(y, aq, t)
			VPMADDWD(c.ones16, t, t)
			accumulate(acc, t, dv)
		}
	}}, inputs)
}

func genDotQ5_1(inputs int) {
	var c legacyConsts
	legacyLoop(legacyKernel{name: "dotQ5_1Q8_0", wsize: 24, withMin: true, setup: c.setup, decode: func(wb Mem) func(xb Mem, dv, mv, acc VecVirtual) {
		q := nibbleBytes(wb.Offset(8), c.m4)
		h := fifthBits(wb.Offset(4))
		VPAND(cBytes(0x10), h, h)
		VPOR(h, q, q)
		return func(xb Mem, dv, mv, acc VecVirtual) {
			unsignedWithMin(q, xb, dv, mv, acc, &c)
		}
	}}, inputs)
}
