//go:build !amd64 || noasm || !gc

package cpu

import "github.com/stokehq/stoke/models/dtype"

func dotF32(row []byte, x []float32) float32  { return dotF32Generic(row, x) }
func dotF16(row []byte, x []float32) float32  { return dotF16Generic(row, x) }
func dotBF16(row []byte, x []float32) float32 { return dotBF16Generic(row, x) }

func dotF32s(a, b []float32) float32                { return dotF32sGeneric(a, b) }
func axpyF32(dst []float32, a float32, x []float32) { axpyF32Generic(dst, a, x) }
func dotHalf(a []float32, b []uint16) float32       { return dotHalfGeneric(a, b) }
func axpyHalf(dst []float32, a float32, x []uint16) { axpyHalfGeneric(dst, a, x) }

func dotFloatMulti(t dtype.Type, dst []float32, w []byte, x []float32, cols, n int) bool {
	return false
}
