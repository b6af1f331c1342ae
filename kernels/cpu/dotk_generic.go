//go:build !amd64 || noasm || !gc

package cpu

func dotQ4_KQ8_K(w []byte, v *QVec) float32 { return dotQ4_KQ8_KGeneric(w, v) }
func dotQ5_KQ8_K(w []byte, v *QVec) float32 { return dotQ5_KQ8_KGeneric(w, v) }
func dotQ6_KQ8_K(w []byte, v *QVec) float32 { return dotQ6_KQ8_KGeneric(w, v) }
