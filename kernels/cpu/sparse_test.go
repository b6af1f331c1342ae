package cpu_test

import (
	"math"
	"math/rand/v2"
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
			}
		}
	})
}
