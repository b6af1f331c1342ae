package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// axpyLens are the row lengths the axpy kernel tests use: every loop and
// tail of the F32/F16 kernels (32 a step, then 8, then 1), and 1 to 33
// Q8_0 or Q4_0 blocks (only whole blocks are kept for those).
var axpyLens = []int{0, 1, 5, 7, 8, 9, 15, 31, 32, 33, 40, 63, 64, 96, 100, 257, 1056}

// axpyRef returns dst0[e] + Σ_j c[j]·W_j[e] in float64 and Σ of the
// magnitudes, the rows given dequantized.
func axpyRef(dst0 []float32, c []float32, rows [][]float32) (ref, mag []float64) {
	ref, mag = make([]float64, len(dst0)), make([]float64, len(dst0))
	for e, d := range dst0 {
		ref[e], mag[e] = float64(d), math.Abs(float64(d))
		for j, r := range rows {
			p := float64(c[j]) * float64(r[e])
			ref[e] += p
			mag[e] += math.Abs(p)
		}
	}
	return ref, mag
}

// TestAxpyRowsKernels checks the row-accumulating kernels of AxpyRows,
// assembly against the pure-Go twin and both against a float64
// reference: 1 to 4 rows of F32, F16, Q8_0 and Q4_0 (random bytes, every
// quant and finite scale), every tail length, rows at odd byte offsets
// (one of them the last bytes of w), dst inside NaN guard bands. The
// AVX-512 kernels, where the CPU has them, must give the AVX2 kernels'
// bits.
func TestAxpyRowsKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	for _, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.Q8_0, dtype.Q4_0} {
		for _, n := range axpyLens {
			if typ == dtype.Q8_0 || typ == dtype.Q4_0 {
				n *= 32
				if n > 33*32 {
					continue
				}
			}
			for g := 1; g <= 4; g++ {
				name := fmt.Sprintf("%s/n=%d/rows=%d", typ, n, g)
				nb := rdRowBytes(typ, n)
				const nrows = 6
				stride := nb + 3 // rows at odd offsets
				w := make([]byte, 1+nrows*stride-3)
				deq := make([][]float32, nrows)
				for r := range nrows {
					row := rdRawRow(rng, typ, n)
					copy(w[1+r*stride:], row)
					deq[r] = make([]float32, n)
					if err := dtype.Dequantize(typ, row, deq[r]); err != nil {
						t.Fatal(err)
					}
				}
				offs := make([]int, 2*g)
				rows := make([][]float32, g)
				c := make([]float32, g)
				for j := range g {
					r := rng.IntN(nrows)
					if j == g-1 {
						r = nrows - 1 // ends exactly at the end of w
					}
					offs[j], rows[j] = 1+r*stride, deq[r]
					offs[g+j] = 1 + rng.IntN(nrows)*stride
					c[j] = float32(rng.NormFloat64())
				}
				dst0 := rdVec(rng, n)
				run := func() []float32 {
					whole, dst := guarded(n, guard)
					copy(dst, dst0)
					cpu.AxpyRowsKernel(typ, dst, c, w, offs)
					checkGuards(t, name, whole, n, guard)
					return dst
				}
				ref, mag := axpyRef(dst0, c, rows)
				var asmZ []float32
				for _, z := range []bool{true, false} { // the AVX-512 kernels (where the CPU has them), then the AVX2 ones
					restore := cpu.SetAxpyAVX512(z)
					asm, gen := bothImpls(run)
					restore()
					if z {
						asmZ = asm
					} else {
						for e := range n { // the same operations per element
							if math.Float32bits(asm[e]) != math.Float32bits(asmZ[e]) {
								t.Fatalf("%s: dst[%d]: AVX2 %g, AVX-512 %g", name, e, asm[e], asmZ[e])
							}
						}
					}
					for e := range n {
						// each of g+1 roundings (fused or not) is within 2⁻²⁴ of mag
						tol := float64(g+1) * 0x1p-23 * mag[e]
						if d := math.Abs(float64(asm[e]) - float64(gen[e])); !(d <= tol) {
							t.Fatalf("%s (AVX-512 %v): dst[%d]: assembly %g, generic %g", name, z, e, asm[e], gen[e])
						}
						if d := math.Abs(float64(asm[e]) - ref[e]); !(d <= tol) {
							t.Fatalf("%s (AVX-512 %v): dst[%d] = %g, want %g", name, z, e, asm[e], ref[e])
						}
					}
				}
			}
		}
	}
}

