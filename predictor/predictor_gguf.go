package predictor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// The predictor sidecar. Tensors, per layer N (GGUF shapes, ne0 first), as
// PowerInfer names them:
//
//	blk.N.fc1.weight  [Dim, Rank]   F16 (F32 when a value is not a half), or W1's type
//	blk.N.fc2.weight  [Rank, FFN]
//	blk.N.fc1.bias    F32 [Rank]    only when B1 is set
//	blk.N.fc2.bias    F32 [FFN]     only when B2 is set
//
// Keys: powerinfer.sparse_threshold (float32: the layers' common Threshold,
// 0 when they differ) and, one element per layer where an array:
//
//	stoke.predictor.version        uint32  1
//	stoke.predictor.layer_count    uint32
//	stoke.predictor.dim, .rank, .ffn       [uint64]
//	stoke.predictor.threshold      [float32]  output thresholds
//	stoke.predictor.act_threshold  [float32]  only when ActThreshold is set
//	stoke.predictor.recall, .precision, .sparsity, .true_sparsity  [float32]
const (
	KeySparseThreshold = "powerinfer.sparse_threshold"

	keyPredPrefix       = "stoke.predictor."
	keyPredVersion      = keyPredPrefix + "version"
	keyPredLayers       = keyPredPrefix + "layer_count"
	keyPredDim          = keyPredPrefix + "dim"
	keyPredRank         = keyPredPrefix + "rank"
	keyPredFFN          = keyPredPrefix + "ffn"
	keyPredThreshold    = keyPredPrefix + "threshold"
	keyPredActThreshold = keyPredPrefix + "act_threshold"
	keyPredRecall       = keyPredPrefix + "recall"
	keyPredPrecision    = keyPredPrefix + "precision"
	keyPredSparsity     = keyPredPrefix + "sparsity"
	keyPredTrueSparsity = keyPredPrefix + "true_sparsity"

	predictorVersion = 1
)

// TensorFC1, TensorFC2 and their biases name layer l's predictor tensors.
func TensorFC1(l int) string     { return fmt.Sprintf("blk.%d.fc1.weight", l) }
func TensorFC2(l int) string     { return fmt.Sprintf("blk.%d.fc2.weight", l) }
func TensorFC1Bias(l int) string { return fmt.Sprintf("blk.%d.fc1.bias", l) }
func TensorFC2Bias(l int) string { return fmt.Sprintf("blk.%d.fc2.bias", l) }

