package predictor_test

import (
	"math"
	"slices"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/predictor"
)

// storedLayer returns lq's weights stored in typ (a file predictor's
// form: W1, W2 and no floats), with lq's biases and threshold, and the
// stored weights decoded.
func storedLayer(t *testing.T, lq *predictor.LayerPredictor, typ dtype.Type) (predictor.LayerPredictor, []float32, []float32) {
	t.Helper()
	w1 := make([]byte, lq.Rank*rowBytes(typ, lq.Dim))
	w2 := make([]byte, lq.FFN*rowBytes(typ, lq.Rank))
	if err := dtype.Quantize(typ, lq.FC1, w1); err != nil {
		t.Fatal(err)
	}
	if err := dtype.Quantize(typ, lq.FC2, w2); err != nil {
		t.Fatal(err)
	}
	st, err := predictor.LayerFromTensors(
		predictor.Tensor{Type: typ, Shape: []uint64{uint64(lq.Dim), uint64(lq.Rank)}, Data: w1},
		predictor.Tensor{Type: typ, Shape: []uint64{uint64(lq.Rank), uint64(lq.FFN)}, Data: w2}, lq.Threshold)
	if err != nil {
		t.Fatal(err)
	}
	st.B1, st.B2 = lq.B1, lq.B2
	d1, d2 := make([]float32, len(lq.FC1)), make([]float32, len(lq.FC2))
	if err := dtype.Dequantize(typ, w1, d1); err != nil {
		t.Fatal(err)
	}
	if err := dtype.Dequantize(typ, w2, d2); err != nil {
		t.Fatal(err)
	}
	return st, d1, d2
}

// TestRankMajor: RankMajor gives F16 and F32 layers a rank-major FC2
// holding the same values, which Predict reads (scores as the reference
// computes them from the stored weights, on a pool and without one) in
// place of W2; block-quantized and float-only layers are left as they
// are, the original is unchanged, and Permute drops the rank-major form.
func TestRankMajor(t *testing.T) {
	pool := cpu.NewPool(2)
	defer pool.Close()
	for _, typ := range []dtype.Type{dtype.F16, dtype.F32} {
		lq := randomLayer(64, 40, 200, 11, false) // rank 40: not whole blocks, as a PowerInfer rank need not be
		st, d1, d2 := storedLayer(t, lq, typ)
		p := &predictor.Predictor{Layers: []predictor.LayerPredictor{st}}
		rm, err := p.RankMajor()
		if err != nil {
			t.Fatal(err)
		}
		if p.Layers[0].W2T != nil {
			t.Fatalf("%s: RankMajor changed its receiver", typ)
		}
		l := &rm.Layers[0]
		if l.W2T == nil || len(l.W2T) != l.Rank*rowBytes(typ, l.FFN) {
			t.Fatalf("%s: W2T of %d bytes, want %d", typ, len(l.W2T), l.Rank*rowBytes(typ, l.FFN))
		}
		if err := l.Check(); err != nil {
			t.Fatal(err)
		}
		checkPredict(t, l, d1, d2, nil, 12, 2e-3)
		checkPredict(t, l, d1, d2, pool, 13, 2e-3)

		// Predict reads W2T, not W2: without W2's bytes it predicts the
		// same; with W2T zeroed the scores are B2 alone.
		x := make([]float32, l.Dim)
		for i := range x {
			x[i] = float32(i%7) - 3
		}
		sc := predictor.NewScratch(l.Rank, l.FFN)
		want := append([]int32(nil), l.Predict(pool, x, sc)...)
		noW2 := *l
		noW2.W2 = make([]byte, len(l.W2))
		if got := noW2.Predict(pool, x, sc); !slices.Equal(got, want) {
			t.Fatalf("%s: Predict read W2 when W2T was there", typ)
		}
		noW2T := *l
		noW2T.W2T = make([]byte, len(l.W2T))
		noW2T.Predict(pool, x, sc)
		for i, v := range sc.S[:l.FFN] {
			if v != l.B2[i] {
				t.Fatalf("%s: with W2T zeroed, score %d is %v, want B2's %v", typ, i, v, l.B2[i])
			}
		}

		id := []int32{}
		for i := range l.FFN {
			id = append(id, int32(i))
		}
		pm, err := rm.Permute([][]int32{id})
		if err != nil {
			t.Fatal(err)
		}
		if pm.Layers[0].W2T != nil {
			t.Fatalf("%s: Permute kept a rank-major FC2 it did not renumber", typ)
		}
	}

	// Q4_0 rows cannot be transposed without re-encoding; float-only
	// layers are Train's working form.
	lq := randomLayer(64, 32, 96, 14, false)
	st, _, _ := storedLayer(t, lq, dtype.Q4_0)
	rm, err := (&predictor.Predictor{Layers: []predictor.LayerPredictor{st, *lq}}).RankMajor()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range rm.Layers {
		if l.W2T != nil {
			t.Fatalf("layer %d (%s): got a rank-major FC2", i, l.Type)
		}
	}

	bad := st
	bad.W2 = bad.W2[:len(bad.W2)-1]
	if _, err := (&predictor.Predictor{Layers: []predictor.LayerPredictor{bad}}).RankMajor(); err == nil {
		t.Fatal("RankMajor accepted a layer with a short W2")
	}
}

