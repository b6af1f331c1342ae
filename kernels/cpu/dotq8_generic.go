//go:build !amd64 || noasm || !gc

package cpu

func dotQ8_0Q8_0(w []byte, v *QVec) float32 { return dotQ8_0Q8_0Generic(w, v) }
func dotQ4_0Q8_0(w []byte, v *QVec) float32 { return dotQ4_0Q8_0Generic(w, v) }
func dotQ4_1Q8_0(w []byte, v *QVec) float32 { return dotQ4_1Q8_0Generic(w, v) }
func dotQ5_0Q8_0(w []byte, v *QVec) float32 { return dotQ5_0Q8_0Generic(w, v) }
func dotQ5_1Q8_0(w []byte, v *QVec) float32 { return dotQ5_1Q8_0Generic(w, v) }

func dotQ4_0Q8_0Multi(dst []float32, w []byte, b *qBatch) {
	dotQ4_0Q8_0MultiGeneric(dst, w, b.v[:b.n])
}
func dotQ8_0Q8_0Multi(dst []float32, w []byte, b *qBatch) {
	dotQ8_0Q8_0MultiGeneric(dst, w, b.v[:b.n])
}
func dotQ4_1Q8_0Multi(dst []float32, w []byte, b *qBatch) {
	dotQ4_1Q8_0MultiGeneric(dst, w, b.v[:b.n])
}
func dotQ5_0Q8_0Multi(dst []float32, w []byte, b *qBatch) {
	dotQ5_0Q8_0MultiGeneric(dst, w, b.v[:b.n])
}
func dotQ5_1Q8_0Multi(dst []float32, w []byte, b *qBatch) {
	dotQ5_1Q8_0MultiGeneric(dst, w, b.v[:b.n])
}
