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

// vnniRow returns a row of nb blocks of typ (Q4_0 or Q8_0) at byte offset
// off of a larger buffer, its quants drawn by quant and its scales random
// finite halves.
func vnniRow(r *rand.Rand, typ dtype.Type, nb, off int, quant func() byte) []byte {
	ts := typ.TypeSize()
	buf := make([]byte, off+nb*ts+64)
	for i := range buf {
		buf[i] = 0x99 // bytes past the row, which no kernel may use
	}
	row := buf[off : off+nb*ts]
	for b := range nb {
		blk := row[b*ts : (b+1)*ts]
		binary.LittleEndian.PutUint16(blk, rdHalf(r))
		for i := range blk[2:] {
			blk[2+i] = quant()
		}
	}
	return row
}

// vnniActs returns nb Q8_0 activation blocks with quants drawn by quant
// (in [−127, 127]) and random finite scales.
func vnniActs(r *rand.Rand, nb int, quant func() int8) []byte {
	xq := make([]byte, 34*nb)
	for b := range nb {
		binary.LittleEndian.PutUint16(xq[34*b:], rdHalf(r)&0x3fff) // |d| < 2: no overflow to inf
		for i := range 32 {
			xq[34*b+2+i] = byte(quant())
		}
	}
	return xq
}

// TestVNNIMatchesAVX2 checks the AVX-512 VNNI kernels (Q4_0 and Q8_0: the
// row kernel, the multi-input kernels and, through MatMul, the Q4_0
// tiles) against the AVX2 kernels and the pure-Go twins, bit for bit, on
// random and extreme quants (nibbles 0 and 15, Q8_0 weights −128 and 127,
// activations ±127), every tail of a quad and of eight blocks, and rows
// at odd offsets. On a CPU without VNNI it compares AVX2 with generic.
func TestVNNIMatchesAVX2(t *testing.T) {
	if !cpu.HaveVNNI() {
		t.Log("no AVX-512 VNNI here: the asm runs comprise AVX2 only")
	}
	r := rand.New(rand.NewPCG(91, 92))
	wq := map[string]func() byte{
		"random":  func() byte { return byte(r.Uint32()) },
		"extreme": func() byte { return []byte{0x00, 0xff, 0x0f, 0xf0, 0x80, 0x7f}[r.IntN(6)] },
	}
	xq := map[string]func() int8{
		"random":  func() int8 { return int8(r.IntN(255) - 127) },
		"extreme": func() int8 { return []int8{-127, 127}[r.IntN(2)] },
	}
	ms := impls()
	for _, typ := range []dtype.Type{dtype.Q4_0, dtype.Q8_0} {
		for _, nb := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 63, 64, 65, 67, 131} {
			for wk, wf := range wq {
				for xk, xf := range xq {
					off := r.IntN(4)
					name := fmt.Sprintf("%s/nb%d/w=%s/x=%s/off%d", typ, nb, wk, xk, off)
					row := vnniRow(r, typ, nb, off, wf)
					vs := make([]*cpu.QVec, 8)
					for j := range vs {
						vs[j] = new(cpu.QVec)
						vs[j].SetBlocks(typ, vnniActs(r, nb, xf))
					}
					checkRowKernels(t, name, typ, row, vs, ms)
				}
			}
		}
	}
}

// checkRowKernels checks that the row kernel gives the same bits for
// each input of vs with every implementation of ms (the first sets the
// bits), and that every multi-input kernel gives the row kernel's bits.
func checkRowKernels(t *testing.T, name string, typ dtype.Type, row []byte, vs []*cpu.QVec, ms []impl) {
	t.Helper()
	want := make([]float32, len(vs))
	for mi, m := range ms {
		func() {
			defer m.use()()
			for j, v := range vs {
				got := cpu.DotRowQ8(typ, row, v)
				if mi == 0 {
					want[j] = got
				} else if !sameBits(got, want[j]) {
					t.Fatalf("%s input %d: row kernel %v (%#x) with %s, %v (%#x) with %s", name, j, got, math.Float32bits(got), m.name, want[j], math.Float32bits(want[j]), ms[0].name)
				}
			}
			for _, n := range cpu.MultiSizes(typ) {
				got := cpu.DotRowQ8Multi(typ, row, vs[:n])
				for j := range n {
					if !sameBits(got[j], want[j]) {
						t.Fatalf("%s %s: input %d of %d: multi-input kernel %v, row kernel %v", name, m.name, j, n, got[j], want[j])
					}
				}
			}
		}()
	}
}

