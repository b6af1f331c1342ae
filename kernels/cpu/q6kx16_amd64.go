//go:build amd64 && !noasm && gc

package cpu

// dotQ6Kx16 is dotQ6Kx16Generic, in assembly wherever the assembly runs:
// the AVX-512 VNNI kernels where useVNNI allows, the AVX2 ones elsewhere
// (the same bits either way).
func dotQ6Kx16(ni int, w, x []byte, nb, stride int, dst []float32) {
	if useAsm && haveAVX2 && (ni == 8 || ni == 4 || ni == 2 || ni == 1) {
		_ = w[:nb*q6kx16Unit]
		_ = x[:nb*q6kx16In*ni]
		_ = dst[:(ni-1)*stride+Q4x16Rows]
		if useVNNI {
			switch ni {
			case 8:
				dotQ6Kx16x8VNNI(w, x, nb, stride, dst)
			case 4:
				dotQ6Kx16x4VNNI(w, x, nb, stride, dst)
			case 2:
				dotQ6Kx16x2VNNI(w, x, nb, stride, dst)
			default:
				dotQ6Kx16x1VNNI(w, x, nb, stride, dst)
			}
			return
		}
		switch ni {
		case 8:
			dotQ6Kx16x8AVX2(w, x, nb, stride, dst)
		case 4:
			dotQ6Kx16x4AVX2(w, x, nb, stride, dst)
		case 2:
			dotQ6Kx16x2AVX2(w, x, nb, stride, dst)
		default:
			dotQ6Kx16x1AVX2(w, x, nb, stride, dst)
		}
		return
	}
	dotQ6Kx16Generic(ni, w, x, nb, stride, dst)
}

// q6kx16Asm reports whether the packed Q6_K kernels run in assembly:
// wherever the assembly does, the AVX-512 VNNI kernels or the AVX2 ones.
// It decides whether the engine packs Q6_K (X16Pays), which pays with
// AVX2 alone too: with eight inputs the AVX2 kernels make about 1.5
// times the row layout's multiply-adds per second (BenchmarkMatMulQ6Kx16
// with STOKE_NOVNNI=1 on the development machine, in cache and from
// memory), and with one input about as many (more in cache, within a few
// percent from memory).
func q6kx16Asm() bool { return useAsm && haveAVX2 }