// TestAxpyRowsKernelChecks: the kernels refuse rows that would reach past
// w and malformed arguments, on both paths.
func TestAxpyRowsKernelChecks(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		w := make([]byte, 34*4)
		dst := make([]float32, 64)
		c := []float32{1, 2}
		for name, f := range map[string]func(){
			"past w":        func() { cpu.AxpyRowsKernel(dtype.Q8_0, dst, c, w, []int{0, 68 + 1, 0, 0}) },
			"prefetch past": func() { cpu.AxpyRowsKernel(dtype.Q8_0, dst, c, w, []int{0, 0, 0, 69}) },
			"negative":      func() { cpu.AxpyRowsKernel(dtype.F16, dst, c, w, []int{-1, 0, 0, 0}) },
			"offsets":       func() { cpu.AxpyRowsKernel(dtype.F32, dst[:8], c, w, []int{0, 0, 0}) },
			"5 rows":        func() { cpu.AxpyRowsKernel(dtype.F32, dst[:1], make([]float32, 5), w, make([]int, 10)) },
			"Q8_0 tail":     func() { cpu.AxpyRowsKernel(dtype.Q8_0, dst[:40], c[:1], w, []int{0, 0}) },
			"Q4_0 tail":     func() { cpu.AxpyRowsKernel(dtype.Q4_0, dst[:48], c[:1], w, []int{0, 0}) },
			"Q4_0 past w":   func() { cpu.AxpyRowsKernel(dtype.Q4_0, dst, c, w, []int{0, 34*4 - 36 + 1, 0, 0}) },
			"Q4_1":          func() { cpu.AxpyRowsKernel(dtype.Q4_1, dst[:32], c[:1], w, []int{0, 0}) },
		} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s: no panic", name)
					}
				}()
				f()
			}()
		}
	})
}

// TestDotRowPrefetch checks that MatVecRows' prefetching row kernels give
// the bits of the row kernels (the same arithmetic, plus prefetches of
// another row), for every loop tail: Q4_0 (Q8_0 activations) and the
// float types.
func TestDotRowPrefetch(t *testing.T) {
	rng := rand.New(rand.NewPCG(63, 64))
	eachImpl(t, func(t *testing.T) {
		for _, blocks := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 15, 16, 17, 128} {
			for _, typ := range []dtype.Type{dtype.Q4_0, dtype.Q8_0, dtype.Q4_K} {
				n := blocks * typ.BlockSize()
				if blocks > 17 && typ == dtype.Q4_K {
					continue
				}
				row, next := rdRawRow(rng, typ, n), rdRawRow(rng, typ, n)
				var v cpu.QVec
				v.Quantize(typ, rdVec(rng, n))
				got, want := cpu.DotRowPrefetch(typ, row, next, nil, &v), cpu.DotRowQ8(typ, row, &v)
				if math.Float32bits(got) != math.Float32bits(want) {
					t.Fatalf("%s, %d blocks: %g, the row kernel gives %g", typ, blocks, got, want)
				}
			}
		}
		for _, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.BF16, dtype.Q8_0} {
			for n := 0; n <= 70; n++ {
				if typ == dtype.Q8_0 && n%32 != 0 {
					continue
				}
				row, next := rdRawRow(rng, typ, n), rdRawRow(rng, typ, n)
				x := rdVec(rng, n)
				got, want := cpu.DotRowPrefetch(typ, row, next, x, nil), cpu.DotRow(typ, row, x)
				if math.Float32bits(got) != math.Float32bits(want) {
					t.Fatalf("%s n=%d: %g, the row kernel gives %g", typ, n, got, want)
				}
			}
		}
	})
}

// TestPrefetchLines: prefetching reads nothing and cannot fault, at any
// alignment and length.
func TestPrefetchLines(t *testing.T) {
	b := make([]byte, 300)
	for lo := 0; lo < 70; lo++ {
		for _, n := range []int{0, 1, 63, 64, 65, 200} {
			cpu.PrefetchLines(b[lo : lo+n])
		}
	}
	cpu.PrefetchLines(nil)
}

// TestAxpyGroups checks the split of AxpyRows' rows into groups: whole
// passes of four rows but the last, at most eight groups, all rows
// covered, every group non-empty.
func TestAxpyGroups(t *testing.T) {
	for n := 0; n <= 2000; n++ {
		g, per := cpu.AxpyGroups(n)
		if n == 0 {
			if g != 0 {
				t.Fatalf("n=0: %d groups", g)
			}
			continue
		}
		if g < 1 || g > 8 || per%4 != 0 || (g-1)*per >= n || g*per < n {
			t.Fatalf("n=%d: %d groups of %d rows", n, g, per)
		}
	}
}

