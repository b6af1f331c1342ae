package predictor_test

import (
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/predictor"
)

// TestTrainPlanted trains on a learnable problem: 4000 tokens of a rank-8
// planted ReLU layer (dim 64, 512 neurons, 5% hot). The chosen predictor
// must reach recall ≥ 0.99 on its test samples and on fresh tokens, at a
// sparsity close to the truth (the threshold is calibrated for 0.995 on
// the validation samples, which costs a few points of sparsity on 3,200
// training tokens), with a small rank.
func TestTrainPlanted(t *testing.T) {
	pl := newPlanted(64, 512, 8, 1, "relu")
	p := pl.profile(4000, 2)
	start := time.Now()
	pred, reps, err := predictor.Train(p, nil, predictor.TrainOptions{Ranks: []int{8, 16, 32, 64}, Seed: 7, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := reps[0]
	t.Logf("trained in %v: rank %d, held-out recall %.4f precision %.3f sparsity %.4f (true %.4f), %d epochs, reached %v, shift %.3f",
		time.Since(start), r.Rank, r.Recall, r.Precision, r.Sparsity, r.TrueSparsity, r.Epochs, r.Reached, r.Shift)
	if !r.Reached || r.Rank > 32 {
		t.Errorf("rank %d (reached %v), want a rank ≤ 32 that reaches the target", r.Rank, r.Reached)
	}
	if r.Recall < 0.99 {
		t.Errorf("held-out recall %.4f < 0.99", r.Recall)
	}
	if r.Sparsity < r.TrueSparsity-0.04 {
		t.Errorf("sparsity %.4f is not close to the true %.4f", r.Sparsity, r.TrueSparsity)
	}
	if r.TrainSamples != 3200 || r.ValSamples != 400 || r.HeldSamples != 400 {
		t.Errorf("split %d/%d/%d, want 3200/400/400", r.TrainSamples, r.ValSamples, r.HeldSamples)
	}
	lp := &pred.Layers[0]
	if lp.Measured.Recall != r.Recall || lp.Threshold != 0 || lp.B2 == nil {
		t.Errorf("predictor: measured %+v, threshold %v (the shift belongs in B2)", lp.Measured, lp.Threshold)
	}

	// Fresh tokens of the same layer: the honest generalisation check.
	fresh := pl.profile(2000, 3)
	l := &fresh.Layers[0]
	m := predictor.Evaluate(lp, l.X, l.A, l.N, 0)
	t.Logf("fresh tokens: %+v", m)
	if m.Recall < 0.99 || m.Sparsity < m.TrueSparsity-0.04 {
		t.Errorf("fresh tokens: %+v", m)
	}

	// The sidecar holds the same predictor: F16 weights, the shift in B2.
	back := sidecarRoundTrip(t, pred)
	if back.Layers[0].Type != dtype.F16 {
		t.Errorf("sidecar weights are %s, want F16", back.Layers[0].Type)
	}
	if mb := predictor.Evaluate(&back.Layers[0], l.X, l.A, l.N, 0); math.Abs(mb.Recall-m.Recall) > 2e-3 || math.Abs(mb.Sparsity-m.Sparsity) > 2e-3 {
		t.Errorf("read back: %+v, in memory: %+v", mb, m)
	}
}

// sidecarRoundTrip writes pred as a GGUF sidecar and reads it back.
func sidecarRoundTrip(t *testing.T, pred *predictor.Predictor) *predictor.Predictor {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pred.gguf")
	if err := pred.WriteGGUF(path, nil); err != nil {
		t.Fatal(err)
	}
	back, err := predictor.ReadPredictorGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// TestTrainQuantized: with Quant, the predictor is stored in Q8_0 or
// Q4_0 (a rank that is not whole blocks stays F16), its reported recall
// is the recall Predict gives on the test samples, it still reaches 0.99
// on fresh tokens of the planted layer, and the sidecar keeps the type.
func TestTrainQuantized(t *testing.T) {
	pl := newPlanted(64, 512, 8, 1, "relu")
	p := pl.profile(4000, 2)
	fresh := pl.profile(2000, 3)
	fl := &fresh.Layers[0]
	for _, q := range []dtype.Type{dtype.Q8_0, dtype.Q4_0} {
		pred, reps, err := predictor.Train(p, nil, predictor.TrainOptions{Ranks: []int{32, 64}, Seed: 7, Threads: 2, Quant: q})
		if err != nil {
			t.Fatal(err)
		}
		lp, r := &pred.Layers[0], reps[0]
		m := predictor.Evaluate(lp, fl.X, fl.A, fl.N, 0)
		t.Logf("%s: rank %d, test recall %.4f sparsity %.4f (true %.4f); fresh %+v", q, r.Rank, r.Recall, r.Sparsity, r.TrueSparsity, m)
		if lp.Type != q || len(lp.W1) != lp.Rank*q.TypeSize()*lp.Dim/32 || len(lp.W2) != lp.FFN*q.TypeSize()*lp.Rank/32 {
			t.Fatalf("%s: stored as %s, %d and %d bytes", q, lp.Type, len(lp.W1), len(lp.W2))
		}
		if !r.Reached || r.Recall < 0.99 || m.Recall < 0.99 || m.Sparsity < m.TrueSparsity-0.05 {
			t.Errorf("%s: report %+v, fresh tokens %+v", q, r, m)
		}
		back := sidecarRoundTrip(t, pred)
		if back.Layers[0].Type != q {
			t.Errorf("sidecar weights are %s, want %s", back.Layers[0].Type, q)
		}
		if mb := predictor.Evaluate(&back.Layers[0], fl.X, fl.A, fl.N, 0); mb != m {
			t.Errorf("%s read back: %+v, in memory: %+v", q, mb, m)
		}
	}
	// rank 8 is not whole Q8_0 blocks: F16
	pred, _, err := predictor.Train(p, nil, predictor.TrainOptions{Ranks: []int{8}, Seed: 7, Threads: 2, Quant: dtype.Q8_0, Epochs: 5})
	if err != nil {
		t.Fatal(err)
	}
	if ty := pred.Layers[0].Type; ty != dtype.F16 {
		t.Errorf("rank 8 with Quant Q8_0 stored as %s, want F16", ty)
	}
}

// TestTrainNoBias trains PowerInfer's exact form: no biases, the recall
// shift kept in Threshold.
func TestTrainNoBias(t *testing.T) {
	pl := newPlanted(32, 128, 4, 11, "relu")
	p := pl.profile(1500, 12)
	pred, reps, err := predictor.Train(p, nil, predictor.TrainOptions{Ranks: []int{32}, Seed: 1, Threads: 2, Epochs: 10, NoBias: true})
	if err != nil {
		t.Fatal(err)
	}
	lp, r := &pred.Layers[0], reps[0]
	t.Logf("no bias: %+v", r)
	if lp.B1 != nil || lp.B2 != nil || lp.Threshold != r.Shift {
		t.Errorf("biases %v %v, threshold %v, shift %v", lp.B1 != nil, lp.B2 != nil, lp.Threshold, r.Shift)
	}
	if r.Recall < 0.99 {
		t.Errorf("held-out recall %.4f", r.Recall)
	}
}

// TestTrainRandomLabels trains on labels that do not depend on x. No
// predictor can do better than predicting from the firing rates, so Train
// must not claim recall ≥ 0.99 at a useful sparsity (a trainer that
// measured on its training tokens would, by memorising them).
func TestTrainRandomLabels(t *testing.T) {
	pl := newPlanted(32, 256, 8, 4, "random")
	p := pl.profile(2000, 5)
	_, reps, err := predictor.Train(p, nil, predictor.TrainOptions{Ranks: []int{16, 32}, Seed: 1, Threads: 2, Epochs: 15})
	if err != nil {
		t.Fatal(err)
	}
	r := reps[0]
	t.Logf("random labels: %+v", r)
	if r.Reached {
		t.Errorf("claims to reach the recall target at the trained boundary")
	}
	if r.Rank != 16 && r.Rank != 32 {
		t.Errorf("kept rank %d, want one of those tried (16, 32)", r.Rank)
	}
	if r.Recall >= 0.99 && r.Sparsity >= 0.5*r.TrueSparsity {
		t.Errorf("claims recall %.4f at sparsity %.3f (true %.3f) on random labels", r.Recall, r.Sparsity, r.TrueSparsity)
	}
}

// TestTrainCalibratedSiLU is the SwiGLU path: |a| = |silu(z)| is never
// zero, Calibrate sets a threshold for 95% sparsity, and the predictor is
// trained against it.
func TestTrainCalibratedSiLU(t *testing.T) {
	pl := newPlanted(32, 128, 8, 6, "silu")
	p := pl.profile(3000, 7)
	thr := predictor.Calibrate(p, 0.95)
	_, reps, err := predictor.Train(p, thr, predictor.TrainOptions{Ranks: []int{16, 32}, Seed: 3, Threads: 2, Epochs: 30})
	if err != nil {
		t.Fatal(err)
	}
	r := reps[0]
	t.Logf("silu, threshold %.4f: %+v", thr[0], r)
	if r.TrueSparsity < 0.93 || r.TrueSparsity > 0.97 {
		t.Errorf("held-out true sparsity %.3f, calibrated for 0.95", r.TrueSparsity)
	}
	if r.Recall < 0.99 || r.Sparsity < 0.85 {
		t.Errorf("recall %.4f at sparsity %.3f", r.Recall, r.Sparsity)
	}
}

// TestTrainDeterministic: the same seed gives the same predictor, whatever
// the thread count; another seed gives another.
func TestTrainDeterministic(t *testing.T) {
	pl := newPlanted(16, 64, 4, 8, "relu")
	p := pl.profile(600, 9)
	train := func(seed uint64, threads int) *predictor.LayerPredictor {
		pred, _, err := predictor.Train(p, nil, predictor.TrainOptions{Ranks: []int{8}, Seed: seed, Threads: threads, Epochs: 4, BatchSize: 32})
		if err != nil {
			t.Fatal(err)
		}
		return &pred.Layers[0]
	}
	a, b, c := train(1, 1), train(1, 2), train(2, 2)
	same := func(x, y *predictor.LayerPredictor) bool {
		return slices.Equal(x.FC1, y.FC1) && slices.Equal(x.FC2, y.FC2) && slices.Equal(x.B1, y.B1) && slices.Equal(x.B2, y.B2) && x.Threshold == y.Threshold
	}
	if !same(a, b) {
		t.Error("same seed, different predictors")
	}
	if same(a, c) {
		t.Error("different seeds, same predictor")
	}
}

func TestTrainErrors(t *testing.T) {
	p := newPlanted(8, 16, 2, 1, "relu").profile(1, 1)
	if _, _, err := predictor.Train(p, nil, predictor.TrainOptions{}); err == nil {
		t.Error("one sample: no error")
	}
	p = newPlanted(8, 16, 2, 1, "relu").profile(50, 1)
	if _, _, err := predictor.Train(p, []float32{0, 0}, predictor.TrainOptions{}); err == nil {
		t.Error("two thresholds for one layer: no error")
	}
	if _, _, err := predictor.Train(p, nil, predictor.TrainOptions{RecallTarget: 1.5}); err == nil {
		t.Error("recall target 1.5: no error")
	}
	if _, _, err := predictor.Train(p, nil, predictor.TrainOptions{HoldOut: 1}); err == nil {
		t.Error("hold-out 1: no error")
	}
	p.Layers[0].X[17] = float32(math.Inf(1))
	if _, _, err := predictor.Train(p, nil, predictor.TrainOptions{}); err == nil {
		t.Error("infinite input: no error")
	}
}
