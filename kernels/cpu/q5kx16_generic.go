//go:build !amd64 || noasm || !gc

package cpu

// dotQ5Kx16 is dotQ5Kx16Generic where no assembly is built.
func dotQ5Kx16(ni int, w, x []byte, nb, stride int, dst []float32) {
	dotQ5Kx16Generic(ni, w, x, nb, stride, dst)
}

// q5kx16Asm reports whether the packed Q5_K kernels run in assembly.
func q5kx16Asm() bool { return false }
