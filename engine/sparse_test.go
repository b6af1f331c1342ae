package engine_test

import (
	"math"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
)

// relDiff is max|a−b| ÷ max|b|.
func relDiff(a, b []float32) float64 {
	var d, m float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = max(m, math.Abs(float64(b[i])))
	}
	return d / m
}

// decodeLogits runs prompt token by token and returns every step's logits.
func decodeLogits(t *testing.T, m *engine.Model, prompt []int32, setup func(r *engine.Runner)) [][]float32 {
	t.Helper()
	s := session(t, m, engine.Options{Context: 128})
	if setup != nil {
		setup(s.Runner())
	}
	var out [][]float32
	for _, tok := range prompt {
		l, err := s.Eval([]int32{tok})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]float32(nil), l...))
	}
	return out
}

// TestSparseAtZeroSparsityEqualsDense: with every neuron allowed (threshold
// 0; for SwiGLU every activation is nonzero), the sparse FFN computes the
// same sum as the dense one, in another order: equal within 1e-5 relative,
// on every family and dtype. Quantized standard-layout files use a Q8_0
// neuron-major copy of ffn_down, so they are checked in PowerInfer's
// layout, whose ffn_down_t both paths share.
func TestSparseAtZeroSparsityEqualsDense(t *testing.T) {
	type tc struct {
		name string
		c    synth.Config
	}
	var cases []tc
	for _, dt := range []dtype.Type{dtype.F32, dtype.F16, dtype.BF16} {
		cases = append(cases,
			tc{"llama-silu/" + dt.String(), synth.Config{Arch: "llama", Type: dt}},
			tc{"llama-relu/" + dt.String(), synth.Config{Arch: "llama", Act: "relu", Type: dt}},
			tc{"bamboo-drelu/" + dt.String(), synth.Config{Arch: "bamboo", Act: "drelu", Type: dt}},
			tc{"opt/" + dt.String(), synth.Config{Arch: "opt", Act: "relu", Type: dt}},
		)
	}
	for _, dt := range []dtype.Type{dtype.Q4_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1, dtype.Q8_0, dtype.Q4_K, dtype.Q5_K, dtype.Q6_K} {
		cases = append(cases,
			tc{"powerinfer-relu/" + dt.String(), synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Type: dt}},
			tc{"powerinfer-opt/" + dt.String(), synth.Config{Arch: "opt", Act: "relu", PowerInfer: true, Type: dt}},
		)
	}
	cases = append(cases, tc{"powerinfer-drelu/Q4_0", synth.Config{Arch: "bamboo", Act: "drelu", PowerInfer: true, Type: dtype.Q4_0}})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.c.Params, c.c.Seed = 3e6, 5
			m := load(t, synthModel(t, c.c))
			prompt := m.Tok.Encode("Sparse and dense must agree on this.", true, true)
			dense := decodeLogits(t, m, prompt, nil)
			var active, possible int64
			sparse := decodeLogits(t, m, prompt, func(r *engine.Runner) {
				if err := r.EnableSparse(engine.Sparsity{}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { active, possible = r.SparseStats() })
			})
			for i := range dense {
				if d := relDiff(sparse[i], dense[i]); d > 1e-5 {
					t.Fatalf("token %d: sparse differs from dense by %.2e relative", i, d)
				}
			}
			_ = active
			_ = possible
		})
	}
}

// TestOracleSparsityIsExactForReLU: a planted ReLU model has most neurons
// silent; the oracle sparse path computes only the active ones (so far
// fewer than all) and still equals dense.
func TestOracleSparsityIsExactForReLU(t *testing.T) {
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Act: "relu", Params: 3e6, Type: dtype.F32, Seed: 7}))
	prompt := m.Tok.Encode("Most neurons stay silent for any one token.", true, true)
	dense := decodeLogits(t, m, prompt, nil)
	s := session(t, m, engine.Options{Context: 128})
	if err := s.Runner().EnableSparse(engine.Sparsity{}); err != nil {
		t.Fatal(err)
	}
	for i, tok := range prompt {
		l, err := s.Eval([]int32{tok})
		if err != nil {
			t.Fatal(err)
		}
		if d := relDiff(l, dense[i]); d > 1e-5 {
			t.Fatalf("token %d: %.2e", i, d)
		}
	}
	active, possible := s.Runner().SparseStats()
	frac := float64(active) / float64(possible)
	t.Logf("oracle computed %.1f%% of FFN neurons", 100*frac)
	if possible == 0 || frac > 0.5 {
		t.Errorf("computed %d of %d neurons: the planted model should be sparse", active, possible)
	}
}

// TestPowerInferPredictor: a PowerInfer-layout ReLU model with its
// embedded (planted) predictor: the predicted sparse path computes a small
// share of the neurons and its greedy output agrees with dense for at
// least 95% of 64 tokens (the bar is 256 on trained predictors).
func TestPowerInferPredictor(t *testing.T) {
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Params: 3e6, Type: dtype.Q8_0, Seed: 9}))
	p, err := m.FilePredictor()
	if err != nil || p == nil {
		t.Fatalf("embedded predictor: %v, %v", p, err)
	}
	prompt := m.Tok.Encode("Once upon a time", true, true)
	dense := session(t, m, engine.Options{Context: 128})
	want := greedy(t, dense, prompt, 64)
	s := session(t, m, engine.Options{Context: 128})
	if err := s.Runner().EnableSparse(engine.Sparsity{Predictor: p, OnResidual: true}); err != nil {
		t.Fatal(err)
	}
	got := greedy(t, s, prompt, 64)
	same := 0
	for i := range want {
		if got[i] == want[i] {
			same++
		}
	}
	active, possible := s.Runner().SparseStats()
	t.Logf("agreement %d/64, computed %.1f%% of neurons", same, 100*float64(active)/float64(possible))
	if same < 61 {
		t.Errorf("sparse greedy agrees with dense on %d of 64 tokens", same)
	}
	if float64(active) > 0.5*float64(possible) {
		t.Errorf("predictor selected %d of %d neurons", active, possible)
	}
}