// WriteGGUF writes the predictor as a GGUF sidecar at path. meta adds
// string keys (the model's sha, the profile used, ...); a key that collides
// with one written here is an error. Float32 weights are stored as F16 when
// every value is exactly a half (Train rounds them so), else as F32; weights
// held in stored form (W1, W2) are written as they are.
func (p *Predictor) WriteGGUF(path string, meta map[string]string) error {
	n := len(p.Layers)
	if n > MaxLayers {
		return fmt.Errorf("predictor: %d layers, over the limit of %d", n, MaxLayers)
	}
	if p.ActThreshold != nil && len(p.ActThreshold) != n {
		return fmt.Errorf("predictor: %d activation thresholds for %d layers", len(p.ActThreshold), n)
	}
	w := gguf.NewWriter(3)
	dims, ranks, ffns := make([]int, n), make([]int, n), make([]int, n)
	thr := make([]float32, n)
	var rec, prec, sp, tsp []float32
	for i := range p.Layers {
		lp := &p.Layers[i]
		if err := lp.Check(); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		dims[i], ranks[i], ffns[i], thr[i] = lp.Dim, lp.Rank, lp.FFN, lp.Threshold
		m := lp.Measured
		rec = append(rec, float32(m.Recall))
		prec = append(prec, float32(m.Precision))
		sp = append(sp, float32(m.Sparsity))
		tsp = append(tsp, float32(m.TrueSparsity))
	}
	common := float32(0)
	if n > 0 && !slices.ContainsFunc(thr, func(t float32) bool { return t != thr[0] }) {
		common = thr[0]
	}
	w.AddKV(KeySparseThreshold, gguf.Float32(common))
	w.AddKV(keyPredVersion, gguf.Uint32(predictorVersion))
	w.AddKV(keyPredLayers, gguf.Uint32(uint32(n)))
	w.AddKV(keyPredDim, uint64s(dims))
	w.AddKV(keyPredRank, uint64s(ranks))
	w.AddKV(keyPredFFN, uint64s(ffns))
	w.AddKV(keyPredThreshold, gguf.Float32s(thr))
	if p.ActThreshold != nil {
		w.AddKV(keyPredActThreshold, gguf.Float32s(p.ActThreshold))
	}
	w.AddKV(keyPredRecall, gguf.Float32s(rec))
	w.AddKV(keyPredPrecision, gguf.Float32s(prec))
	w.AddKV(keyPredSparsity, gguf.Float32s(sp))
	w.AddKV(keyPredTrueSparsity, gguf.Float32s(tsp))
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == KeySparseThreshold || isReservedPredKey(k) {
			return fmt.Errorf("predictor: metadata key %q is written by WriteGGUF", k)
		}
		w.AddKV(k, gguf.String(meta[k]))
	}

	for i := range p.Layers {
		lp := &p.Layers[i]
		s1 := []uint64{uint64(lp.Dim), uint64(lp.Rank)}
		s2 := []uint64{uint64(lp.Rank), uint64(lp.FFN)}
		var err error
		switch {
		case lp.W1 != nil:
			if err = w.AddTensor(TensorFC1(i), lp.Type, s1, lp.W1); err == nil {
				err = w.AddTensor(TensorFC2(i), lp.Type, s2, lp.W2)
			}
		case allHalves(lp.FC1) && allHalves(lp.FC2):
			if err = w.AddTensor(TensorFC1(i), dtype.F16, s1, f16Bytes(lp.FC1)); err == nil {
				err = w.AddTensor(TensorFC2(i), dtype.F16, s2, f16Bytes(lp.FC2))
			}
		default:
			if err = w.AddTensorFunc(TensorFC1(i), dtype.F32, s1, f32Writer(lp.FC1)); err == nil {
				err = w.AddTensorFunc(TensorFC2(i), dtype.F32, s2, f32Writer(lp.FC2))
			}
		}
		if err == nil && lp.B1 != nil {
			err = w.AddTensor(TensorFC1Bias(i), dtype.F32, []uint64{uint64(lp.Rank)}, f32Bytes(lp.B1))
		}
		if err == nil && lp.B2 != nil {
			err = w.AddTensor(TensorFC2Bias(i), dtype.F32, []uint64{uint64(lp.FFN)}, f32Bytes(lp.B2))
		}
		if err != nil {
			return fmt.Errorf("predictor: %w", err)
		}
	}
	if err := gguf.WriteFile(path, w); err != nil {
		return fmt.Errorf("predictor: writing predictor: %w", err)
	}
	return nil
}

func isReservedPredKey(k string) bool {
	switch k {
	case keyPredVersion, keyPredLayers, keyPredDim, keyPredRank, keyPredFFN, keyPredThreshold,
		keyPredActThreshold, keyPredRecall, keyPredPrecision, keyPredSparsity, keyPredTrueSparsity:
		return true
	}
	return false
}

// allHalves reports whether every value is exactly a binary16 value.
func allHalves(x []float32) bool {
	for _, v := range x {
		if dtype.F16ToF32(dtype.F32ToF16(v)) != v {
			return false
		}
	}
	return true
}

func f16Bytes(x []float32) []byte {
	b := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(b[2*i:], dtype.F32ToF16(v))
	}
	return b
}

// roundHalves rounds x to binary16 precision in place if every value is
// within the binary16 range, and reports whether it did.
func roundHalves(x []float32) bool {
	for _, v := range x {
		if !(math.Abs(float64(v)) <= maxF16) {
			return false
		}
	}
	for i, v := range x {
		x[i] = dtype.F16ToF32(dtype.F32ToF16(v))
	}
	return true
}

// Tensor is one stored tensor handed to FromTensors: its type, GGUF shape
// (ne0 first) and bytes.
type Tensor struct {
	Type  dtype.Type
	Shape []uint64
	Data  []byte
}

