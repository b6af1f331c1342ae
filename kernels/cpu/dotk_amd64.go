//go:build amd64 && !noasm && gc

package cpu

// Dispatch of the Q8_K-activation row kernels; the callers have checked
// that w covers v.

func dotQ4_KQ8_K(w []byte, v *QVec) float32 {
	if useAsm {
		if useVNNI {
			return dotQ4_KQ8_KVNNI(w, v.blocks, v.d, v.nb)
		}
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
		if useVNNI {
			return dotQ6_KQ8_KVNNI(w, v.blocks, v.d, v.nb)
		}
		return dotQ6_KQ8_KAVX2(w, v.blocks, v.d, v.nb)
	}
	return dotQ6_KQ8_KGeneric(w, v)
}

// Dispatch of the multi-input kernels; the callers have checked that w
// covers the inputs of b and that dst has room for them.

func dotQ4_KQ8_KMulti(dst []float32, w []byte, b *qBatch) {
	if useAsm && useVNNI {
		switch b.n {
		case 4:
			dotQ4_KQ8_Kx4VNNI(w, b.x, nil, b.nb, dst)
			return
		case 2:
			dotQ4_KQ8_Kx2VNNI(w, b.x, nil, b.nb, dst)
			return
		}
	}
	if useAsm {
		switch b.n {
		case 4:
			dotQ4_KQ8_Kx4AVX2(w, b.x, nil, b.nb, dst)
			return
		case 2:
			dotQ4_KQ8_Kx2AVX2(w, b.x, nil, b.nb, dst)
			return
		}
	}
	dotQ4_KQ8_KMultiGeneric(dst, w, b.v[:b.n])
}

func dotQ5_KQ8_KMulti(dst []float32, w []byte, b *qBatch) {
	if useAsm {
		switch b.n {
		case 4:
			dotQ5_KQ8_Kx4AVX2(w, b.x, nil, b.nb, dst)
			return
		case 2:
			dotQ5_KQ8_Kx2AVX2(w, b.x, nil, b.nb, dst)
			return
		}
	}
	dotQ5_KQ8_KMultiGeneric(dst, w, b.v[:b.n])
}

func dotQ6_KQ8_KMulti(dst []float32, w []byte, b *qBatch) {
	if useAsm && useVNNI {
		switch b.n {
		case 4:
			dotQ6_KQ8_Kx4VNNI(w, b.x, nil, b.nb, dst)
			return
		case 2:
			dotQ6_KQ8_Kx2VNNI(w, b.x, nil, b.nb, dst)
			return
		}
	}
	if useAsm {
		switch b.n {
		case 4:
			dotQ6_KQ8_Kx4AVX2(w, b.x, nil, b.nb, dst)
			return
		case 2:
			dotQ6_KQ8_Kx2AVX2(w, b.x, nil, b.nb, dst)
			return
		}
	}
	dotQ6_KQ8_KMultiGeneric(dst, w, b.v[:b.n])
}