// vnniKRow returns a row of nb super-blocks of typ (Q4_K or Q6_K) at byte
// offset off of a larger buffer: random finite f16 scales (d, and dmin for
// Q4_K), every other byte (packed scales and mins, quants) drawn by b.
func vnniKRow(r *rand.Rand, typ dtype.Type, nb, off int, b func() byte) []byte {
	ts := typ.TypeSize()
	buf := make([]byte, off+ts*nb+64)
	for i := range buf {
		buf[i] = 0x99 // bytes past the row, which no kernel may use
	}
	row := buf[off : off+ts*nb]
	for k := range nb {
		blk := row[ts*k : ts*(k+1)]
		for i := range blk {
			blk[i] = b()
		}
		for _, o := range halfFields[typ] {
			binary.LittleEndian.PutUint16(blk[o:], rdHalf(r))
		}
	}
	return row
}

// vnniKActs returns nb Q8_K activation blocks with quants drawn by quant,
// a random float32 d of either sign (2^−30 to 2^10) and, unless rawSums,
// the bsums of the quants; with rawSums the bsums are random words, whose
// pair sums wrap around in int16 (the kernels must agree on any bytes).
func vnniKActs(r *rand.Rand, nb int, quant func() int8, rawSums bool) []byte {
	x := make([]byte, 292*nb)
	for k := range nb {
		blk := x[292*k : 292*(k+1)]
		d := float32(math.Ldexp(1+r.Float64(), r.IntN(41)-30))
		if r.IntN(2) == 0 {
			d = -d
		}
		binary.LittleEndian.PutUint32(blk, math.Float32bits(d))
		for g := range 16 {
			var sum int16
			for i := range 16 {
				q := quant()
				blk[4+16*g+i] = byte(q)
				sum += int16(q)
			}
			if rawSums {
				sum = int16(r.Uint32())
			}
			binary.LittleEndian.PutUint16(blk[260+2*g:], uint16(sum))
		}
	}
	return x
}

// TestVNNIKMatchesAVX2 checks the AVX-512 VNNI Q4_K and Q6_K kernels (the
// row kernels and the multi-input ones) against the AVX2 kernels and the
// pure-Go twins, bit for bit: random and extreme weight bytes (Q4_K
// scales and mins 0 and 63, nibbles 0 and 15; Q6_K scales −128, −1 and
// 127, quants 0 and 63), random and extreme activations (−128, ±127),
// bsums that are and that are not the quants' sums, many super-block
// counts and rows at odd offsets. On a CPU without VNNI it compares AVX2
// with generic.
func TestVNNIKMatchesAVX2(t *testing.T) {
	r := rand.New(rand.NewPCG(95, 96))
	wq := map[string]func() byte{
		"random":  func() byte { return byte(r.Uint32()) },
		"extreme": func() byte { return []byte{0x00, 0xff, 0x0f, 0xf0, 0xc0, 0x3f, 0x80, 0x7f}[r.IntN(8)] },
		"max":     func() byte { return 0xff },
	}
	type acts struct {
		quant   func() int8
		rawSums bool
	}
	xq := map[string]acts{
		"random":  {func() int8 { return int8(r.Uint32()) }, false},
		"extreme": {func() int8 { return []int8{-128, -127, 127}[r.IntN(3)] }, false},
		"min":     {func() int8 { return -128 }, false},
		"rawsums": {func() int8 { return int8(r.Uint32()) }, true},
	}
	ms := impls()
	for _, typ := range []dtype.Type{dtype.Q4_K, dtype.Q6_K} {
		for _, nb := range []int{1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 64, 65, 131} {
			for wk, wf := range wq {
				for xk, xa := range xq {
					off := r.IntN(4)
					name := fmt.Sprintf("%s/nb%d/w=%s/x=%s/off%d", typ, nb, wk, xk, off)
					row := vnniKRow(r, typ, nb, off, wf)
					vs := make([]*cpu.QVec, 4)
					for j := range vs {
						vs[j] = new(cpu.QVec)
						vs[j].SetBlocks(typ, vnniKActs(r, nb, xa.quant, xa.rawSums))
					}
					checkRowKernels(t, name, typ, row, vs, ms)
				}
			}
		}
	}
}

