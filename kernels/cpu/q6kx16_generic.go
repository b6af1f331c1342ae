//go:build !amd64 || noasm || !gc

package cpu

// dotQ6Kx16 is dotQ6Kx16Generic where no assembly is built.
func dotQ6Kx16(ni int, w, x []byte, nb, stride int, dst []float32) {
	dotQ6Kx16Generic(ni, w, x, nb, stride, dst)
}

// q6kx16Asm reports whether the packed Q6_K kernels run in assembly.
func q6kx16Asm() bool { return false }
