package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// BenchmarkAxpyRowsKernel times the row-accumulating kernels of AxpyRows
// on four rows of 4096 elements that stay in cache (the kernel's compute
// speed; AxpyRows on a 7B down reads from DRAM, see TestSparseFFNTable).
// ns/op is per four rows; MB/s is weight bytes per second. The AVX-512
// kernels run where the CPU has them, and the AVX2 ones (/avx2).
func BenchmarkAxpyRowsKernel(b *testing.B) {
	const n = 4096
	r := rand.New(rand.NewPCG(5, 6))
	for _, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.Q8_0, dtype.Q4_0} {
		for _, g := range []int{1, 4} {
			for _, z := range []bool{true, false} {
				name := fmt.Sprintf("%s/rows=%d", typ, g)
				if !z {
					name += "/avx2"
				}
				b.Run(name, func(b *testing.B) {
					defer cpu.SetAxpyAVX512(z)()
					nb := rdRowBytes(typ, n)
					w := make([]byte, 4*nb)
					for j := range 4 {
						copy(w[j*nb:], rdRawRow(r, typ, n))
					}
					dst := rdVec(r, n)
					c := rdVec(r, g)
					offs := make([]int, 2*g)
					for j := range g {
						offs[j], offs[g+j] = j*nb, j*nb
					}
					b.SetBytes(int64(4 * nb))
					for b.Loop() {
						for k := 0; k < 4; k += g {
							cpu.AxpyRowsKernel(typ, dst, c, w, offs)
						}
					}
				})
			}
		}
	}
}
