//go:build !amd64 || noasm || !gc

package cpu

// dotQ4x16 is dotQ4x16Generic where no assembly is built.
func dotQ4x16(ni int, w, x []byte, nb, stride int, dst []float32) {
	dotQ4x16Generic(ni, w, x, nb, stride, dst)
}

// dotQ8x16 is dotQ8x16Generic where no assembly is built.
func dotQ8x16(ni int, w, x []byte, nb, stride int, dst []float32) {
	dotQ8x16Generic(ni, w, x, nb, stride, dst)
}

// dotQ4Kx16 is dotQ4Kx16Generic where no assembly is built.
func dotQ4Kx16(ni int, w, x []byte, nb, stride int, dst []float32) {
	dotQ4Kx16Generic(ni, w, x, nb, stride, dst)
}
