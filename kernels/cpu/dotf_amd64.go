//go:build amd64 && !noasm && gc

package cpu

import (
	"unsafe"

	"github.com/stokehq/stoke/models/dtype"
)

// Dispatch of the float row kernels: row holds len(x) elements (the
// callers slice it).

func dotF32(row []byte, x []float32) float32 {
	if useAsm {
		return dotF32AVX2(row[:4*len(x)], x, len(x))
	}
	return dotF32Generic(row, x)
}

func dotF16(row []byte, x []float32) float32 {
	if useAsm {
		return dotF16AVX2(row[:2*len(x)], x, len(x))
	}
	return dotF16Generic(row, x)
}

func dotBF16(row []byte, x []float32) float32 {
	if useAsm {
		return dotBF16AVX2(row[:2*len(x)], x, len(x))
	}
	return dotBF16Generic(row, x)
}

// bytesOf views the elements of s as bytes.
func bytesOf[T float32 | uint16](s []T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(T(0))))
}

// Vector kernels of ops.go and attention.go; the callers have checked the
// lengths (b, x at least as long as a, dst).

func dotF32s(a, b []float32) float32 {
	if useAsm {
		return dotF32AVX2(bytesOf(a), b, len(a))
	}
	return dotF32sGeneric(a, b)
}

func axpyF32(dst []float32, a float32, x []float32) {
	if useAsm {
		axpyF32AVX2(dst, a, bytesOf(x[:len(dst)]), len(dst))
		return
	}
	axpyF32Generic(dst, a, x)
}

func dotHalf(a []float32, b []uint16) float32 {
	if useAsm {
		return dotF16AVX2(bytesOf(b[:len(a)]), a, len(a))
	}
	return dotHalfGeneric(a, b)
}

func axpyHalf(dst []float32, a float32, x []uint16) {
	if useAsm {
		axpyF16AVX2(dst, a, bytesOf(x[:len(dst)]), len(dst))
		return
	}
	axpyHalfGeneric(dst, a, x)
}

// dotFloatMulti runs the float multi-input kernel of t for n (2 or 3)
// inputs of cols values each, x holding them one after another, and
// reports whether there was one.
func dotFloatMulti(t dtype.Type, dst []float32, w []byte, x []float32, cols, n int) bool {
	stride := 4 * cols
	switch {
	case t == dtype.F32 && n == 3:
		dotF32x3AVX2(w[:4*cols], x, stride, cols, dst[:3])
	case t == dtype.F32 && n == 2:
		dotF32x2AVX2(w[:4*cols], x, stride, cols, dst[:2])
	case t == dtype.F16 && n == 3:
		dotF16x3AVX2(w[:2*cols], x, stride, cols, dst[:3])
	case t == dtype.F16 && n == 2:
		dotF16x2AVX2(w[:2*cols], x, stride, cols, dst[:2])
	case t == dtype.BF16 && n == 3:
		dotBF16x3AVX2(w[:2*cols], x, stride, cols, dst[:3])
	case t == dtype.BF16 && n == 2:
		dotBF16x2AVX2(w[:2*cols], x, stride, cols, dst[:2])
	default:
		return false
	}
	return true
}
