package engine

import (
	"fmt"

	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/offload"
)

// OffloadDesc describes the model to the offload planner: every tensor a
// device would hold, by its GGUF name and the bytes the engine keeps for
// it (the file's bytes for weight matrices, 4 per value for the float32
// norm and bias vectors), and per layer the bytes of one neuron's gate,
// up and neuron-major down rows, the down rows being those the sparse FFN
// reads (ffn_down_t, or ffn_down re-encoded as neuronMajorDown does).
//
// freq[l][i] is neuron i of layer l's firing frequency (a profile's
// LayerProfile.Rate); freq, or one layer's entry, may be nil: unknown.
// The KV cache is described as F32 (KVType 4); set KVType to 2 for an F16
// cache.
func (m *Model) OffloadDesc(freq [][]float64) (*offload.Desc, error) {
	c := &m.Config
	if freq != nil && len(freq) != c.Layers {
		return nil, fmt.Errorf("engine: %d layers of frequencies for a %d-layer model", len(freq), c.Layers)
	}
	name := c.Name
	if name == "" {
		name = m.Path
	}
	d := &offload.Desc{
		Name: name, Dim: c.Dim, FFN: c.FFN, QDim: c.QDim(), KVDim: c.KVDim(), Vocab: c.Vocab,
		OutputBytes: int64(len(m.W.Output.Data)),
		OutNorm:     4 * int64(len(m.outNorm)+len(m.outNormB)),
		KVType:      dtype.F32.TypeSize(),
		Layers:      make([]offload.LayerDesc, c.Layers),
	}
	for l := range m.W.Layers {
		lw, lv, ld := &m.W.Layers[l], &m.layers[l], &d.Layers[l]
		ld.Attn = appendVecs(nil, vec32{lw.AttnNorm, lv.attnNorm}, vec32{lw.AttnNormB, lv.attnNormB})
		ld.Attn = appendMats(ld.Attn, lw.Q)
		ld.Attn = appendVecs(ld.Attn, vec32{lw.QB, lv.qb})
		ld.Attn = appendMats(ld.Attn, lw.K)
		ld.Attn = appendVecs(ld.Attn, vec32{lw.KB, lv.kb})
		ld.Attn = appendMats(ld.Attn, lw.V)
		ld.Attn = appendVecs(ld.Attn, vec32{lw.VB, lv.vb})
		ld.Attn = appendMats(ld.Attn, lw.O)
		ld.Attn = appendVecs(ld.Attn, vec32{lw.OB, lv.ob}, vec32{lw.QNorm, lv.qNorm}, vec32{lw.KNorm, lv.kNorm})
		ld.FFNFixed = appendVecs(nil, vec32{lw.FFNNorm, lv.ffnNorm}, vec32{lw.FFNNormB, lv.ffnNormB}, vec32{lw.DownB, lv.downB})
		ld.Predictor = appendMats(nil, lw.FC1, lw.FC2)
		if c.Gated {
			ld.GateRow = int64(lw.Gate.RowBytes())
			ld.GateBias = lv.gateB != nil
		}
		ld.UpRow = int64(lw.Up.RowBytes())
		ld.UpBias = lv.upB != nil
		down, err := neuronMajorRowBytes(lw, c.Dim)
		if err != nil {
			return nil, fmt.Errorf("engine: layer %d: %w", l, err)
		}
		ld.DownRow = down
		if freq != nil && freq[l] != nil {
			if len(freq[l]) != c.FFN {
				return nil, fmt.Errorf("engine: layer %d has %d frequencies for %d neurons", l, len(freq[l]), c.FFN)
			}
			ld.Freq = freq[l]
		}
	}
	if err := d.Check(); err != nil {
		return nil, err
	}
	return d, nil
}

// neuronMajorRowBytes is the size of one row of the neuron-major down
// projection the sparse FFN uses: ffn_down_t's when the file has it, else
// the row of neuronMajorDown's re-encoding (the float type kept, quantized
// types as Q8_0, F16 when dim is not a whole number of blocks).
func neuronMajorRowBytes(lw *arch.Layer, dim int) (int64, error) {
	if lw.DownT != nil {
		return int64(lw.DownT.RowBytes()), nil
	}
	typ := lw.Down.Type
	switch typ {
	case dtype.F32, dtype.F16, dtype.BF16:
	default:
		typ = dtype.Q8_0
	}
	if dim%typ.BlockSize() != 0 {
		typ = dtype.F16
	}
	rb, err := typ.RowBytes(uint64(dim))
	return int64(rb), err
}

// appendMats appends weight tensors (nil ones skipped) with their file
// bytes.
func appendMats(ts []offload.Tensor, ms ...*arch.Tensor) []offload.Tensor {
	for _, t := range ms {
		if t != nil {
			ts = append(ts, offload.Tensor{Name: t.Name, Bytes: int64(len(t.Data))})
		}
	}
	return ts
}

// vec32 is a vector tensor and the float32 copy the engine decoded.
type vec32 struct {
	t *arch.Tensor
	v []float32
}

// appendVecs appends vector tensors (absent ones skipped) with the bytes
// of the engine's float32 copies.
func appendVecs(ts []offload.Tensor, vs ...vec32) []offload.Tensor {
	for _, v := range vs {
		if v.t != nil {
			ts = append(ts, offload.Tensor{Name: v.t.Name, Bytes: 4 * int64(len(v.v))})
		}
	}
	return ts
}
