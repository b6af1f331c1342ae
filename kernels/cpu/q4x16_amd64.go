//go:build amd64 && !noasm && gc

package cpu

// dotQ4x16 is dotQ4x16Generic, in assembly where the VNNI kernels run.
func dotQ4x16(ni int, w, x []byte, nb, stride int, dst []float32) {
	if useAsm && useVNNI {
		_ = w[nb*q4x16Unit-1]
		_ = x[nb*40*ni-1]
		_ = dst[(ni-1)*stride+Q4x16Rows-1]
		switch ni {
		case 8:
			dotQ4x16x8VNNI(w, x, nb, stride, dst)
			return
		case 4:
			dotQ4x16x4VNNI(w, x, nb, stride, dst)
			return
		case 2:
			dotQ4x16x2VNNI(w, x, nb, stride, dst)
			return
		case 1:
			dotQ4x16x1VNNI(w, x, nb, stride, dst)
			return
		}
	}
	dotQ4x16Generic(ni, w, x, nb, stride, dst)
}
