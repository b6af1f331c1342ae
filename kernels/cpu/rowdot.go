package cpu

import (
	"encoding/binary"
	"math"

	"github.com/stokehq/stoke/models/dtype"
)

// PLACEHOLDER owned by the quantized-kernels work: it will be replaced by
// per-dtype fused kernels. Only F32 is handled here so that the drivers
// compile and can be tested meanwhile.

// DotRow returns Σ_c row[c]·x[c] where row holds len(x) elements of type t.
func DotRow(t dtype.Type, row []byte, x []float32) float32 {
	var s float32
	for i := range x {
		s += math.Float32frombits(binary.LittleEndian.Uint32(row[4*i:])) * x[i]
	}
	return s
}

// DequantizeRow writes the len(dst) elements encoded in row to dst.
func DequantizeRow(t dtype.Type, row []byte, dst []float32) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(row[4*i:]))
	}
}
