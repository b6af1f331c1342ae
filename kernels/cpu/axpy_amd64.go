//go:build amd64 && !noasm && gc

package cpu

import (
	"fmt"

	"github.com/stokehq/stoke/models/dtype"
	xcpu "golang.org/x/sys/cpu"
)

// haveAxpyAVX512 reports whether the row-accumulating kernels can run in
// their AVX-512 (F) form, which gives the AVX2 kernels' bits with half
// the instructions or fewer (for Q4_0 a third: a VPERMPS table lookup per
// 16 elements instead of a widen, subtract and convert per 8; see axpy.go
// and _generate/axpy.go); x/sys/cpu also checks that the OS saves the ZMM
// registers.
var haveAxpyAVX512 = haveAVX2 && xcpu.X86.HasAVX512F

// useAxpyAVX512 selects the AVX-512 kernels where the CPU has them; tests
// turn it off (setAxpyAVX512) to run the AVX2 ones on the same machine.
var useAxpyAVX512 = haveAxpyAVX512

// setAxpyAVX512 selects the AVX-512 row-accumulating kernels (on, where
// the CPU has them) or the AVX2 ones, and returns a function that
// restores the previous choice. For tests; not while kernels run.
func setAxpyAVX512(on bool) (restore func()) {
	old := useAxpyAVX512
	useAxpyAVX512 = haveAxpyAVX512 && on
	return func() { useAxpyAVX512 = old }
}

// axpyRows adds c[j]·W_j to dst for the len(c) (1 to axpyGroup) rows of
// type t (F32, F16, Q8_0 or Q4_0) at w[offs[j]:], each len(dst) elements, and
// prefetches the rows at w[offs[len(c)+j]:] (see axpy.go).
func axpyRows(t dtype.Type, dst, c []float32, w []byte, offs []int) {
	if !useAsm {
		axpyRowsGeneric(t, dst, c, w, offs)
		return
	}
	checkAxpyRows(t, dst, c, w, offs)
	z := useAxpyAVX512
	if len(c) == axpyGroup {
		switch {
		case t == dtype.F32 && z:
			axpyF32x4AVX512(dst, c, w, offs)
		case t == dtype.F32:
			axpyF32x4AVX2(dst, c, w, offs)
		case t == dtype.F16 && z:
			axpyF16x4AVX512(dst, c, w, offs)
		case t == dtype.F16:
			axpyF16x4AVX2(dst, c, w, offs)
		case t == dtype.Q8_0 && z:
			axpyQ8_0x4AVX512(dst, c, w, offs)
		case t == dtype.Q8_0:
			axpyQ8_0x4AVX2(dst, c, w, offs)
		case z:
			axpyQ4_0x4AVX512(dst, c, w, offs)
		default:
			axpyQ4_0x4AVX2(dst, c, w, offs)
		}
		return
	}
	for j := range c {
		cj, o := c[j:j+1], []int{offs[j], offs[len(c)+j]}
		switch {
		case t == dtype.F32 && z:
			axpyF32x1AVX512(dst, cj, w, o)
		case t == dtype.F32:
			axpyF32x1AVX2(dst, cj, w, o)
		case t == dtype.F16 && z:
			axpyF16x1AVX512(dst, cj, w, o)
		case t == dtype.F16:
			axpyF16x1AVX2(dst, cj, w, o)
		case t == dtype.Q8_0 && z:
			axpyQ8_0x1AVX512(dst, cj, w, o)
		case t == dtype.Q8_0:
			axpyQ8_0x1AVX2(dst, cj, w, o)
		case z:
			axpyQ4_0x1AVX512(dst, cj, w, o)
		default:
			axpyQ4_0x1AVX2(dst, cj, w, o)
		}
	}
}

// prefetch asks for the cache lines of b (PREFETCHT0) on the assembly
// path; the pure-Go path does nothing.
func prefetch(b []byte) {
	if useAsm {
		prefetchLines(b)
	}
}

// dotPrefetch returns a.dot(t, row, x, 0), the row kernel's result for
// row against the call's first input, and prefetches next (a row of the
// same length) while it reads row: inside the kernel, line by line, for
// the types with a prefetching twin of their row kernel (Q4_0 with Q8_0
// activations, F32, F16, BF16; the arithmetic is the row kernel's
// instructions), before it for the others.
func dotPrefetch(t dtype.Type, a *actInput, row, next []byte, x []float32) float32 {
	if !useAsm {
		return a.dot(t, row, x, 0)
	}
	if a.f != nil {
		if t == dtype.Q4_0 {
			v := &a.qv[0]
			n := 18 * v.nb
			return dotQ4_0Q8_0pfAVX2(row[:n], v.quads, v.d, v.nb, next[:n])
		}
		prefetchLines(next)
		return a.dot(t, row, x, 0)
	}
	switch t {
	case dtype.F32:
		n := 4 * len(x)
		return dotF32pfAVX2(row[:n], x, len(x), next[:n])
	case dtype.F16:
		n := 2 * len(x)
		return dotF16pfAVX2(row[:n], x, len(x), next[:n])
	case dtype.BF16:
		n := 2 * len(x)
		return dotBF16pfAVX2(row[:n], x, len(x), next[:n])
	}
	prefetchLines(next)
	return a.dot(t, row, x, 0)
}

// gatherGroupMax is the most rows dotRowsGroup computes at once.
const gatherGroupMax = 4

// gatherGroupFor returns the number of rows dotRowsGroup computes at once
// for rows of type t with the call's input a: 4 for Q4_0 (Q8_0
// activations), 2 for F32, F16 and BF16, 0 where it has no kernel.
func gatherGroupFor(t dtype.Type, a *actInput) int {
	switch {
	case !useAsm:
		return 0
	case a.f != nil:
		if t == dtype.Q4_0 {
			return 4
		}
		return 0
	case t == dtype.F32 || t == dtype.F16 || t == dtype.BF16:
		return 2
	}
	return 0
}

// dotRowsGroup computes dst[j] = a.dot(t, the row at w[offs[j]:], x, 0)
// for j < g = len(dst) = gatherGroupFor(t, a), the row kernel's bits, g
// rows in one pass, prefetching the rows at w[offs[g+j]:].
func dotRowsGroup(t dtype.Type, a *actInput, dst []float32, w []byte, offs []int, x []float32) {
	g := len(dst)
	var n int
	switch t {
	case dtype.Q4_0:
		n = 18 * a.qv[0].nb
	case dtype.F32:
		n = 4 * len(x)
	default:
		n = 2 * len(x)
	}
	if g != gatherGroupFor(t, a) || len(offs) != 2*g {
		panic(fmt.Sprintf("cpu: dotRowsGroup of %d %s rows, %d offsets", g, t, len(offs)))
	}
	for _, o := range offs {
		if o < 0 || o > len(w)-n {
			panic(fmt.Sprintf("cpu: dotRowsGroup row at %d of %d bytes past the %d weight bytes", o, n, len(w)))
		}
	}
	switch t {
	case dtype.Q4_0:
		v := &a.qv[0]
		if useVNNI {
			dotQ4_0Q8_0r4VNNI(w, offs, v.quads, v.d, v.nb, dst)
		} else {
			dotQ4_0Q8_0r4AVX2(w, offs, v.quads, v.d, v.nb, dst)
		}
	case dtype.F32:
		dotF32r2AVX2(w, offs, x, len(x), dst)
	case dtype.F16:
		dotF16r2AVX2(w, offs, x, len(x), dst)
	case dtype.BF16:
		dotBF16r2AVX2(w, offs, x, len(x), dst)
	}
}
