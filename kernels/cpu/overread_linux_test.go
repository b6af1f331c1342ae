package cpu_test

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// fenced returns n bytes that end exactly where an inaccessible page
// begins: a kernel that reads or writes one byte past them faults.
func fenced(t *testing.T, n int) []byte {
	t.Helper()
	page := syscall.Getpagesize()
	size := (n+page-1)/page*page + page
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skip("mmap:", err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[size-page:], syscall.PROT_NONE); err != nil {
		t.Skip("mprotect:", err)
	}
	return mem[size-page-n : size-page : size-page]
}

func fencedFloats(t *testing.T, n int) []float32 {
	b := fenced(t, 4*n)
	if n == 0 {
		return []float32{}
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
}

// TestKernelsStayInBounds runs every kernel with its operands against an
// unmapped page (the assembly loads 16 or 32 bytes at a time, so a
// miscounted tail would fault here even where a guard band would not
// notice), for block counts that exercise every loop tail.
func TestKernelsStayInBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	eachImpl(t, func(t *testing.T) {
		for _, typ := range q8Types {
			at := cpu.ActivationType(typ)
			for _, blocks := range []int{1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17} {
				n := blocks * at.BlockSize()
				x := fencedFloats(t, n)
				copy(x, rdVec(r, n))
				xq := fenced(t, rdRowBytes(at, n))
				if at == dtype.Q8_0 {
					cpu.QuantizeQ8_0(x, xq)
				} else {
					cpu.QuantizeQ8_K(x, xq)
				}
				var v cpu.QVec
				v.AliasBlocks(typ, xq)
				v.FenceScales(fencedFloats(t, v.ScaleCount()))
				row := fenced(t, rdRowBytes(typ, n))
				copy(row, rdQuantRow(r, typ, n))
				_ = cpu.DotRowQ8(typ, row, &v)
				for _, ni := range cpu.MultiSizes(typ) {
					vs := make([]*cpu.QVec, ni)
					for j := range vs {
						vs[j] = new(cpu.QVec)
						vs[j].Quantize(typ, rdVec(r, n))
					}
					_ = cpu.DotRowQ8Multi(typ, row, vs)
				}
			}
		}
		p := cpu.NewPool(1)
		defer p.Close()
		for _, typ := range []dtype.Type{dtype.F32, dtype.F16, dtype.BF16} {
			for n := 0; n <= 70; n++ {
				x := fencedFloats(t, n)
				copy(x, rdVec(r, n))
				row := fenced(t, rdRowBytes(typ, n))
				copy(row, rdQuantRow(r, typ, n))
				_ = cpu.DotRow(typ, row, x)
				for _, ni := range []int{2, 3} { // MatMul's float multi-input kernels
					if n == 0 {
						break
					}
					xs := fencedFloats(t, ni*n)
					copy(xs, rdVec(r, ni*n))
					p.MatMul(fencedFloats(t, ni), row, typ, 1, n, xs, ni)
				}
			}
		}
		for n := 0; n <= 70; n++ {
			x, y := fencedFloats(t, n), fencedFloats(t, n)
			copy(x, rdVec(r, n))
			copy(y, rdVec(r, n))
			_ = cpu.Dot(x, y)
			cpu.Axpy(y, 0.5, x)
		}
	})
}
