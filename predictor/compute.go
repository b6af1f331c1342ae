package predictor

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/stokehq/stoke/models/dtype"
)

// The forms a predictor is computed from. A predictor's cost per token
// is the bytes it reads, and the ones PowerInfer ships are F16 and large:
// a 7B ReluLLaMA's hold about a third of its FFN's bytes. So a sparse
// decode that computes 10% of the FFN spends much of its time in the
// predictor. RankMajor lets Predict read about half of FC2, Quantized
// re-encodes the weights in fewer bytes.

// RankMajor returns p with each stored layer's FC2 also held rank-major
// (W2T), which Predict then reads, skipping the rows ReLU zeroed. For F16,
// BF16 and F32 weights this moves the same values; block-quantized ones
// (Q8_0, Q4_0, …) cannot be transposed without re-encoding, which would
// round W2's values a second time (on a random Q4_0 layer it moved scores
// by a tenth of the largest, enough to change a PowerInfer predictor's
// choices at its threshold 0), so those layers keep W2 alone unless
// Quantized built their W2T from the original values. Layers already
// rank-major, or held as floats only (FC1/FC2, as Train works), are left
// as they are. W1 and W2 are shared with p, which is unchanged; W2T adds
// FC2's bytes again (and nothing more: the elements are moved as bytes).
func (p *Predictor) RankMajor() (*Predictor, error) {
	q := &Predictor{Layers: make([]LayerPredictor, len(p.Layers)), ActThreshold: p.ActThreshold}
	err := eachLayer(len(p.Layers), func(l int) error {
		lp := p.Layers[l]
		if err := lp.Check(); err != nil {
			return err
		}
		if lp.W1 != nil && lp.W2T == nil && lp.Type.BlockSize() == 1 {
			lp.W2T = transposedBytes(lp.W2, lp.FFN, lp.Rank, lp.Type.TypeSize())
		}
		q.Layers[l] = lp
		return nil
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

// Quantized returns p with every layer's weights re-encoded in type t
// (Q8_0 or Q4_0, or F16), for the CPU to read in a half or about a
// quarter of the bytes of F16. The scores move by the quantization error
// (Q8_0: about 0.4% of a row's largest weight per weight), so a neuron
// whose score sits at the threshold can change sides; the thresholds are
// kept, and the predictor's recall is what stoke eval-predictor
// --predictor-type measures, not what the original's was (Measured is
// cleared). A predictor Train quantized had its threshold calibrated on
// its stored weights instead (TrainOptions.Quant).
//
// The block types need Dim to be whole blocks (32 elements). A rank that
// is not (the synthetic PowerInfer predictors' 2m+1) is padded to whole
// blocks with zero rows of FC1 (and zero B1 entries) and zero columns of
// FC2, which changes no score: h_j = ReLU(0) = 0 for a padded j, and its
// column adds 0·h_j anyway. Layers already stored in t with whole blocks
// are shared with p, not copied. p is unchanged.
//
// FC2 is stored in both layouts, each rounded from the original values:
// W2 for writing and renumbering, W2T (when FFN is whole blocks) for
// Predict (see RankMajor).
func (p *Predictor) Quantized(t dtype.Type) (*Predictor, error) {
	switch t {
	case dtype.F16, dtype.Q8_0, dtype.Q4_0:
	default:
		return nil, fmt.Errorf("predictor: cannot store a predictor in %s (want F16, Q8_0 or Q4_0)", t)
	}
	bs := t.BlockSize()
	for l := range p.Layers {
		if lp := &p.Layers[l]; lp.Dim%bs != 0 {
			return nil, fmt.Errorf("predictor: layer %d: dim %d is not whole %s blocks of %d", l, lp.Dim, t, bs)
		}
	}
	q := &Predictor{Layers: make([]LayerPredictor, len(p.Layers)), ActThreshold: p.ActThreshold}
	err := eachLayer(len(p.Layers), func(l int) (err error) {
		q.Layers[l], err = p.Layers[l].quantized(t)
		return err
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

// eachLayer runs f for layers 0 … n−1, one goroutine per core (the
// reference encoder is slow: tens of MB a second), and returns the first
// layer's error, naming it.
func eachLayer(n int, f func(l int) error) error {
	errs := make([]error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for l := range work {
				errs[l] = f(l)
			}
		})
	}
	for l := range n {
		work <- l
	}
	close(work)
	wg.Wait()
	for l, err := range errs {
		if err != nil {
			return fmt.Errorf("predictor: layer %d: %w", l, err)
		}
	}
	return nil
}

// quantized is Quantized for one layer.
func (lp *LayerPredictor) quantized(t dtype.Type) (LayerPredictor, error) {
	if err := lp.Check(); err != nil {
		return LayerPredictor{}, err
	}
	bs := t.BlockSize()
	rank := (lp.Rank + bs - 1) / bs * bs
	if lp.W1 != nil && lp.Type == t && rank == lp.Rank && (lp.W2T != nil || lp.FFN%bs != 0) {
		return *lp, nil
	}
	fc1, fc2, err := lp.floats()
	if err != nil {
		return LayerPredictor{}, err
	}
	q := LayerPredictor{Dim: lp.Dim, Rank: rank, FFN: lp.FFN, Threshold: lp.Threshold, Type: t, B2: lp.B2}
	// FC1: the rank rows, then zero rows; FC2: each row padded with zeros.
	w1 := make([]float32, rank*lp.Dim)
	copy(w1, fc1)
	w2 := fc2
	if rank != lp.Rank {
		w2 = make([]float32, lp.FFN*rank)
		for i := range lp.FFN {
			copy(w2[i*rank:], fc2[i*lp.Rank:(i+1)*lp.Rank])
		}
	}
	if lp.B1 != nil {
		q.B1 = make([]float32, rank)
		copy(q.B1, lp.B1)
	}
	if q.W1, err = encode(t, w1); err != nil {
		return LayerPredictor{}, err
	}
	if q.W2, err = encode(t, w2); err != nil {
		return LayerPredictor{}, err
	}
	// W2T from the same values, when its rows (FFN elements) are whole
	// blocks: rounded once, in its own blocks.
	if lp.FFN%bs == 0 {
		w2t := make([]float32, len(w2))
		transpose(w2t, w2, lp.FFN, rank)
		if q.W2T, err = encode(t, w2t); err != nil {
			return LayerPredictor{}, err
		}
	}
	return q, q.Check()
}

// floats returns lp's weights as float32: FC1 and FC2 when held, else W1
// and W2 decoded.
func (lp *LayerPredictor) floats() (fc1, fc2 []float32, err error) {
	if lp.W1 == nil {
		return lp.FC1, lp.FC2, nil
	}
	fc1, fc2 = make([]float32, lp.Rank*lp.Dim), make([]float32, lp.FFN*lp.Rank)
	if err := dtype.Dequantize(lp.Type, lp.W1, fc1); err != nil {
		return nil, nil, err
	}
	if err := dtype.Dequantize(lp.Type, lp.W2, fc2); err != nil {
		return nil, nil, err
	}
	return fc1, fc2, nil
}

// transposedBytes returns the rows×cols matrix of es-byte elements in b
// transposed (cols×rows), moved in square tiles so that both sides stay
// in cache.
func transposedBytes(b []byte, rows, cols, es int) []byte {
	const tile = 64
	out := make([]byte, len(b))
	for r0 := 0; r0 < rows; r0 += tile {
		for c0 := 0; c0 < cols; c0 += tile {
			for r := r0; r < min(r0+tile, rows); r++ {
				for c := c0; c < min(c0+tile, cols); c++ {
					copy(out[(c*rows+r)*es:(c*rows+r+1)*es], b[(r*cols+c)*es:(r*cols+c+1)*es])
				}
			}
		}
	}
	return out
}

// encode returns x in type t (len(x) whole blocks of t).
func encode(t dtype.Type, x []float32) ([]byte, error) {
	rb, err := t.RowBytes(uint64(len(x)))
	if err != nil {
		return nil, err
	}
	b := make([]byte, rb)
	return b, dtype.Quantize(t, x, b)
}

// ParseType reads a predictor weight type as the command line names it:
// f16, q8_0 or q4_0 (any case).
func ParseType(s string) (dtype.Type, error) {
	switch strings.ToLower(s) {
	case "f16":
		return dtype.F16, nil
	case "q8_0":
		return dtype.Q8_0, nil
	case "q4_0":
		return dtype.Q4_0, nil
	}
	return 0, fmt.Errorf("predictor type %q: want f16, q8_0 or q4_0", s)
}
