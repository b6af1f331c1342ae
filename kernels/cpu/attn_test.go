package cpu_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
)

// TestAttnKernels checks that attention's whole-row kernels give the bits
// of their per-position forms (Dot and Axpy per position, whichever
// implementation runs), for head dimensions with and without a vector
// path, positions 1 to 40 and a cache stride wider than a head, with
// guards after the outputs.
func TestAttnKernels(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(8, 8))
		for _, hd := range []int{8, 24, 40, 64, 72, 128, 13} {
			for _, n := range []int{1, 2, 7, 40} {
				stride := 3*hd + 8
				k := randSlice(rng, (n-1)*stride+hd, 1)
				q := randSlice(rng, hd, 1)
				var want, got [2][]float32
				for i, f := range []func([]float32, []float32, []float32, int, float32){cpu.AttnScoresGo, cpu.AttnScores} {
					dw, s := guarded(n, guard)
					f(s, q, k, stride, 0.125)
					checkGuards(t, "attnScores", dw, n, guard)
					want[i] = s
				}
				p := randSlice(rng, n, 1)
				for i, f := range []func([]float32, []float32, []float32, int){cpu.AttnValuesGo, cpu.AttnValues} {
					dw, o := guarded(hd, guard)
					for j := range o {
						o[j] = 9 // overwritten
					}
					f(o, p, k, stride)
					checkGuards(t, "attnValues", dw, hd, guard)
					got[i] = o
				}
				for i := range want[0] {
					if !sameBits(want[0][i], want[1][i]) {
						t.Fatalf("hd=%d n=%d: score %d: %v, per position %v", hd, n, i, want[1][i], want[0][i])
					}
				}
				for i := range got[0] {
					if !sameBits(got[0][i], got[1][i]) {
						t.Fatalf("hd=%d n=%d: value %d: %v, per position %v", hd, n, i, got[1][i], got[0][i])
					}
				}
			}
		}
	})
}
