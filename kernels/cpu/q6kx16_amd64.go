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

// q6kx16Asm reports whether packing Q6_K matrices pays (X16Pays): where
// the AVX-512 VNNI kernels run. With AVX2 alone the packed kernels make
// 1.3–1.65× the row layout's multiply-adds per second with eight inputs,
// but 0.80–0.95× with one input from memory (BenchmarkMatMulQ6Kx16 with
// STOKE_NOVNNI=1 on the development machine; bench/results/cpu-2026-11-29e),
// and one stream's decode is what most AVX2 machines run; they keep Q6_K
// in rows, and the AVX2 kernels serve explicit callers of PackQ6Kx16.
func q6kx16Asm() bool { return useAsm && useVNNI }
