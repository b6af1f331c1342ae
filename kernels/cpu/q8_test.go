package cpu_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// Tests of the integer-activation path: QuantizeQ8_0, QuantizeQ8_K and the
// row kernels DotRowQ8/DotRowsQ8, assembly against generic (which must
// agree bit for bit) and both against references.

// q8Types are the weight types with an integer-activation kernel.
var q8Types = []dtype.Type{
	dtype.Q4_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1, dtype.Q8_0,
	dtype.Q4_K, dtype.Q5_K, dtype.Q6_K,
}

func TestActivationType(t *testing.T) {
	for _, typ := range computable() {
		at := cpu.ActivationType(typ)
		switch {
		case typ.BlockSize() == 32:
			if at != dtype.Q8_0 {
				t.Errorf("%s: activation type %s, want Q8_0", typ, at)
			}
		case typ == dtype.Q4_K || typ == dtype.Q5_K || typ == dtype.Q6_K:
			if at != dtype.Q8_K {
				t.Errorf("%s: activation type %s, want Q8_K", typ, at)
			}
		default:
			if at != dtype.F32 {
				t.Errorf("%s: activation type %s, want F32", typ, at)
			}
		}
	}
}

// q8Inputs returns test vectors of n values (n a multiple of 256): normal
// values, blocks of zeros, a lone value, ties, tiny and huge magnitudes,
// subnormals.
func q8Inputs(r *rand.Rand, n int) [][]float32 {
	var out [][]float32
	add := func(f func(i int) float32) {
		x := make([]float32, n)
		for i := range x {
			x[i] = f(i)
		}
		out = append(out, x)
	}
	add(func(int) float32 { return float32(r.NormFloat64()) })
	add(func(int) float32 { return float32(r.NormFloat64() * 1e-3) })
	add(func(int) float32 { return float32(r.NormFloat64() * 1e25) })
	add(func(i int) float32 { // zero blocks and lone values
		if i%64 == 5 {
			return -3
		}
		return 0
	})
	add(func(i int) float32 { // exact halves: ties for a block max of 127
		if i%32 == 0 {
			return 127
		}
		return float32(r.IntN(255)-127) + 0.5
	})
	add(func(int) float32 { return math.Float32frombits(r.Uint32() & 0x807fffff) }) // subnormals
	add(func(int) float32 { return float32(r.NormFloat64()) * float32(math.Pow(2, float64(r.IntN(120)-60))) })
	add(func(int) float32 { // equal magnitudes of both signs: the first wins in Q8_K
		if r.IntN(2) == 0 {
			return -2
		}
		return 2
	})
	add(func(int) float32 { // random finite bit patterns
		for {
			if v := math.Float32frombits(r.Uint32()); !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) {
				return v
			}
		}
	})
	return out
}

// refQuantizeQ8_0 is ggml's AVX2 quantize_row_q8_0, written plainly.
func refQuantizeQ8_0(x []float32) []byte {
	out := make([]byte, len(x)/32*34)
	for b := 0; b < len(x)/32; b++ {
		var amax float32
		for _, v := range x[32*b : 32*b+32] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		id := float32(0)
		if amax != 0 {
			id = 127 / amax
		}
		binary.LittleEndian.PutUint16(out[34*b:], dtype.F32ToF16(d))
		for j, v := range x[32*b : 32*b+32] {
			q := math.RoundToEven(float64(v * id))
			if !(q >= -128 && q <= 127) { // out of range and NaN saturate to −128
				q = -128
			}
			out[34*b+2+j] = byte(int8(q))
		}
	}
	return out
}

func quantizeQ8(at dtype.Type, x []float32) []byte {
	rb, _ := at.RowBytes(uint64(len(x)))
	q := make([]byte, rb)
	if at == dtype.Q8_0 {
		cpu.QuantizeQ8_0(x, q)
	} else {
		cpu.QuantizeQ8_K(x, q)
	}
	return q
}

func TestQuantizeQ8_0(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for k, x := range q8Inputs(r, 512) {
		want := refQuantizeQ8_0(x)
		asm, gen := bothImpls(func() []byte { return quantizeQ8(dtype.Q8_0, x) })
		for name, got := range map[string][]byte{"asm": asm, "generic": gen} {
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("input %d %s: byte %d (block %d) = %#x, want %#x", k, name, i, i/34, got[i], want[i])
				}
			}
		}
		// |x − x̂| ≤ q8Slack·d while d is a normal half
		xhat := make([]float32, len(x))
		if err := dtype.Dequantize(dtype.Q8_0, want, xhat); err != nil {
			t.Fatal(err)
		}
		for b := 0; b < len(x); b += 32 {
			var amax float64
			for _, v := range x[b : b+32] {
				amax = max(amax, math.Abs(float64(v)))
			}
			d := amax / 127
			if d < 0x1p-14 || d > 65000 {
				continue
			}
			for j := b; j < b+32; j++ {
				if e := math.Abs(float64(x[j]) - float64(xhat[j])); e > q8Slack*d {
					t.Fatalf("input %d: |x − x̂| = %g at %d beyond %g·d = %g", k, e, j, q8Slack, q8Slack*d)
				}
			}
		}
	}
}