// TestVNNIMatMul checks that MatMul and MatVec give the same bits with
// VNNI and with AVX2 for Q4_0 (tiles and the multi-input kernels), Q8_0,
// Q4_K and Q6_K, on shapes with odd rows, input counts that leave groups of every
// size, and rows spanning several tile slices with a ragged end.
func TestVNNIMatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(93, 94))
	p := cpu.NewPool(2)
	defer p.Close()
	for _, typ := range []dtype.Type{dtype.Q4_0, dtype.Q8_0, dtype.Q4_K, dtype.Q6_K} {
		for _, nb := range []int{5, 66, 133} {
			cols := typ.BlockSize() * nb
			rows := 35
			w := rawMatrix(r, typ, rows, cols, 1)
			for _, n := range []int{1, 3, 8, 15} {
				x := make([]float32, n*cols)
				randVec(r, x)
				var res [2][]float32
				for k, on := range []bool{true, false} {
					func() {
						defer cpu.SetVNNI(on)()
						dw, dst := guarded(n*rows, guard)
						p.MatMul(dst, w, typ, rows, cols, x, n)
						checkGuards(t, "MatMul dst", dw, n*rows, guard)
						mv := make([]float32, rows)
						p.MatVec(mv, w, typ, rows, cols, x[:cols])
						res[k] = append(dst, mv...)
					}()
				}
				for i := range res[0] {
					if !sameBits(res[0][i], res[1][i]) {
						t.Fatalf("%s %dx%d n=%d: element %d: VNNI %v, AVX2 %v", typ, rows, cols, n, i, res[0][i], res[1][i])
					}
				}
			}
		}
	}
}

// BenchmarkVNNI compares, in one run, the VNNI kernels with the AVX2 ones
// (vnni=false) on one thread: MatMul on a 512×8192 Q4_0 matrix with 8 and
// 32 inputs (tiles) and a 512×2048 Q4_0 and Q8_0 one with 2 inputs, and
// MatVec (the row kernel) on 512×2048 Q4_0 and Q8_0; for Q4_K, MatMul
// with 4 and 2 inputs and MatVec on 512×2048, for Q6_K with 4 and MatVec. The matrices fit in L2, so
// these measure the kernels' compute, not memory bandwidth.
//
//	go test ./kernels/cpu -run '^$' -bench VNNI -benchtime 30x
func BenchmarkVNNI(b *testing.B) {
	type shape struct {
		typ        dtype.Type
		rows, cols int
		n          int // inputs; 0: MatVec
	}
	for _, s := range []shape{
		{dtype.Q4_0, 512, 8192, 8}, {dtype.Q4_0, 512, 8192, 32},
		{dtype.Q4_0, 512, 2048, 2}, {dtype.Q8_0, 512, 2048, 2},
		{dtype.Q4_0, 512, 2048, 0}, {dtype.Q8_0, 512, 2048, 0},
		{dtype.Q4_K, 512, 2048, 4}, {dtype.Q4_K, 512, 2048, 2}, {dtype.Q4_K, 512, 2048, 0},
		{dtype.Q6_K, 512, 2048, 4}, {dtype.Q6_K, 512, 2048, 0},
	} {
		w := randomWeights(b, s.typ, s.rows, s.cols)
		rng := rand.New(rand.NewPCG(7, 8))
		n := max(s.n, 1)
		x := randSlice(rng, n*s.cols, 1)
		dst := make([]float32, n*s.rows)
		for _, on := range []bool{true, false} {
			name := fmt.Sprintf("%s/%dx%d/n=%d/vnni=%v", s.typ, s.rows, s.cols, s.n, on)
			b.Run(name, func(b *testing.B) {
				defer cpu.SetVNNI(on)()
				p := cpu.NewPool(1)
				defer p.Close()
				run := func() {
					if s.n == 0 {
						p.MatVec(dst, w, s.typ, s.rows, s.cols, x)
					} else {
						p.MatMul(dst, w, s.typ, s.rows, s.cols, x, s.n)
					}
				}
				run()
				b.ReportAllocs()
				for b.Loop() {
					run()
				}
				b.ReportMetric(float64(s.rows*s.cols*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
		}
	}
}
