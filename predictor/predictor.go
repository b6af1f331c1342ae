package predictor

import (
	"fmt"
	"unsafe"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// LayerPredictor predicts one layer's active FFN neurons from its FFN input
// x (after the FFN norm):
//
//	h = ReLU(FC1·x + B1)          FC1: Rank rows of Dim
//	s = FC2·h + B2                FC2: FFN rows of Rank
//	active = { i : s_i ≥ Threshold }
//
// The weights are held in one of two forms. FC1 and FC2 are float32, row
// major (what Train produces). W1 and W2, when W1 is non-nil, are the same
// matrices as GGUF stores them, rows of Type (F16, Q4_0, ...; a PowerInfer
// file's blk.N.fc1.weight and fc2.weight): Predict then reads them, and FC1
// and FC2 may be nil. B1 and B2 are optional (PowerInfer's predictors have
// none).
type LayerPredictor struct {
	Dim, Rank, FFN int
	FC1            []float32 // [Rank][Dim]
	FC2            []float32 // [FFN][Rank]
	B1, B2         []float32 // optional: len Rank and FFN, or nil
	Threshold      float32

	Type   dtype.Type // type of W1 and W2
	W1, W2 []byte     // optional stored form: Rank rows of Dim, FFN rows of Rank

	// Measured holds the held-out metrics Train measured (or a sidecar
	// recorded); zero when unknown.
	Measured Metrics
}

// Predictor holds one LayerPredictor per layer.
type Predictor struct {
	Layers []LayerPredictor
	// ActThreshold is, per layer, the threshold on |a| the predictor was
	// trained against (a neuron is active when |a_i| > ActThreshold[l]); 0
	// for ReLU models. It may be nil when unknown.
	ActThreshold []float32
}

// Metrics summarise a predictor against true activations over a set of
// tokens, counted over all (token, neuron) pairs.
type Metrics struct {
	Recall       float64 // true actives predicted active / true actives (1 when there are none)
	Precision    float64 // true actives predicted active / predicted active (1 when none predicted)
	Sparsity     float64 // predicted inactive / all
	TrueSparsity float64 // truly inactive / all
}

// Check reports whether the predictor's shapes agree with its slices.
func (lp *LayerPredictor) Check() error {
	if lp.Dim < 1 || lp.Rank < 1 || lp.FFN < 1 || lp.Dim > MaxWidth || lp.Rank > MaxWidth || lp.FFN > MaxWidth {
		return fmt.Errorf("predictor: dim %d, rank %d, ffn %d outside [1, %d]", lp.Dim, lp.Rank, lp.FFN, MaxWidth)
	}
	if lp.W1 != nil {
		if !lp.Type.Computable() {
			return fmt.Errorf("predictor: cannot compute with %s weights", lp.Type)
		}
		rb1, err1 := lp.Type.RowBytes(uint64(lp.Dim))
		rb2, err2 := lp.Type.RowBytes(uint64(lp.Rank))
		if err1 != nil || err2 != nil {
			return fmt.Errorf("predictor: %s rows of %d and %d elements: not whole blocks", lp.Type, lp.Dim, lp.Rank)
		}
		if uint64(len(lp.W1)) != rb1*uint64(lp.Rank) || uint64(len(lp.W2)) != rb2*uint64(lp.FFN) {
			return fmt.Errorf("predictor: %d and %d weight bytes for %s %d×%d and %d×%d", len(lp.W1), len(lp.W2), lp.Type, lp.Rank, lp.Dim, lp.FFN, lp.Rank)
		}
	} else if len(lp.FC1) != lp.Rank*lp.Dim || len(lp.FC2) != lp.FFN*lp.Rank {
		return fmt.Errorf("predictor: FC1 has %d values, FC2 %d; want %d×%d and %d×%d", len(lp.FC1), len(lp.FC2), lp.Rank, lp.Dim, lp.FFN, lp.Rank)
	}
	if lp.B1 != nil && len(lp.B1) != lp.Rank || lp.B2 != nil && len(lp.B2) != lp.FFN {
		return fmt.Errorf("predictor: biases of %d and %d values for rank %d, ffn %d", len(lp.B1), len(lp.B2), lp.Rank, lp.FFN)
	}
	return nil
}

// Predict writes the neurons predicted active for input x into idx, in
// ascending order, and returns idx[:k]. h is scratch of at least Rank
// values and s of at least FFN; on return s[:FFN] holds the scores. idx
// must hold FFN entries. The two mat-vecs run on pool (nil: on the calling
// goroutine). Predict allocates nothing; wrong lengths panic.
func (lp *LayerPredictor) Predict(pool *cpu.Pool, x []float32, h, s []float32, idx []int32) []int32 {
	if len(x) != lp.Dim || len(h) < lp.Rank || len(s) < lp.FFN || len(idx) < lp.FFN {
		panic(fmt.Sprintf("predictor: Predict with x %d, h %d, s %d, idx %d for dim %d, rank %d, ffn %d",
			len(x), len(h), len(s), len(idx), lp.Dim, lp.Rank, lp.FFN))
	}
	h, s = h[:lp.Rank], s[:lp.FFN]
	lp.scores(pool, x, h, s)
	thr := lp.Threshold
	k := 0
	for i, v := range s {
		if v >= thr {
			idx[k] = int32(i)
			k++
		}
	}
	return idx[:k]
}

// scores computes h = ReLU(FC1·x + B1) and s = FC2·h + B2.
func (lp *LayerPredictor) scores(pool *cpu.Pool, x, h, s []float32) {
	if lp.W1 != nil {
		matVec(pool, h, lp.W1, lp.Type, lp.Rank, lp.Dim, x)
	} else {
		matVecF32(pool, h, lp.FC1, lp.Rank, lp.Dim, x)
	}
	if lp.B1 != nil {
		cpu.AddInPlace(h, lp.B1)
	}
	cpu.ReLU(h)
	if lp.W1 != nil {
		matVec(pool, s, lp.W2, lp.Type, lp.FFN, lp.Rank, h)
	} else {
		matVecF32(pool, s, lp.FC2, lp.FFN, lp.Rank, h)
	}
	if lp.B2 != nil {
		cpu.AddInPlace(s, lp.B2)
	}
}

// Evaluate runs lp on n samples (x: n rows of Dim; a: n rows of FFN
// activation magnitudes as binary16 bits, as a Profile stores them) and
// compares its predictions with the truth |a_i| > actThreshold.
func Evaluate(lp *LayerPredictor, x []float32, a []uint16, n int, actThreshold float32) Metrics {
	if err := lp.Check(); err != nil {
		panic(err)
	}
	if n < 0 || len(x) < n*lp.Dim || len(a) < n*lp.FFN {
		panic(fmt.Sprintf("predictor: Evaluate of %d samples with %d inputs and %d activations", n, len(x), len(a)))
	}
	h := make([]float32, lp.Rank)
	s := make([]float32, lp.FFN)
	idx := make([]int32, lp.FFN)
	var c confusion
	for j := range n {
		act := lp.Predict(nil, x[j*lp.Dim:(j+1)*lp.Dim], h, s, idx)
		row := a[j*lp.FFN : (j+1)*lp.FFN]
		k := 0
		for i, v := range row {
			truth := dtype.F16ToF32(v&0x7fff) > actThreshold
			pred := k < len(act) && int(act[k]) == i
			if pred {
				k++
			}
			c.add(truth, pred)
		}
	}
	return c.metrics()
}

// confusion counts (truth, prediction) pairs.
type confusion struct{ tp, fp, fn, tn uint64 }

func (c *confusion) add(truth, pred bool) {
	switch {
	case truth && pred:
		c.tp++
	case truth:
		c.fn++
	case pred:
		c.fp++
	default:
		c.tn++
	}
}

func (c *confusion) metrics() Metrics {
	all := float64(c.tp + c.fp + c.fn + c.tn)
	m := Metrics{Recall: 1, Precision: 1}
	if c.tp+c.fn > 0 {
		m.Recall = float64(c.tp) / float64(c.tp+c.fn)
	}
	if c.tp+c.fp > 0 {
		m.Precision = float64(c.tp) / float64(c.tp+c.fp)
	}
	if all > 0 {
		m.Sparsity = float64(c.fn+c.tn) / all
		m.TrueSparsity = float64(c.fp+c.tn) / all
	}
	return m
}

// littleEndian reports whether float32 memory has GGUF's byte order, so a
// []float32 can be handed to the kernels as F32 rows without a copy.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// f32View returns x's memory as bytes (little-endian hosts only).
func f32View(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

// matVec computes dst[r] = Σ_c W[r,c]·x[c], W being rows rows of cols
// elements of type t.
func matVec(pool *cpu.Pool, dst []float32, w []byte, t dtype.Type, rows, cols int, x []float32) {
	if pool != nil {
		pool.MatVec(dst, w, t, rows, cols, x)
		return
	}
	rb, err := t.RowBytes(uint64(cols))
	if err != nil {
		panic("predictor: " + err.Error())
	}
	cpu.DotRows(t, dst, w[:rows*int(rb)], int(rb), x)
}

// matVecF32 is matVec for float32 weights.
func matVecF32(pool *cpu.Pool, dst, w []float32, rows, cols int, x []float32) {
	if littleEndian {
		matVec(pool, dst, f32View(w[:rows*cols]), dtype.F32, rows, cols, x)
		return
	}
	for r := range rows {
		dst[r] = cpu.Dot(w[r*cols:(r+1)*cols], x)
	}
}

// matMulF32 computes dst[i·rows + r] = Σ_c W[r,c]·x[i·cols + c] for i < n:
// n mat-vecs with the float32 matrix W (rows × cols).
func matMulF32(pool *cpu.Pool, dst, w []float32, rows, cols int, x []float32, n int) {
	dst, w, x = dst[:n*rows], w[:rows*cols], x[:n*cols]
	if littleEndian && pool != nil {
		pool.MatMul(dst, f32View(w), dtype.F32, rows, cols, x, n)
		return
	}
	for i := range n {
		xi := x[i*cols : (i+1)*cols]
		for r := range rows {
			dst[i*rows+r] = cpu.Dot(w[r*cols:(r+1)*cols], xi)
		}
	}
}
