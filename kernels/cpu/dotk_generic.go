//go:build !amd64 || noasm || !gc

package cpu

func dotQ4_KQ8_K(w []byte, v *QVec) float32 { return dotQ4_KQ8_KGeneric(w, v) }
func dotQ5_KQ8_K(w []byte, v *QVec) float32 { return dotQ5_KQ8_KGeneric(w, v) }
func dotQ6_KQ8_K(w []byte, v *QVec) float32 { return dotQ6_KQ8_KGeneric(w, v) }

func dotQ4_KQ8_KMulti(dst []float32, w []byte, b *qBatch) {
	dotQ4_KQ8_KMultiGeneric(dst, w, b.v[:b.n])
}
func dotQ5_KQ8_KMulti(dst []float32, w []byte, b *qBatch) {
	dotQ5_KQ8_KMultiGeneric(dst, w, b.v[:b.n])
}
func dotQ6_KQ8_KMulti(dst []float32, w []byte, b *qBatch) {
	dotQ6_KQ8_KMultiGeneric(dst, w, b.v[:b.n])
}