// LayerFromTensors builds a layer predictor from stored fc1 ([Dim, Rank])
// and fc2 ([Rank, FFN]) tensors of one computable type, such as a
// PowerInfer model's blk.N.fc1.weight and blk.N.fc2.weight. The data is
// referenced, not copied (an mmapped file must stay open); the predictor
// has no biases and the given output threshold.
func LayerFromTensors(fc1, fc2 Tensor, threshold float32) (LayerPredictor, error) {
	if len(fc1.Shape) != 2 || len(fc2.Shape) != 2 {
		return LayerPredictor{}, fmt.Errorf("predictor: fc1 shape %v and fc2 shape %v are not matrices", fc1.Shape, fc2.Shape)
	}
	if fc1.Type != fc2.Type {
		return LayerPredictor{}, fmt.Errorf("predictor: fc1 is %s but fc2 is %s", fc1.Type, fc2.Type)
	}
	dim, rank, rank2, ffn := fc1.Shape[0], fc1.Shape[1], fc2.Shape[0], fc2.Shape[1]
	if rank != rank2 {
		return LayerPredictor{}, fmt.Errorf("predictor: fc1 shape %v and fc2 shape %v disagree on the rank", fc1.Shape, fc2.Shape)
	}
	for _, v := range []uint64{dim, rank, ffn} {
		if v < 1 || v > MaxWidth {
			return LayerPredictor{}, fmt.Errorf("predictor: fc1 shape %v, fc2 shape %v: a dimension is outside [1, %d]", fc1.Shape, fc2.Shape, MaxWidth)
		}
	}
	if math.IsNaN(float64(threshold)) {
		return LayerPredictor{}, fmt.Errorf("predictor: threshold is NaN")
	}
	lp := LayerPredictor{Dim: int(dim), Rank: int(rank), FFN: int(ffn), Threshold: threshold, Type: fc1.Type, W1: fc1.Data, W2: fc2.Data}
	if lp.W1 == nil {
		lp.W1 = []byte{} // stored form even when empty, so Check reports the size
	}
	if err := lp.Check(); err != nil {
		return LayerPredictor{}, err
	}
	return lp, nil
}

// FromTensors builds a predictor from per-layer fc1 and fc2 tensors (see
// LayerFromTensors) with one output threshold for all layers (a PowerInfer
// file's powerinfer.sparse_threshold). Activation thresholds are 0: the
// models PowerInfer serves are ReLU models.
func FromTensors(fc1, fc2 []Tensor, threshold float32) (*Predictor, error) {
	if len(fc1) != len(fc2) || len(fc1) > MaxLayers {
		return nil, fmt.Errorf("predictor: %d fc1 and %d fc2 tensors", len(fc1), len(fc2))
	}
	p := &Predictor{Layers: make([]LayerPredictor, len(fc1)), ActThreshold: make([]float32, len(fc1))}
	for i := range fc1 {
		lp, err := LayerFromTensors(fc1[i], fc2[i], threshold)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		p.Layers[i] = lp
	}
	return p, nil
}

// ReadPredictorGGUF reads a predictor sidecar written by WriteGGUF, or the
// predictors embedded in a PowerInfer model file (layers blk.0 … while
// blk.N.fc1.weight exists). Everything is copied out of the file. F32
// weights become FC1/FC2; any other type is kept in stored form (W1/W2).
func ReadPredictorGGUF(path string) (*Predictor, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("predictor: %w", err)
	}
	defer f.Close()
	p, err := readPredictor(f)
	if err != nil {
		return nil, fmt.Errorf("predictor: %s: %w", path, err)
	}
	return p, nil
}

