package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// BenchmarkMatMul/<dtype>/n=<inputs> runs MatMul on a 512×2048 matrix with
// n inputs on one thread: compute-bound, the weights (0.3–4 MiB) stay in
// cache. Reported: multiply-adds per second
// (weights × inputs). multi=false runs the row kernel per input (SetMulti),
// the comparison within one run that a shared machine allows; on a busy
// machine compare the best of several runs (-count).
//
//	go test ./kernels/cpu -run '^$' -bench MatMul -benchtime 20x
func BenchmarkMatMul(b *testing.B) {
	const rows, cols = 512, 2048
	for _, typ := range []dtype.Type{dtype.Q4_0, dtype.Q8_0, dtype.Q4_K, dtype.Q6_K, dtype.Q4_1, dtype.Q5_0, dtype.F16, dtype.F32} {
		w := randomWeights(b, typ, rows, cols)
		rng := rand.New(rand.NewPCG(3, 4))
		for _, n := range []int{1, 2, 4, 8, 32} {
			for _, multi := range []bool{false, true} {
				b.Run(fmt.Sprintf("%s/n=%d/multi=%v", typ, n, multi), func(b *testing.B) {
					defer cpu.SetMulti(multi)()
					p := cpu.NewPool(1)
					defer p.Close()
					x := randSlice(rng, n*cols, 1)
					dst := make([]float32, n*rows)
					p.MatMul(dst, w, typ, rows, cols, x, n)
					b.ReportAllocs()
					for b.Loop() {
						p.MatMul(dst, w, typ, rows, cols, x, n)
					}
					sec := b.Elapsed().Seconds()
					b.ReportMetric(float64(rows*cols*n)*float64(b.N)/sec/1e9, "GMAC/s")
				})
			}
		}
	}
}
