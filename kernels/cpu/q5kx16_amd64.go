//go:build amd64 && !noasm && gc

package cpu

// dotQ5Kx16 is dotQ5Kx16Generic, in assembly where the VNNI kernels run.
func dotQ5Kx16(ni int, w, x []byte, nb, stride int, dst []float32) {
	if q5kx16Asm() && (ni == 8 || ni == 4 || ni == 2 || ni == 1) {
		_ = w[:nb*q5kx16Unit]
		_ = x[:nb*q4kx16In*ni]
		_ = dst[:(ni-1)*stride+Q4x16Rows]
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
	dotQ5Kx16Generic(ni, w, x, nb, stride, dst)
}

// q5kx16Asm reports whether the packed Q5_K kernels run in assembly, and
// so whether packing Q5_K pays (X16Pays): where the AVX-512 VNNI kernels
// run.
func q5kx16Asm() bool { return useAsm && useVNNI }
