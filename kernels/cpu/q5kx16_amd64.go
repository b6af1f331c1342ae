//go:build amd64 && !noasm && gc

package cpu

// dotQ5Kx16 is dotQ5Kx16Generic, in assembly wherever the assembly runs:
// the AVX-512 VNNI kernels where useVNNI allows, else the AVX-VNNI ones
// where useAVXVNNI does, the AVX2 ones elsewhere (the same bits every
// way).
func dotQ5Kx16(ni int, w, x []byte, nb, stride int, dst []float32) {
	if useAsm && haveAVX2 && (ni == 8 || ni == 4 || ni == 2 || ni == 1) {
		_ = w[:nb*q5kx16Unit]
		_ = x[:nb*q4kx16In*ni]
		_ = dst[:(ni-1)*stride+Q4x16Rows]
		if useVNNI {
			switch ni {
			case 8:
				dotQ5Kx16x8VNNI(w, x, nb, stride, dst)
			case 4:
				dotQ5Kx16x4VNNI(w, x, nb, stride, dst)
			case 2:
				dotQ5Kx16x2VNNI(w, x, nb, stride, dst)
			default:
				dotQ5Kx16x1VNNI(w, x, nb, stride, dst)
			}
			return
		}
		if useAVXVNNI {
			switch ni {
			case 8:
				dotQ5Kx16x8AVXVNNI(w, x, nb, stride, dst)
			case 4:
				dotQ5Kx16x4AVXVNNI(w, x, nb, stride, dst)
			case 2:
				dotQ5Kx16x2AVXVNNI(w, x, nb, stride, dst)
			default:
				dotQ5Kx16x1AVXVNNI(w, x, nb, stride, dst)
			}
			return
		}
		switch ni {
		case 8:
			dotQ5Kx16x8AVX2(w, x, nb, stride, dst)
		case 4:
			dotQ5Kx16x4AVX2(w, x, nb, stride, dst)
		case 2:
			dotQ5Kx16x2AVX2(w, x, nb, stride, dst)
		default:
			dotQ5Kx16x1AVX2(w, x, nb, stride, dst)
		}
		return
	}
	dotQ5Kx16Generic(ni, w, x, nb, stride, dst)
}

// q5kx16Asm reports whether the packed Q5_K kernels run in assembly, and
// so whether packing Q5_K pays (X16Pays): where the AVX-512 VNNI kernels
// run, and where the AVX2 ones do. With AVX2 alone (STOKE_NOVNNI=1 on
// the development machine, 2 threads) the packed kernels made 1.4–1.6×
// the row layout's multiply-adds per second with eight inputs, in cache
// and from memory, and with one input 1.2–1.9× in cache and 1.02–1.45×
// from memory in 19 of 20 paired runs (median 1.17×; noisy, the other
// at 0.63×) (BenchmarkMatMulQ5Kx16).
func q5kx16Asm() bool { return useAsm && haveAVX2 }
