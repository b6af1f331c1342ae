package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// TestAxpyRows checks dst = Σ coef[k]·W[idx[k]] against a float64 reference
// on every computable type, with column counts that are not a multiple of
// the chunk, repeated and unsorted indices, and no allocation.
func TestAxpyRows(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		pool := cpu.NewPool(3)
		defer pool.Close()
		rng := rand.New(rand.NewPCG(1, 2))
		for _, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.BF16, dtype.Q4_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1, dtype.Q8_0, dtype.Q4_K, dtype.Q5_K, dtype.Q6_K, dtype.Q8_K} {
			for _, cols := range []int{256, 1280, 2304} {
				rows := 37
				rb, _ := typ.RowBytes(uint64(cols))
				w := make([]byte, rows*int(rb))
				deq := make([]float32, rows*cols)
				src := make([]float32, cols)
				for r := range rows {
					for c := range src {
						src[c] = float32(rng.NormFloat64())
					}
					if err := dtype.Quantize(typ, src, w[r*int(rb):(r+1)*int(rb)]); err != nil {
						t.Fatal(err)
					}
					if err := dtype.Dequantize(typ, w[r*int(rb):(r+1)*int(rb)], deq[r*cols:(r+1)*cols]); err != nil {
						t.Fatal(err)
					}
				}
				idx := []int32{5, 0, 36, 5, 17, 2}
				coef := []float32{0.5, -1.25, 2, 0.75, -0.1, 3}
				guard := make([]float32, cols+2)
				for i := range guard {
					guard[i] = float32(math.NaN())
				}
				dst := guard[1 : cols+1]
				var a cpu.AxpyRows
				a.Do(pool, dst, w, typ, cols, idx, coef)
				if !math.IsNaN(float64(guard[0])) || !math.IsNaN(float64(guard[cols+1])) {
					t.Fatalf("%s: wrote outside dst", typ)
				}
				for c := range cols {
					var want, mag float64
					for k, r := range idx {
						v := float64(coef[k]) * float64(deq[int(r)*cols+c])
						want += v
						mag += math.Abs(v)
					}
					if d := math.Abs(float64(dst[c]) - want); d > 1e-5*mag+1e-7 {
						t.Fatalf("%s cols %d: dst[%d] = %g, want %g", typ, cols, c, dst[c], want)
					}
				}
				if n := testing.AllocsPerRun(5, func() { a.Do(pool, dst, w, typ, cols, idx, coef) }); n != 0 {
					t.Errorf("%s: %v allocs per call", typ, n)
				}
				a.Do(pool, nil, w, typ, 0, idx, coef) // no columns: nothing to do
				// No pool: the same work on the calling goroutine, the
				// same bits.
				want := slices.Clone(dst)
				clear(dst)
				var b cpu.AxpyRows
				b.Do(nil, dst, w, typ, cols, idx, coef)
				for c := range cols {
					if math.Float32bits(dst[c]) != math.Float32bits(want[c]) {
						t.Fatalf("%s cols %d: without a pool dst[%d] = %g, with one %g", typ, cols, c, dst[c], want[c])
					}
				}
			}
		}
	})
}