func TestQuantizeQ8_K(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	for k, x := range q8Inputs(r, 1024) {
		want := make([]byte, 4*292)
		if err := dtype.Quantize(dtype.Q8_K, x, want); err != nil {
			t.Fatal(err)
		}
		asm, gen := bothImpls(func() []byte { return quantizeQ8(dtype.Q8_K, x) })
		for name, got := range map[string][]byte{"asm": asm, "generic": gen} {
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("input %d %s: byte %d (block %d, offset %d) = %#x, dtype.Quantize gives %#x", k, name, i, i/292, i%292, got[i], want[i])
				}
			}
		}
	}
}

func TestQuantizeGuardBands(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	eachImpl(t, func(t *testing.T) {
		for _, at := range []dtype.Type{dtype.Q8_0, dtype.Q8_K} {
			n := 2 * at.BlockSize()
			x := make([]float32, n)
			randVec(r, x)
			want := quantizeQ8(at, x)
			for _, xo := range rdOffsets {
				for _, do := range rdOffsets {
					xbuf := make([]float32, xo+n+9)
					for i := range xbuf {
						xbuf[i] = 1e30 // would change the block scale if read
					}
					copy(xbuf[xo:], x)
					dbuf := make([]byte, do+len(want)+40)
					for i := range dbuf {
						dbuf[i] = 0xa5
					}
					dst := dbuf[do : do+len(want)]
					if at == dtype.Q8_0 {
						cpu.QuantizeQ8_0(xbuf[xo:xo+n], dst)
					} else {
						cpu.QuantizeQ8_K(xbuf[xo:xo+n], dst)
					}
					for i, v := range dbuf {
						inside := i >= do && i < do+len(want)
						if inside && v != want[i-do] || !inside && v != 0xa5 {
							t.Fatalf("%s offsets %d/%d: byte %d = %#x (inside %v)", at, xo, do, i, v, inside)
						}
					}
				}
			}
		}
	})
}

// refDotQ returns Σ w·x̂ in float64 and Σ|w·x̂| for the dequantized row and
// activations.
func refDotQ(tb testing.TB, typ dtype.Type, row, xq []byte, n int) (dot, mag float64) {
	tb.Helper()
	w := make([]float32, n)
	if err := dtype.Dequantize(typ, row[:rdRowBytes(typ, n)], w); err != nil {
		tb.Fatal(err)
	}
	xh := make([]float32, n)
	if err := dtype.Dequantize(cpu.ActivationType(typ), xq, xh); err != nil {
		tb.Fatal(err)
	}
	for i := range w {
		p := float64(w[i]) * float64(xh[i])
		dot += p
		mag += math.Abs(p)
	}
	return dot, mag
}

// q8DotTol is the allowed |DotRowQ8 − Σ w·x̂| relative to Σ|w·x̂|: the sums
// are exact integers per block and lane; what remains is float32 rounding
// of one product and one addition per block and lane plus the reduction
// (for ≤ 1032 blocks, < 1040·2⁻²³ ≈ 1.3e-4 in the worst case, far less in
// practice), and the f16 scales are exact in float32.
const q8DotTol = 1e-4

