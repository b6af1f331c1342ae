package cpu

import "github.com/stokehq/stoke/models/dtype"

// AxpyRowsKernel runs the row-accumulating kernel of AxpyRows (axpy.go):
// dst += c[j]·W_j for the len(c) (1 to 4) rows of type t (F32, F16, Q8_0
// or Q4_0) at w[offs[j]:], prefetching the rows at w[offs[len(c)+j]:].
func AxpyRowsKernel(t dtype.Type, dst, c []float32, w []byte, offs []int) {
	axpyRows(t, dst, c, w, offs)
}

// SetAxpyAVX512 selects the AVX-512 row-accumulating kernels of AxpyRows
// (on, where the CPU has them) or the AVX2 ones; it returns the restore.
func SetAxpyAVX512(on bool) (restore func()) { return setAxpyAVX512(on) }

// DotRowPrefetch is MatVecRows' row kernel: the dot product of row with x
// (float weights, v nil) or with v (prepared for t), prefetching next.
func DotRowPrefetch(t dtype.Type, row, next []byte, x []float32, v *QVec) float32 {
	var a actInput
	if v != nil {
		a = actInput{f: qdotFor(t), qv: []QVec{*v}}
	}
	return dotPrefetch(t, &a, row, next, x)
}

// PrefetchLines is the prefetch of MatVecRows and AxpyRows (a no-op on the
// pure-Go path).
func PrefetchLines(b []byte) { prefetch(b) }

// AxpyGroups is AxpyRows' split of n listed rows into groups: their
// number and the rows per group.
func AxpyGroups(n int) (groups, per int) { return axpyGroups(n) }

// DotRowsGroup computes dst[j] = the row kernel's dot product of the row
// at w[offs[j]:] with x (float weights, v nil) or v (prepared for t) for
// j < len(dst), with MatVecRows' multi-row kernel, prefetching the rows
// at w[offs[len(dst)+j]:]. It returns the number of rows that kernel
// takes at once, 0 (and computes nothing) where there is none.
func DotRowsGroup(t dtype.Type, dst []float32, w []byte, offs []int, x []float32, v *QVec) int {
	var a actInput
	if v != nil {
		a = actInput{f: qdotFor(t), qv: []QVec{*v}}
	}
	g := gatherGroupFor(t, &a)
	if g == 0 {
		return 0
	}
	dotRowsGroup(t, &a, dst[:g], w, offs[:2*g], x)
	return g
}
