//go:build !amd64 || noasm || !gc

package cpu

func dotQ8_0Q8_0(w []byte, v *QVec) float32 { return dotQ8_0Q8_0Generic(w, v) }
func dotQ4_0Q8_0(w []byte, v *QVec) float32 { return dotQ4_0Q8_0Generic(w, v) }
func dotQ4_1Q8_0(w []byte, v *QVec) float32 { return dotQ4_1Q8_0Generic(w, v) }
func dotQ5_0Q8_0(w []byte, v *QVec) float32 { return dotQ5_0Q8_0Generic(w, v) }
func dotQ5_1Q8_0(w []byte, v *QVec) float32 { return dotQ5_1Q8_0Generic(w, v) }