func readPredictor(f *gguf.File) (*Predictor, error) {
	_, stoke := f.Get(keyPredVersion)
	if stoke {
		if v, _ := f.Uint(keyPredVersion); v != predictorVersion {
			return nil, fmt.Errorf("predictor version %d, this build reads %d", v, predictorVersion)
		}
	}
	var n int
	if stoke {
		var err error
		if n, err = uintKey(f, keyPredLayers, MaxLayers); err != nil {
			return nil, err
		}
	} else {
		for n < MaxLayers {
			if _, ok := f.Tensor(TensorFC1(n)); !ok {
				break
			}
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("no predictor tensors (%s)", TensorFC1(0))
		}
	}

	thr := make([]float32, n)
	if v, ok := f.Get(KeySparseThreshold); ok {
		t, ok := v.Float()
		if !ok || math.IsNaN(t) {
			return nil, fmt.Errorf("key %q is not a number", KeySparseThreshold)
		}
		for i := range thr {
			thr[i] = float32(t)
		}
	}
	p := &Predictor{Layers: make([]LayerPredictor, n), ActThreshold: make([]float32, n)}
	var dims, ranks, ffns []int
	var measured [4][]float32
	if stoke {
		var err error
		if dims, err = intArray(f, keyPredDim, n, MaxWidth); err != nil {
			return nil, err
		}
		if ranks, err = intArray(f, keyPredRank, n, MaxWidth); err != nil {
			return nil, err
		}
		if ffns, err = intArray(f, keyPredFFN, n, MaxWidth); err != nil {
			return nil, err
		}
		if thr, err = floatArray(f, keyPredThreshold, n); err != nil {
			return nil, err
		}
		if _, ok := f.Get(keyPredActThreshold); ok {
			if p.ActThreshold, err = floatArray(f, keyPredActThreshold, n); err != nil {
				return nil, err
			}
		}
		for j, k := range []string{keyPredRecall, keyPredPrecision, keyPredSparsity, keyPredTrueSparsity} {
			if _, ok := f.Get(k); ok {
				if measured[j], err = floatArray(f, k, n); err != nil {
					return nil, err
				}
			}
		}
	}

	for i := range n {
		fc1, err := storedTensor(f, TensorFC1(i))
		if err != nil {
			return nil, err
		}
		fc2, err := storedTensor(f, TensorFC2(i))
		if err != nil {
			return nil, err
		}
		lp, err := LayerFromTensors(fc1, fc2, thr[i])
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if stoke && (lp.Dim != dims[i] || lp.Rank != ranks[i] || lp.FFN != ffns[i]) {
			return nil, fmt.Errorf("layer %d: tensors are %d×%d×%d, keys say %d×%d×%d", i, lp.Dim, lp.Rank, lp.FFN, dims[i], ranks[i], ffns[i])
		}
		lp.W1 = bytes.Clone(lp.W1)
		lp.W2 = bytes.Clone(lp.W2)
		if lp.Type == dtype.F32 {
			lp.FC1, lp.FC2 = make([]float32, lp.Rank*lp.Dim), make([]float32, lp.FFN*lp.Rank)
			_ = dtype.Dequantize(dtype.F32, lp.W1, lp.FC1)
			_ = dtype.Dequantize(dtype.F32, lp.W2, lp.FC2)
			lp.W1, lp.W2, lp.Type = nil, nil, dtype.F32
		}
		if lp.B1, err = biasTensor(f, TensorFC1Bias(i), lp.Rank); err != nil {
			return nil, err
		}
		if lp.B2, err = biasTensor(f, TensorFC2Bias(i), lp.FFN); err != nil {
			return nil, err
		}
		for j, dst := range []*float64{&lp.Measured.Recall, &lp.Measured.Precision, &lp.Measured.Sparsity, &lp.Measured.TrueSparsity} {
			if measured[j] != nil {
				*dst = float64(measured[j][i])
			}
		}
		p.Layers[i] = lp
	}
	return p, nil
}

// storedTensor returns a tensor of the file as a Tensor (data not copied).
func storedTensor(f *gguf.File, name string) (Tensor, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return Tensor{}, fmt.Errorf("tensor %q is missing", name)
	}
	data := f.TensorData(t)
	if uint64(len(data)) != t.Size {
		return Tensor{}, fmt.Errorf("tensor %q: data outside the file", name)
	}
	return Tensor{Type: t.Type, Shape: t.Shape, Data: data}, nil
}

// biasTensor reads an optional 1-D bias of n values (F32 or F16).
func biasTensor(f *gguf.File, name string, n int) ([]float32, error) {
	if _, ok := f.Tensor(name); !ok {
		return nil, nil
	}
	t, data, err := tensor(f, name, uint64(n))
	if err != nil {
		return nil, err
	}
	if t.Type != dtype.F32 && t.Type != dtype.F16 {
		return nil, fmt.Errorf("tensor %q is %s, want F32 or F16", name, t.Type)
	}
	b := make([]float32, n)
	if err := dtype.Dequantize(t.Type, data, b); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	return b, nil
}
