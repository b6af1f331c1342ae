//go:build amd64 && !noasm && gc

package cpu

// dotQ4_0Q8_0Acc is dotQ4_0Q8_0AccGeneric(acc, w, b's inputs, b0, nb) for
// a batch b of eight Q4_0 inputs; the caller has checked that w holds the
// nb blocks and that blocks [b0, b0+nb) are the inputs'.
func dotQ4_0Q8_0Acc(acc *q4Accs, w []byte, b *qBatch, b0, nb int) {
	if useAsm {
		const stride = maxMulti * q4QuadBytes
		q0 := b0 / 4
		if useVNNI {
			dotQ4_0Q8_0x8AccVNNI(w[:18*nb], b.x[q0*stride:(q0+(nb+3)/4)*stride], nb, acc[:])
			return
		}
		dotQ4_0Q8_0x8AccAVX2(w[:18*nb], b.x[q0*stride:(q0+(nb+3)/4)*stride], nb, acc[:])
		return
	}
	dotQ4_0Q8_0AccGeneric(acc, w, b.v[:b.n], b0, nb)
}
