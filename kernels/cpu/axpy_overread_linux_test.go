package cpu_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// TestAxpyKernelsStayInBounds runs the sparse kernels (the axpy rows of
// AxpyRows, the prefetching row kernels of MatVecRows) with rows and dst
// against an unmapped page, for every loop tail.
func TestAxpyKernelsStayInBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(65, 66))
	eachImpl(t, func(t *testing.T) {
		for _, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.Q8_0, dtype.Q4_0} {
			for _, n := range axpyLens {
				if typ == dtype.Q8_0 || typ == dtype.Q4_0 {
					n *= 32
				}
				nb := rdRowBytes(typ, n)
				for g := 1; g <= 4; g++ {
					w := fenced(t, g*nb)
					offs := make([]int, 2*g)
					for j := range g {
						copy(w[j*nb:], rdRawRow(r, typ, n))
						offs[j], offs[g+j] = j*nb, (g-1-j)*nb
					}
					dst := fencedFloats(t, n)
					copy(dst, rdVec(r, n))
					cpu.AxpyRowsKernel(typ, dst, rdVec(r, g), w, offs)
				}
			}
		}
		for _, blocks := range []int{1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17} {
			n := 32 * blocks
			row, next := fenced(t, rdRowBytes(dtype.Q4_0, n)), fenced(t, rdRowBytes(dtype.Q4_0, n))
			copy(row, rdRawRow(r, dtype.Q4_0, n))
			var v cpu.QVec
			v.Quantize(dtype.Q4_0, rdVec(r, n))
			_ = cpu.DotRowPrefetch(dtype.Q4_0, row, next, nil, &v)
		}
		for _, typ := range []dtype.Type{dtype.Q4_0, dtype.F32, dtype.F16, dtype.BF16} { // the multi-row kernels
			for n := 0; n <= 17*32; n++ {
				if typ == dtype.Q4_0 && n%32 != 0 || typ != dtype.Q4_0 && n > 70 {
					continue
				}
				nb := rdRowBytes(typ, n)
				w := fenced(t, 4*nb)
				offs := make([]int, 8)
				for j := range 4 {
					copy(w[j*nb:], rdRawRow(r, typ, n))
				}
				for j := range offs {
					offs[j] = (j * 5 % 4) * nb
				}
				x := fencedFloats(t, n)
				copy(x, rdVec(r, n))
				var v *cpu.QVec
				if typ == dtype.Q4_0 && n > 0 {
					v = new(cpu.QVec)
					v.Quantize(typ, x)
				}
				cpu.DotRowsGroup(typ, fencedFloats(t, 4), w, offs, x, v)
			}
		}
		for _, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.BF16} {
			for n := 0; n <= 70; n++ {
				row, next := fenced(t, rdRowBytes(typ, n)), fenced(t, rdRowBytes(typ, n))
				copy(row, rdRawRow(r, typ, n))
				x := fencedFloats(t, n)
				copy(x, rdVec(r, n))
				_ = cpu.DotRowPrefetch(typ, row, next, x, nil)
			}
		}
	})
}
