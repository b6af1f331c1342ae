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
//
// W2T, when non-nil, is FC2 rank-major: Rank rows of FFN elements of
// Type, which Predict reads instead of W2 (see RankMajor). s is then
// Σ_j h_j·W2T[j] over the j with h_j ≠ 0: ReLU zeroes about half of h, so
// the product reads about half of FC2, in long rows the sparse FFN's
// row-accumulating kernels stream, where W2's short rows (a few hundred
// elements) cost a call each.
type LayerPredictor struct {
	Dim, Rank, FFN int
	FC1            []float32 // [Rank][Dim]
	FC2            []float32 // [FFN][Rank]
	B1, B2         []float32 // optional: len Rank and FFN, or nil
	Threshold      float32

	Type   dtype.Type // type of W1, W2 and W2T
	W1, W2 []byte     // optional stored form: Rank rows of Dim, FFN rows of Rank
	W2T    []byte     // optional, with W1: FC2 as Rank rows of FFN

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
		if lp.W2T != nil {
			rbT, err := lp.Type.RowBytes(uint64(lp.FFN))
			if err != nil || uint64(len(lp.W2T)) != rbT*uint64(lp.Rank) {
				return fmt.Errorf("predictor: %d rank-major weight bytes for %s %d×%d", len(lp.W2T), lp.Type, lp.Rank, lp.FFN)
			}
		}
	} else if lp.W2T != nil {
		return fmt.Errorf("predictor: a rank-major FC2 without the stored weights")
	} else if len(lp.FC1) != lp.Rank*lp.Dim || len(lp.FC2) != lp.FFN*lp.Rank {
		return fmt.Errorf("predictor: FC1 has %d values, FC2 %d; want %d×%d and %d×%d", len(lp.FC1), len(lp.FC2), lp.Rank, lp.Dim, lp.FFN, lp.Rank)
	}
	if lp.B1 != nil && len(lp.B1) != lp.Rank || lp.B2 != nil && len(lp.B2) != lp.FFN {
		return fmt.Errorf("predictor: biases of %d and %d values for rank %d, ffn %d", len(lp.B1), len(lp.B2), lp.Rank, lp.FFN)
	}
	return nil
}

// Scratch is Predict's working memory for one caller (not safe for
// concurrent use). Sized for a rank and an FFN width, it serves every
// layer no wider.
type Scratch struct {
	H    []float32 // ReLU(FC1·x + B1), Rank values
	S    []float32 // the scores, FFN values, after Predict
	Idx  []int32   // the predicted neurons: Predict returns Idx[:k]
	rows []int32   // 0, 1, …, Rank−1: the rows of W2T
	axpy cpu.AxpyRows
}

// NewScratch returns scratch for layers of at most rank and ffn.
func NewScratch(rank, ffn int) *Scratch {
	sc := &Scratch{H: make([]float32, rank), S: make([]float32, ffn), Idx: make([]int32, ffn), rows: make([]int32, rank)}
	for i := range sc.rows {
		sc.rows[i] = int32(i)
	}
	return sc
}

// Predict returns the neurons predicted active for input x, in ascending
// order, as sc.Idx[:k]; sc.S[:FFN] then holds the scores. The products
// run on pool (nil: on the calling goroutine). Predict allocates nothing;
// a wrong length or a scratch too small panics.
func (lp *LayerPredictor) Predict(pool *cpu.Pool, x []float32, sc *Scratch) []int32 {
	if len(x) != lp.Dim || len(sc.H) < lp.Rank || len(sc.S) < lp.FFN || len(sc.Idx) < lp.FFN || len(sc.rows) < lp.Rank {
		panic(fmt.Sprintf("predictor: Predict with x %d, scratch %d/%d/%d for dim %d, rank %d, ffn %d",
			len(x), len(sc.H), len(sc.S), len(sc.Idx), lp.Dim, lp.Rank, lp.FFN))
	}
	s := sc.S[:lp.FFN]
	lp.scores(pool, x, sc.H[:lp.Rank], s, sc)
	return lp.Select(s, sc.Idx)
}

// Select writes the neurons whose score s[i] reaches the threshold into
// idx (at least len(s) entries), in order, and returns them: Predict's
// last step, for scores computed elsewhere (on a device). Every i is
// written and the count advanced by the comparison, with no branch to
// mispredict: scores fall on both sides at random.
func (lp *LayerPredictor) Select(s []float32, idx []int32) []int32 {
	thr := lp.Threshold
	idx = idx[:len(s)]
	k := 0
	for i, v := range s {
		idx[k] = int32(i)
		if v >= thr {
			k++
		}
	}
	return idx[:k]
}

// scores computes h = ReLU(FC1·x + B1) and s = FC2·h + B2, the second
// from W2T when held (sc, with rows, must then be given).
func (lp *LayerPredictor) scores(pool *cpu.Pool, x, h, s []float32, sc *Scratch) {
	if lp.W1 != nil {
		matVec(pool, h, lp.W1, lp.Type, lp.Rank, lp.Dim, x)
	} else {
		matVecF32(pool, h, lp.FC1, lp.Rank, lp.Dim, x)
	}
	if lp.B1 != nil {
		cpu.AddInPlace(h, lp.B1)
	}
	cpu.ReLU(h)
	switch {
	case lp.W2T != nil && sc != nil:
		// AxpyRows leaves out the rows whose h_j is 0.
		sc.axpy.Do(pool, s, lp.W2T, lp.Type, lp.FFN, sc.rows[:lp.Rank], h)
	case lp.W1 != nil:
		matVec(pool, s, lp.W2, lp.Type, lp.FFN, lp.Rank, h)
	default:
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
	sc := NewScratch(lp.Rank, lp.FFN)
	var c confusion
	for j := range n {
		act := lp.Predict(nil, x[j*lp.Dim:(j+1)*lp.Dim], sc)
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