// TestAxpyRowsGroups checks AxpyRows with many listed rows, which the F32,
// F16 and Q8_0 kernels split into groups with partial sums: against a
// float64 reference, bit for bit the same on 1, 2 and 3 threads and
// without a pool (the groups depend on the rows alone), dst overwritten (none listed: zeros),
// sorted and unsorted indices, without allocating once warm.
func TestAxpyRowsGroups(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		pools := []*cpu.Pool{cpu.NewPool(1), cpu.NewPool(2), cpu.NewPool(3), nil} // nil: on the caller
		defer func() {
			for _, p := range pools[:3] {
				p.Close()
			}
		}()
		rng := rand.New(rand.NewPCG(67, 68))
		for _, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.Q8_0, dtype.Q4_0} {
			const rows, cols = 300, 288
			rb := rdRowBytes(typ, cols)
			w := make([]byte, rows*rb)
			deq := make([]float32, rows*cols)
			for r := range rows {
				copy(w[r*rb:], rdRawRow(rng, typ, cols))
				if err := dtype.Dequantize(typ, w[r*rb:(r+1)*rb], deq[r*cols:(r+1)*cols]); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range []int{0, 1, 3, 4, 5, 16, 17, 33, 64, 127, 130, 299, 600} {
				idx := make([]int32, k)
				coef := make([]float32, k)
				for i := range idx {
					idx[i], coef[i] = int32(rng.IntN(rows)), float32(rng.NormFloat64())
				}
				if k%2 == 0 {
					slices.Sort(idx)
				}
				name := fmt.Sprintf("%s/%d rows", typ, k)
				var first []float32
				for pi, p := range pools {
					whole, dst := guarded(cols, guard)
					var a cpu.AxpyRows
					a.Do(p, dst, w, typ, cols, idx, coef)
					checkGuards(t, name, whole, cols, guard)
					if pi == 0 {
						first = append([]float32(nil), dst...)
						for c := range cols {
							var want, mag float64
							for i, r := range idx {
								v := float64(coef[i]) * float64(deq[int(r)*cols+c])
								want += v
								mag += math.Abs(v)
							}
							if d := math.Abs(float64(dst[c]) - want); !(d <= 1e-5*mag) {
								t.Fatalf("%s: dst[%d] = %g, want %g", name, c, dst[c], want)
							}
						}
						if n := testing.AllocsPerRun(3, func() { a.Do(p, dst, w, typ, cols, idx, coef) }); n != 0 {
							t.Errorf("%s: %v allocs per call", name, n)
						}
						continue
					}
					for c := range cols {
						if math.Float32bits(dst[c]) != math.Float32bits(first[c]) {
							t.Fatalf("%s: pool %d gives dst[%d] = %g, 1 thread %g", name, pi, c, dst[c], first[c])
						}
					}
				}
			}
		}
	})
}

// TestAxpyRowsZeroCoefficients: rows listed with a zero coefficient add
// nothing, and a call that lists them gives the bits of the call without
// them (the dense FFN of a ReLU layer against its sparse FFN), for every
// type with row-accumulating kernels, on 1 and 3 threads, without
// allocating once warm.
func TestAxpyRowsZeroCoefficients(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(73, 74))
		pools := []*cpu.Pool{cpu.NewPool(1), cpu.NewPool(3)}
		defer pools[0].Close()
		defer pools[1].Close()
		for _, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.Q8_0, dtype.Q4_0} {
			const rows, cols = 700, 96
			rb := rdRowBytes(typ, cols)
			w := make([]byte, rows*rb)
			for r := range rows {
				copy(w[r*rb:], rdRawRow(rng, typ, cols))
			}
			all := make([]int32, rows)
			coef := make([]float32, rows)
			var idx []int32
			var nz []float32
			for r := range rows {
				all[r] = int32(r)
				if rng.IntN(8) == 0 {
					coef[r] = float32(rng.NormFloat64())
					idx, nz = append(idx, int32(r)), append(nz, coef[r])
				} else if r%2 == 0 {
					coef[r] = float32(math.Copysign(0, -1))
				}
			}
			for _, p := range pools {
				var a, b cpu.AxpyRows
				got, want := make([]float32, cols), make([]float32, cols)
				a.Do(p, got, w, typ, cols, all, coef)
				b.Do(p, want, w, typ, cols, idx, nz)
				for c := range cols {
					if math.Float32bits(got[c]) != math.Float32bits(want[c]) {
						t.Fatalf("%s, %d threads: dst[%d] = %g with the zero rows, %g without", typ, p.Threads(), c, got[c], want[c])
					}
				}
				if n := testing.AllocsPerRun(3, func() { a.Do(p, got, w, typ, cols, all, coef) }); n != 0 {
					t.Errorf("%s: %v allocs per call", typ, n)
				}
			}
		}
	})
}

func TestKeepNonzero(t *testing.T) {
	idx := []int32{3, 5, 8, 9, 12, 20}
	a := []float32{0, 1.5, float32(math.Copysign(0, -1)), -2, 0, 7}
	n := cpu.KeepNonzero(idx, a)
	if n != 3 || !slices.Equal(idx[:n], []int32{5, 9, 20}) || !slices.Equal(a[:n], []float32{1.5, -2, 7}) {
		t.Errorf("KeepNonzero: %d, %v, %v", n, idx[:n], a[:n])
	}
	if n := cpu.KeepNonzero(nil, nil); n != 0 {
		t.Errorf("KeepNonzero of nothing: %d", n)
	}
}
