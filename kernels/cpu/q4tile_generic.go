//go:build !amd64 || noasm || !gc

package cpu

func dotQ4_0Q8_0Acc(acc *q4Accs, w []byte, b *qBatch, b0, nb int) {
	dotQ4_0Q8_0AccGeneric(acc, w, b.v[:b.n], b0, nb)
}
