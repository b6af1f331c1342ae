//go:build !amd64 || noasm || !gc

package cpu

func quantizeQ8_0(x []float32, dst []byte, nb int) { quantizeQ8_0Generic(x, dst, nb) }
func quantizeQ8_K(x []float32, dst []byte, nb int) { quantizeQ8_KGeneric(x, dst, nb) }
