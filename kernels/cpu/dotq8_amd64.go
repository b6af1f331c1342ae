//go:build amd64 && !noasm && gc

package cpu

// Dispatch of the Q8_0-activation row kernels; the callers have checked
// that w covers v.

func dotQ8_0Q8_0(w []byte, v *QVec) float32 {
	if useAsm {
		if useVNNI {
			return dotQ8_0Q8_0VNNI(w, v.blocks, v.d, v.nb)
		}
		return dotQ8_0Q8_0AVX2(w, v.blocks, v.d, v.nb)
	}
	return dotQ8_0Q8_0Generic(w, v)
}

func dotQ4_0Q8_0(w []byte, v *QVec) float32 {
	if useAsm {
		if useVNNI {
			return dotQ4_0Q8_0VNNI(w, v.quads, v.d, v.nb)
		}
		return dotQ4_0Q8_0AVX2(w, v.quads, v.d, v.nb)
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

// Dispatch of the multi-input kernels; the callers have checked that w
// covers the inputs of b and that dst has room for them.

func dotQ4_0Q8_0Multi(dst []float32, w []byte, b *qBatch) {
	if useAsm && useVNNI { // b.x is interleaved by q4VNNIUnit
		switch b.n {
		case 8:
			dotQ4_0Q8_0x8VNNI(w, b.x, nil, b.nb, dst)
			return
		case 4:
			dotQ4_0Q8_0x4VNNI(w, b.x, nil, b.nb, dst)
			return
		case 2:
			dotQ4_0Q8_0x2VNNI(w, b.x, nil, b.nb, dst)
			return
		}
	}
	if useAsm {
		switch b.n {
		case 8:
			dotQ4_0Q8_0x8AVX2(w, b.x, nil, b.nb, dst)
			return
		case 4:
			dotQ4_0Q8_0x4AVX2(w, b.x, nil, b.nb, dst)
			return
		case 2:
			dotQ4_0Q8_0x2AVX2(w, b.x, nil, b.nb, dst)
			return
		}
	}
	dotQ4_0Q8_0MultiGeneric(dst, w, b.v[:b.n])
}

func dotQ8_0Q8_0Multi(dst []float32, w []byte, b *qBatch) {
	if useAsm && useVNNI { // b.x is q8VNNIQuants' layout
		switch b.n {
		case 8:
			dotQ8_0Q8_0x8VNNI(w, b.x, b.d, b.nb, dst)
			return
		case 4:
			dotQ8_0Q8_0x4VNNI(w, b.x, b.d, b.nb, dst)
			return
		case 2:
			dotQ8_0Q8_0x2VNNI(w, b.x, b.d, b.nb, dst)
			return
		}
	}
	if useAsm && b.n == 2 {
		dotQ8_0Q8_0x2AVX2(w, b.x, b.d, b.nb, dst)
		return
	}
	dotQ8_0Q8_0MultiGeneric(dst, w, b.v[:b.n])
}

func dotQ4_1Q8_0Multi(dst []float32, w []byte, b *qBatch) {
	if useAsm {
		dotQ4_1Q8_0x2AVX2(w, b.x, b.d, b.nb, dst)
		return
	}
	dotQ4_1Q8_0MultiGeneric(dst, w, b.v[:b.n])
}

func dotQ5_0Q8_0Multi(dst []float32, w []byte, b *qBatch) {
	if useAsm {
		dotQ5_0Q8_0x2AVX2(w, b.x, b.d, b.nb, dst)
		return
	}
	dotQ5_0Q8_0MultiGeneric(dst, w, b.v[:b.n])
}

func dotQ5_1Q8_0Multi(dst []float32, w []byte, b *qBatch) {
	if useAsm {
		dotQ5_1Q8_0x2AVX2(w, b.x, b.d, b.nb, dst)
		return
	}
	dotQ5_1Q8_0MultiGeneric(dst, w, b.v[:b.n])
}
