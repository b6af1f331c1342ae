//go:build amd64 && !noasm && gc

package cpu

// dotQ4x16 is dotQ4x16Generic, in assembly wherever the assembly runs:
// the AVX-512 VNNI kernels where useVNNI allows, else the AVX-VNNI ones
// where useAVXVNNI does, the AVX2 ones elsewhere (the same bits every
// way).
func dotQ4x16(ni int, w, x []byte, nb, stride int, dst []float32) {
	if useAsm && haveAVX2 && (ni == 8 || ni == 4 || ni == 2 || ni == 1) {
		_ = w[:nb*q4x16Unit]
		_ = x[:nb*40*ni]
		_ = dst[:(ni-1)*stride+Q4x16Rows]
		if useVNNI {
			switch ni {
			case 8:
				dotQ4x16x8VNNI(w, x, nb, stride, dst)
			case 4:
				dotQ4x16x4VNNI(w, x, nb, stride, dst)
			case 2:
				dotQ4x16x2VNNI(w, x, nb, stride, dst)
			default:
				dotQ4x16x1VNNI(w, x, nb, stride, dst)
			}
			return
		}
		if useAVXVNNI {
			switch ni {
			case 8:
				dotQ4x16x8AVXVNNI(w, x, nb, stride, dst)
			case 4:
				dotQ4x16x4AVXVNNI(w, x, nb, stride, dst)
			case 2:
				dotQ4x16x2AVXVNNI(w, x, nb, stride, dst)
			default:
				dotQ4x16x1AVXVNNI(w, x, nb, stride, dst)
			}
			return
		}
		switch ni {
		case 8:
			dotQ4x16x8AVX2(w, x, nb, stride, dst)
		case 4:
			dotQ4x16x4AVX2(w, x, nb, stride, dst)
		case 2:
			dotQ4x16x2AVX2(w, x, nb, stride, dst)
		default:
			dotQ4x16x1AVX2(w, x, nb, stride, dst)
		}
		return
	}
	dotQ4x16Generic(ni, w, x, nb, stride, dst)
}

// dotQ8x16 is dotQ8x16Generic, in assembly where the VNNI kernels run.
func dotQ8x16(ni int, w, x []byte, nb, stride int, dst []float32) {
	if useAsm && useVNNI && (ni == 8 || ni == 4 || ni == 2 || ni == 1) {
		_ = w[:nb*q8x16Unit]
		_ = x[:nb*40*ni]
		_ = dst[:(ni-1)*stride+Q4x16Rows]
		switch ni {
		case 8:
			dotQ8x16x8VNNI(w, x, nb, stride, dst)
		case 4:
			dotQ8x16x4VNNI(w, x, nb, stride, dst)
		case 2:
			dotQ8x16x2VNNI(w, x, nb, stride, dst)
		default:
			dotQ8x16x1VNNI(w, x, nb, stride, dst)
		}
		return
	}
	dotQ8x16Generic(ni, w, x, nb, stride, dst)
}

// dotQ4Kx16 is dotQ4Kx16Generic, in assembly wherever the assembly runs:
// the AVX-512 VNNI kernels where useVNNI allows, else the AVX-VNNI ones
// where useAVXVNNI does, the AVX2 ones elsewhere (the same bits every
// way).
func dotQ4Kx16(ni int, w, x []byte, nb, stride int, dst []float32) {
	if useAsm && haveAVX2 && (ni == 8 || ni == 4 || ni == 2 || ni == 1) {
		_ = w[:nb*q4kx16Unit]
		_ = x[:nb*q4kx16In*ni]
		_ = dst[:(ni-1)*stride+Q4x16Rows]
		if useVNNI {
			switch ni {
			case 8:
				dotQ4Kx16x8VNNI(w, x, nb, stride, dst)
			case 4:
				dotQ4Kx16x4VNNI(w, x, nb, stride, dst)
			case 2:
				dotQ4Kx16x2VNNI(w, x, nb, stride, dst)
			default:
				dotQ4Kx16x1VNNI(w, x, nb, stride, dst)
			}
			return
		}
		if useAVXVNNI {
			switch ni {
			case 8:
				dotQ4Kx16x8AVXVNNI(w, x, nb, stride, dst)
			case 4:
				dotQ4Kx16x4AVXVNNI(w, x, nb, stride, dst)
			case 2:
				dotQ4Kx16x2AVXVNNI(w, x, nb, stride, dst)
			default:
				dotQ4Kx16x1AVXVNNI(w, x, nb, stride, dst)
			}
			return
		}
		switch ni {
		case 8:
			dotQ4Kx16x8AVX2(w, x, nb, stride, dst)
		case 4:
			dotQ4Kx16x4AVX2(w, x, nb, stride, dst)
		case 2:
			dotQ4Kx16x2AVX2(w, x, nb, stride, dst)
		default:
			dotQ4Kx16x1AVX2(w, x, nb, stride, dst)
		}
		return
	}
	dotQ4Kx16Generic(ni, w, x, nb, stride, dst)
}