// TestQuantized: Quantized re-encodes float and stored predictors in
// F16, Q8_0 and Q4_0, padding the rank to whole blocks with zero FC1 rows,
// B1 entries and FC2 columns; Predict computes what the reference does
// from the stored weights, and scores within the type's quantization
// error of the original's; bad types and dims are refused.
func TestQuantized(t *testing.T) {
	pool := cpu.NewPool(2)
	defer pool.Close()
	type tc struct {
		typ      dtype.Type
		rank     int     // after padding
		tol, err float64 // against the stored weights, against the original
	}
	for _, c := range []tc{{dtype.F16, 40, 2e-3, 2e-3}, {dtype.Q8_0, 64, 3e-2, 3e-2}, {dtype.Q4_0, 64, 5e-2, 0.2}} {
		for _, ffn := range []int{96, 100} { // whole blocks (W2T built) or not (W2 read)
			orig := randomLayer(64, 40, ffn, 15, false)
			f16, _, _ := storedLayer(t, orig, dtype.F16)
			for _, src := range []*predictor.LayerPredictor{orig, &f16} {
				p := &predictor.Predictor{Layers: []predictor.LayerPredictor{*src}, ActThreshold: []float32{0.25}}
				q, err := p.Quantized(c.typ)
				if err != nil {
					t.Fatal(err)
				}
				l := &q.Layers[0]
				name := c.typ.String() + " from " + map[bool]string{true: "floats", false: "F16"}[src.W1 == nil]
				if l.Type != c.typ || l.Rank != c.rank || q.ActThreshold[0] != 0.25 || l.Threshold != src.Threshold {
					t.Fatalf("%s: type %s rank %d act threshold %v threshold %v", name, l.Type, l.Rank, q.ActThreshold[0], l.Threshold)
				}
				if wantT := ffn%c.typ.BlockSize() == 0; (l.W2T != nil) != wantT {
					t.Fatalf("%s ffn %d: W2T built %v, want %v", name, ffn, l.W2T != nil, wantT)
				}
				if err := l.Check(); err != nil {
					t.Fatal(err)
				}
				d1 := make([]float32, l.Rank*l.Dim)
				d2 := make([]float32, l.FFN*l.Rank)
				if err := dtype.Dequantize(c.typ, l.W1, d1); err != nil {
					t.Fatal(err)
				}
				if l.W2T != nil {
					d2t := make([]float32, l.Rank*l.FFN)
					if err := dtype.Dequantize(c.typ, l.W2T, d2t); err != nil {
						t.Fatal(err)
					}
					for j := range l.Rank {
						for i := range l.FFN {
							d2[i*l.Rank+j] = d2t[j*l.FFN+i]
						}
					}
				} else if err := dtype.Dequantize(c.typ, l.W2, d2); err != nil {
					t.Fatal(err)
				}
				// The padding is zeros.
				for j := src.Rank; j < l.Rank; j++ {
					if l.B1[j] != 0 {
						t.Fatalf("%s: padded B1[%d] = %v", name, j, l.B1[j])
					}
					for k := range l.Dim {
						if d1[j*l.Dim+k] != 0 {
							t.Fatalf("%s: padded FC1 row %d is not zero", name, j)
						}
					}
					for i := range l.FFN {
						if d2[i*l.Rank+j] != 0 {
							t.Fatalf("%s: padded FC2 column %d is not zero", name, j)
						}
					}
				}
				checkPredict(t, l, d1, d2, pool, 16, c.tol)
				checkPredict(t, l, d1, d2, nil, 17, c.tol)

				// Near the original's scores.
				x := make([]float32, l.Dim)
				for i := range x {
					x[i] = float32(math.Sin(float64(i)))
				}
				sq, so := predictor.NewScratch(l.Rank, l.FFN), predictor.NewScratch(src.Rank, src.FFN)
				l.Predict(pool, x, sq)
				src.Predict(pool, x, so)
				scale := 1.0
				for _, v := range so.S[:src.FFN] {
					scale = max(scale, math.Abs(float64(v)))
				}
				for i := range src.FFN {
					if d := math.Abs(float64(sq.S[i] - so.S[i])); d > c.err*scale {
						t.Fatalf("%s: score %d is %v, the original's %v", name, i, sq.S[i], so.S[i])
					}
				}
			}
		}
	}

	lq := randomLayer(48, 8, 32, 18, false) // dim 48: not whole blocks
	p := &predictor.Predictor{Layers: []predictor.LayerPredictor{*lq}}
	if _, err := p.Quantized(dtype.Q8_0); err == nil {
		t.Error("Quantized accepted dim 48 for Q8_0")
	}
	if _, err := p.Quantized(dtype.F16); err != nil {
		t.Errorf("F16 has no blocks: %v", err)
	}
	if _, err := p.Quantized(dtype.Q4_K); err == nil {
		t.Error("Quantized accepted Q4_K")
	}
	for _, s := range []string{"f16", "Q8_0", "q4_0"} {
		if _, err := predictor.ParseType(s); err != nil {
			t.Errorf("ParseType(%q): %v", s, err)
		}
	}
	if _, err := predictor.ParseType("q4_k"); err == nil {
		t.Error("ParseType accepted q4_k")
	}
}