func TestDotRowQ8(t *testing.T) {
	r := rand.New(rand.NewPCG(37, 38))
	for _, typ := range q8Types {
		for _, blocks := range []int{1, 3, 7, 8, 9, 13, 17, 128, 1032} {
			n := blocks * cpu.ActivationType(typ).BlockSize()
			if n > 40000 {
				continue
			}
			for trial := 0; trial < 3; trial++ {
				x := rdVec(r, n)
				var v cpu.QVec
				v.Quantize(typ, x)
				xq := v.Blocks()
				if want := quantizeQ8(cpu.ActivationType(typ), x); string(want) != string(xq) {
					t.Fatalf("%s n=%d: QVec.Quantize differs from QuantizeQ8", typ, n)
				}
				rows := map[string][]byte{"quantized": rdQuantRow(r, typ, n), "raw": rdRawRow(r, typ, n)}
				for kind, row := range rows {
					asm, gen := bothImpls(func() float32 { return cpu.DotRowQ8(typ, row, &v) })
					if math.Float32bits(asm) != math.Float32bits(gen) {
						t.Fatalf("%s %s n=%d: asm %v, generic %v (must be the same bits)", typ, kind, n, asm, gen)
					}
					if avx2 := avx2Impl(func() float32 { return cpu.DotRowQ8(typ, row, &v) }); math.Float32bits(asm) != math.Float32bits(avx2) {
						t.Fatalf("%s %s n=%d: VNNI %v, AVX2 %v (must be the same bits)", typ, kind, n, asm, avx2)
					}
					want, mag := refDotQ(t, typ, row, xq, n)
					if d := math.Abs(float64(gen) - want); !(d <= q8DotTol*mag+1e-30) {
						t.Fatalf("%s %s n=%d: DotRowQ8 = %v, Σw·x̂ = %v (error %.3g of Σ|w·x̂|)", typ, kind, n, gen, want, d/mag)
					}
				}
			}
		}
	}
}

// TestDotRowQ8GuardBands places row and activations at odd offsets inside
// buffers of bytes that would change the result if read, and checks
// DotRowsQ8 writes only dst.
func TestDotRowQ8GuardBands(t *testing.T) {
	r := rand.New(rand.NewPCG(39, 40))
	eachImpl(t, func(t *testing.T) {
		for _, typ := range q8Types {
			n := 2 * max(typ.BlockSize(), 32)
			rb := rdRowBytes(typ, n)
			x := rdVec(r, n)
			xq := quantizeQ8(cpu.ActivationType(typ), x)
			var v cpu.QVec
			v.Quantize(typ, x)
			rows := make([]byte, 3*rb)
			for k := 0; k < 3; k++ {
				copy(rows[k*rb:], rdQuantRow(r, typ, n))
			}
			var want [3]float32
			for k := range want {
				want[k] = cpu.DotRowQ8(typ, rows[k*rb:(k+1)*rb], &v)
			}
			for _, ro := range rdOffsets {
				for _, xo := range rdOffsets {
					rbuf := make([]byte, ro+len(rows)+64)
					for i := range rbuf {
						rbuf[i] = 0x77
					}
					copy(rbuf[ro:], rows)
					xbuf := make([]byte, xo+len(xq)+64)
					for i := range xbuf {
						xbuf[i] = 0x55
					}
					copy(xbuf[xo:], xq)
					var gv cpu.QVec
					gv.SetBlocks(typ, xbuf[xo:xo+len(xq)])
					dw, dst := guarded(3, guard)
					cpu.DotRowsQ8(typ, dst, rbuf[ro:ro+len(rows)], rb, &gv)
					checkGuards(t, fmt.Sprintf("%s DotRowsQ8 offsets %d/%d", typ, ro, xo), dw, 3, guard)
					for k := range want {
						if math.Float32bits(dst[k]) != math.Float32bits(want[k]) {
							t.Fatalf("%s offsets %d/%d row %d: %v, want %v", typ, ro, xo, k, dst[k], want[k])
						}
					}
				}
			}
		}
	})
}

func TestDotRowQ8Panics(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	var v, vk cpu.QVec
	v.Quantize(dtype.Q4_0, make([]float32, 256))
	vk.Quantize(dtype.Q4_K, make([]float32, 256))
	mustPanic("F16 weights", func() { cpu.DotRowQ8(dtype.F16, make([]byte, 512), &v) })
	mustPanic("F16 Quantize", func() { v.Quantize(dtype.F16, make([]float32, 256)) })
	mustPanic("wrong activations", func() { cpu.DotRowQ8(dtype.Q4_K, make([]byte, 144), &v) })
	mustPanic("wrong activations K", func() { cpu.DotRowQ8(dtype.Q8_0, make([]byte, 34*8), &vk) })
	mustPanic("partial block", func() { v.SetBlocks(dtype.Q8_0, make([]byte, 40)) })
	mustPanic("SetBlocks F32", func() { v.SetBlocks(dtype.F32, make([]byte, 40)) })
	mustPanic("other weight type", func() { cpu.DotRowQ8(dtype.Q8_0, make([]byte, 34*8), &v) })
	mustPanic("short row", func() { cpu.DotRowQ8(dtype.Q4_0, make([]byte, 18*7), &v) })
	mustPanic("short rows", func() { cpu.DotRowsQ8(dtype.Q8_0, make([]float32, 2), make([]byte, 34*8), 34*8, &v) })
	mustPanic("QuantizeQ8_0 length", func() { cpu.QuantizeQ8_0(make([]float32, 33), make([]byte, 68)) })
	mustPanic("QuantizeQ8_K room", func() { cpu.QuantizeQ8_K(make([]float32, 256), make([]byte, 291)) })
}

