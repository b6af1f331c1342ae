//go:build amd64 && !noasm && gc

package cpu

// Dispatch of the Q8_K-activation row kernels; the callers have checked
// that w covers v.

func dotQ4_KQ8_K(w []byte, v *QVec) float32 {
	if useAsm {
		return dotQ4_KQ8_KAVX2(w, v.blocks, v.d, v.nb)
	}
	return dotQ4_KQ8_KGeneric(w, v)
}

func dotQ5_KQ8_K(w []byte, v *QVec) float32 {
	if useAsm {
		return dotQ5_KQ8_KAVX2(w, v.blocks, v.d, v.nb)
	}
	return dotQ5_KQ8_KGeneric(w, v)
}

func dotQ6_KQ8_K(w []byte, v *QVec) float32 {
	if useAsm {
		return dotQ6_KQ8_KAVX2(w, v.blocks, v.d, v.nb)
	}
	return dotQ6_KQ8_KGeneric(w, v)
}
