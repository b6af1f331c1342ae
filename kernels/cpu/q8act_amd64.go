//go:build amd64 && !noasm && gc

package cpu

// quantizeQ8_0 and quantizeQ8_K: the callers have checked that x holds nb
// blocks and dst room for them.

func quantizeQ8_0(x []float32, dst []byte, nb int) {
	if useAsm {
		quantizeQ8_0AVX2(x, dst, nb)
		return
	}
	quantizeQ8_0Generic(x, dst, nb)
}

func quantizeQ8_K(x []float32, dst []byte, nb int) {
	if useAsm {
		quantizeQ8_KAVX2(x, dst, nb)
		return
	}
	quantizeQ8_KGeneric(x, dst, nb)
}
