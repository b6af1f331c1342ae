package cpu_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// BenchmarkQVecQuantize times QVec.Quantize of a 4096-element vector (the
// activation quantization before every quantized mat-vec of a 7B model's
// attention and FFN inputs) for weights of each activation layout: Q4_0
// (Q8_0 blocks plus the Q4_0 kernels' layout), Q8_0 and Q4_K (Q8_K).
func BenchmarkQVecQuantize(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	x := rdVec(r, 4096)
	for _, typ := range []dtype.Type{dtype.Q4_0, dtype.Q8_0, dtype.Q4_K} {
		b.Run(typ.String(), func(b *testing.B) {
			var v cpu.QVec
			v.Quantize(typ, x)
			b.ReportAllocs()
			for b.Loop() {
				v.Quantize(typ, x)
			}
		})
	}
}
