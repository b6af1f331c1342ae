package synth

import "github.com/stokehq/stoke/models/dtype"

// quantize encodes one row with models/dtype's reference quantizers (the
// ggml quantize_row_*_ref equivalents).
func quantize(t dtype.Type, src []float32, dst []byte) error {
	return dtype.Quantize(t, src, dst)
}