// TestDotFloatAsmVsGeneric compares the FMA kernels for F32, F16 and BF16
// rows with the generic ones on every length up to 80 (all tails) and a
// long row, at unaligned offsets.
func TestDotFloatAsmVsGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.BF16} {
		lengths := []int{4096, 33024}
		for n := 0; n <= 80; n++ {
			lengths = append(lengths, n)
		}
		for _, n := range lengths {
			for _, off := range []int{0, 1, 3} {
				row := make([]byte, off+rdRowBytes(typ, n))
				copy(row[off:], rdQuantRow(r, typ, n))
				x := rdVec(r, n+off)[off:]
				asm, gen := bothImpls(func() float32 { return cpu.DotRow(typ, row[off:], x) })
				want, mag := rdRef(t, typ, row[off:], x)
				for name, got := range map[string]float32{"asm": asm, "generic": gen} {
					if d := math.Abs(float64(got) - want); !(d <= dotTol*mag+1e-30) {
						t.Fatalf("%s %s n=%d: %v, want %v", typ, name, n, got, want)
					}
				}
				if d := math.Abs(float64(asm) - float64(gen)); !(d <= 2e-5*mag+1e-30) {
					t.Fatalf("%s n=%d: asm %v, generic %v differ by %.3g of Σ|w·x|", typ, n, asm, gen, d/mag)
				}
			}
		}
	}
}

// FuzzQuantizeQ8 checks that the assembly and generic quantizers write the
// same bytes for fuzzed finite inputs, and that QuantizeQ8_K is
// dtype.Quantize's Q8_K.
func FuzzQuantizeQ8(f *testing.F) {
	r := rand.New(rand.NewPCG(43, 44))
	for _, x := range q8Inputs(r, 256) {
		b := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		x := make([]float32, (len(data)/4+255)/256*256)
		for i := range x {
			if 4*i+4 <= len(data) {
				x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
			}
			if math.IsNaN(float64(x[i])) || math.IsInf(float64(x[i]), 0) {
				x[i] = 1 // the kernels promise agreement for finite inputs
			}
		}
		for _, at := range []dtype.Type{dtype.Q8_0, dtype.Q8_K} {
			asm, gen := bothImpls(func() []byte { return quantizeQ8(at, x) })
			for i := range asm {
				if asm[i] != gen[i] {
					t.Fatalf("%s: asm vs non-asm output mismatch at byte %d: %#x vs %#x", at, i, asm[i], gen[i])
				}
			}
			if at == dtype.Q8_K {
				want := make([]byte, len(gen))
				if err := dtype.Quantize(at, x, want); err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if gen[i] != want[i] {
						t.Fatalf("Q8_K byte %d: %#x, dtype.Quantize gives %#x", i, gen[i], want[i])
					}
				}
			}
		}
	})
}

// FuzzDotQ8 compares the assembly and generic integer-activation kernels on
// fuzzed weight bytes (scale fields patched to finite values) and fuzzed
// activation quants in [−127, 127] with a fuzzed scale.
func FuzzDotQ8(f *testing.F) {
	r := rand.New(rand.NewPCG(45, 46))
	for i, typ := range q8Types {
		n := 2 * max(typ.BlockSize(), 32)
		f.Add(uint8(i), uint8(1), uint64(i), rdQuantRow(r, typ, n))
	}
	f.Fuzz(func(t *testing.T, sel, blocks uint8, seed uint64, data []byte) {
		typ := q8Types[int(sel)%len(q8Types)]
		at := cpu.ActivationType(typ)
		nb := int(blocks)%8 + 1
		n := nb * at.BlockSize()
		rb := rdRowBytes(typ, n)
		if len(data) < rb {
			return
		}
		rr := rand.New(rand.NewPCG(seed, 2))
		row := rdRawRow(rr, typ, n)
		ts := typ.TypeSize()
		for off := 0; off < rb; off += ts {
			for i := off; i < off+ts; i++ {
				if !rdIsFloatField(typ, i-off) {
					row[i] = data[i]
				}
			}
		}
		// activation quants from the fuzz bytes (after the row's)
		xq := fuzzQuants(at, quantizeQ8(at, rdVec(rr, n)), data[rb:], nb)
		var v cpu.QVec
		v.SetBlocks(typ, xq)
		asm, gen := bothImpls(func() float32 { return cpu.DotRowQ8(typ, row, &v) })
		if math.Float32bits(asm) != math.Float32bits(gen) && !(asm != asm && gen != gen) {
			t.Fatalf("%s n=%d: asm vs non-asm output mismatch: %v vs %v", typ, n, asm, gen)
		}
		if avx2 := avx2Impl(func() float32 { return cpu.DotRowQ8(typ, row, &v) }); math.Float32bits(asm) != math.Float32bits(avx2) && !(asm != asm && avx2 != avx2) {
			t.Fatalf("%s n=%d: VNNI vs AVX2 output mismatch: %v vs %v", typ, n, asm, avx2)
		}
	})
}