// TestDotRowsGroup checks MatVecRows' multi-row kernels (four Q4_0 rows,
// two F32, F16 or BF16 rows at once): each result the row kernel's bits,
// for every loop tail, rows at odd offsets in any order (one of them the
// last bytes of w).
func TestDotRowsGroup(t *testing.T) {
	rng := rand.New(rand.NewPCG(69, 70))
	eachImpl(t, func(t *testing.T) {
		generic := strings.HasSuffix(t.Name(), "/generic") || !cpu.HaveAsm()
		for _, typ := range []dtype.Type{dtype.Q4_0, dtype.F32, dtype.F16, dtype.BF16} {
			lens := []int{0, 1, 7, 8, 9, 31, 32, 33, 40, 64, 71, 100, 4096}
			if typ == dtype.Q4_0 {
				lens = []int{32, 64, 96, 128, 160, 192, 224, 256, 288, 352, 384, 480, 512, 544, 4096}
			}
			for _, n := range lens {
				nb := rdRowBytes(typ, n)
				const nrows = 6
				stride := nb + 5
				w := make([]byte, 3+nrows*stride-5)
				for r := range nrows {
					copy(w[3+r*stride:], rdRawRow(rng, typ, n))
				}
				x := rdVec(rng, n)
				var v *cpu.QVec
				if typ == dtype.Q4_0 {
					v = new(cpu.QVec)
					v.Quantize(typ, x)
				}
				offs := make([]int, 8)
				for j := range offs {
					offs[j] = 3 + rng.IntN(nrows)*stride
				}
				offs[1] = 3 + (nrows-1)*stride
				whole, dst := guarded(4, guard)
				g := cpu.DotRowsGroup(typ, dst, w, offs, x, v)
				if g == 0 {
					if !generic {
						t.Fatalf("%s: no multi-row kernel on the assembly path", typ)
					}
					continue
				}
				checkGuards(t, "DotRowsGroup", whole[:2*guard+g], g, guard)
				for j := range g {
					row := w[offs[j] : offs[j]+nb]
					var want float32
					if v != nil {
						want = cpu.DotRowQ8(typ, row, v)
					} else {
						want = cpu.DotRow(typ, row, x)
					}
					if math.Float32bits(dst[j]) != math.Float32bits(want) {
						t.Fatalf("%s n=%d: row %d of %d: %g, the row kernel gives %g", typ, n, j, g, dst[j], want)
					}
				}
			}
		}
	})
}

// TestMatVecRowsSparse checks MatVecRows on sparse sorted row sets (the
// engine's; few enough rows that Q4_0 takes the four-row kernel): the
// bits of MatVec for every listed row, on 1 and 3 threads.
func TestMatVecRowsSparse(t *testing.T) {
	rng := rand.New(rand.NewPCG(71, 72))
	eachImpl(t, func(t *testing.T) {
		for _, typ := range []dtype.Type{dtype.Q4_0, dtype.F16, dtype.F32, dtype.Q8_0} {
			const rows, cols = 400, 160
			rb := rdRowBytes(typ, cols)
			w := make([]byte, rows*rb)
			for r := range rows {
				copy(w[r*rb:], rdRawRow(rng, typ, cols))
			}
			x := rdVec(rng, cols)
			full := make([]float32, rows)
			p1, p3 := cpu.NewPool(1), cpu.NewPool(3)
			defer p1.Close()
			defer p3.Close()
			p3.MatVec(full, w, typ, rows, cols, x)
			for _, k := range []int{3, 4, 5, 9, 40, 101, 133} {
				idx := make([]int32, k)
				for i, r := range rng.Perm(rows)[:k] {
					idx[i] = int32(r)
				}
				slices.Sort(idx)
				idx[k-1] = rows - 1 // the last row: nothing read past w
				slices.Sort(idx)
				for _, p := range []*cpu.Pool{p1, p3} {
					whole, dst := guarded(k, guard)
					p.MatVecRows(dst, w, typ, cols, idx, x)
					checkGuards(t, "MatVecRows", whole, k, guard)
					for i, r := range idx {
						if math.Float32bits(dst[i]) != math.Float32bits(full[r]) {
							t.Fatalf("%s, %d rows, %d threads: dst[%d] (row %d) = %g, MatVec gives %g", typ, k, p.Threads(), i, r, dst[i], full[r])
						}
					}
				}
			}
		}
	})
}
