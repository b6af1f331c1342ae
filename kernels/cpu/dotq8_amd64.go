//go:build amd64 && !noasm && gc

package cpu

// Dispatch of the Q8_0-activation row kernels; the callers have checked
// that w covers v.

func dotQ8_0Q8_0(w []byte, v *QVec) float32 {
	if useAsm {
		return dotQ8_0Q8_0AVX2(w, v.blocks, v.d, v.nb)
	}
	return dotQ8_0Q8_0Generic(w, v)
}

func dotQ4_0Q8_0(w []byte, v *QVec) float32 {
	if useAsm {
		return dotQ4_0Q8_0AVX2(w, v.pairs, v.d, v.nb)
	}
	return dotQ4_0Q8_0Generic(w, v)
}

func dotQ4_1Q8_0(w []byte, v *QVec) float32 {
	if useAsm {
		return dotQ4_1Q8_0AVX2(w, v.blocks, v.d, v.nb)
	}
	return dotQ4_1Q8_0Generic(w, v)
}
func dotQ5_0Q8_0(w []byte, v *QVec) float32 {
	if useAsm {
		return dotQ5_0Q8_0AVX2(w, v.blocks, v.d, v.nb)
	}
	return dotQ5_0Q8_0Generic(w, v)
}
func dotQ5_1Q8_0(w []byte, v *QVec) float32 {
	if useAsm {
		return dotQ5_1Q8_0AVX2(w, v.blocks, v.d, v.nb)
	}
	return dotQ5_1Q8_0Generic(w, v)
}