// fuzzQuants overwrites the quants of the nb activation blocks xq (of
// type at) with the fuzz bytes rest, clamped to [−127, 127], keeps Q8_K's
// bsums consistent with them, and returns xq.
func fuzzQuants(at dtype.Type, xq, rest []byte, nb int) []byte {
	for b := 0; b < nb; b++ {
		var qs []byte
		if at == dtype.Q8_0 {
			qs = xq[34*b+2 : 34*b+34]
		} else {
			qs = xq[292*b+4 : 292*b+260]
		}
		for j := range qs {
			if k := b*len(qs) + j; k < len(rest) {
				qs[j] = byte(max(-127, int8(rest[k])))
			}
		}
		if at == dtype.Q8_K { // keep the bsums consistent with the quants
			for g := 0; g < 16; g++ {
				var s int16
				for _, q := range qs[16*g : 16*g+16] {
					s += int16(int8(q))
				}
				binary.LittleEndian.PutUint16(xq[292*b+260+2*g:], uint16(s))
			}
		}
	}
	return xq
}

// FuzzDotFloat compares the F32/F16/BF16 FMA kernels with the generic ones.
func FuzzDotFloat(f *testing.F) {
	r := rand.New(rand.NewPCG(47, 48))
	for i, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.BF16} {
		f.Add(uint8(i), uint64(i), rdQuantRow(r, typ, 37))
	}
	f.Fuzz(func(t *testing.T, sel uint8, seed uint64, data []byte) {
		typ := []dtype.Type{dtype.F32, dtype.F16, dtype.BF16}[int(sel)%3]
		n := len(data) / typ.TypeSize()
		row := data[:n*typ.TypeSize()]
		x := rdVec(rand.New(rand.NewPCG(seed, 3)), n)
		var mag float64
		w := make([]float32, n)
		if err := dtype.Dequantize(typ, row, w); err != nil {
			t.Fatal(err)
		}
		for i := range w {
			mag += math.Abs(float64(w[i]) * float64(x[i]))
		}
		if math.IsNaN(mag) || math.IsInf(mag, 0) || mag > 1e30 {
			return // NaN or Inf weights, or sums that could overflow float32
		}
		asm, gen := bothImpls(func() float32 { return cpu.DotRow(typ, row, x) })
		if d := math.Abs(float64(asm) - float64(gen)); !(d <= 2e-5*mag+1e-37) {
			t.Fatalf("%s n=%d: asm vs non-asm output mismatch: %v vs %v (Σ|w·x| %g)", typ, n, asm, gen, mag)
		}
	})
}

// FuzzAxpy compares Axpy's FMA kernel with the generic loop: per element
// the two differ by at most the rounding of the unfused product,
// 2⁻²⁴·|a·x|, plus that of the sum. (The F16 variant that attention uses
// for an F16 value cache is checked by TestAttention on both paths.)
func FuzzAxpy(f *testing.F) {
	f.Add(uint16(37), float32(0.75), uint64(1))
	f.Add(uint16(0), float32(-2), uint64(2))
	f.Add(uint16(100), float32(1e-3), uint64(3))
	f.Fuzz(func(t *testing.T, n uint16, a float32, seed uint64) {
		if math.IsNaN(float64(a)) || math.IsInf(float64(a), 0) || math.Abs(float64(a)) > 1e10 {
			return
		}
		r := rand.New(rand.NewPCG(seed, 4))
		x, y := rdVec(r, int(n)%300), rdVec(r, int(n)%300)
		asm, gen := bothImpls(func() []float32 {
			d := append([]float32(nil), y...)
			cpu.Axpy(d, a, x)
			return d
		})
		for i := range asm {
			tol := 0x1p-23 * (math.Abs(float64(a)*float64(x[i])) + math.Abs(float64(gen[i])))
			if d := math.Abs(float64(asm[i]) - float64(gen[i])); d > tol {
				t.Fatalf("n=%d element %d: asm vs non-asm output mismatch: %v vs %v", len(x), i, asm[i], gen[i])
			}
		}
	})
}
