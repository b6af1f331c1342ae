package engine_test

import (
	"context"
	"flag"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/predictor"
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

// generatedText is a token stream for profiling: n token ids drawn
// uniformly (seeded) from the vocabulary past the three control tokens,
// which is what sampling a synthetic model at temperature 1 gives, near
// enough, at no decode cost.
func generatedText(m *engine.Model, n int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 0x7e47))
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(3 + rng.IntN(m.Config.Vocab-3))
	}
	return out
}

// profileOf records every layer's FFN inputs and activations over tokens,
// keeping up to samples of them per layer.
func profileOf(t *testing.T, m *engine.Model, tokens []int32, samples int) *predictor.Profile {
	t.Helper()
	c := &m.Config
	p := predictor.NewProfile(c.Layers, c.Dim, c.FFN, samples, 1)
	s := session(t, m, engine.Options{Context: 512, Batch: 128})
	if err := s.Profile(context.Background(), tokens, -1, p, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// predictorQuality is what TestTrainedPredictor measures: the lowest
// per-layer recall on held-out tokens, and how the greedy decode with
// predicted sparse FFNs compares with dense.
type predictorQuality struct {
	recall   float64 // min over layers, on the held-out profile
	sparsity float64 // mean predicted sparsity over layers
	n        int     // greedy tokens generated
	agree    int     // free-running: positions where the two generations hold the same token
	forced   int     // teacher-forced: positions where sparse, fed dense's tokens, picks dense's next token
	computed float64 // share of FFN neurons the sparse decode computed
}

// greedyAgreement decodes n greedy tokens from prompt with the predictor,
// free-running, and again fed the dense tokens want, and counts the
// positions that agree with want.
func greedyAgreement(t *testing.T, m *engine.Model, sp engine.Sparsity, prompt, want []int32) (agree, forced int, computed float64) {
	t.Helper()
	s := session(t, m, engine.Options{Context: 512})
	if err := s.Runner().EnableSparse(sp); err != nil {
		t.Fatal(err)
	}
	got := greedy(t, s, prompt, len(want))
	for i := range want {
		if got[i] == want[i] {
			agree++
		}
	}
	active, possible := s.Runner().SparseStats()
	computed = float64(active) / float64(possible)

	s = session(t, m, engine.Options{Context: 512})
	if err := s.Runner().EnableSparse(sp); err != nil {
		t.Fatal(err)
	}
	logits, err := s.Eval(prompt)
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range want {
		if argmax(logits) == tok {
			forced++
		}
		if i+1 < len(want) {
			if logits, err = s.Eval([]int32{tok}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return agree, forced, computed
}

// argmax is the greedy choice: the lowest id among the largest logits.
func argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

func measurePredictor(t *testing.T, m *engine.Model, p *predictor.Predictor, held *predictor.Profile, prompt, want []int32) predictorQuality {
	t.Helper()
	q := measureRecall(p, held)
	q.n = len(want)
	q.agree, q.forced, q.computed = greedyAgreement(t, m, engine.Sparsity{Predictor: p}, prompt, want)
	return q
}

var strictGreedy = flag.Bool("strict-greedy", false, "TestTrainedPredictor: also require free-running greedy agreement ≥ 95%")

// TestTrainedPredictor is the acceptance check for trained
// predictors, on planted ReLU (llama --relu) and dReLU (bamboo) models in
// F16: profile 8,192 generated tokens, train with the default options,
// then
//
//   - on 1,024 other tokens every layer's predictor must reach recall
//     ≥ 0.99;
//   - 256 greedy tokens decoded with predicted sparse FFNs must agree with
//     dense at ≥ 95% of positions, counted teacher-forced: at each
//     position the sparse model, fed the dense tokens so far, must pick
//     the dense model's next token.
//
// The free-running agreement (both models generating on their own,
// compared position by position) is reported, and required with
// -strict-greedy. It is not a robust measure on these models: their
// logits are nearly flat, some greedy steps are won by under 10⁻³ (a
// hundredth of the median margin), and one flip there changes every later
// token, so it measures where the first near-tie falls more than the
// predictor. F16 keeps ffn_down exact in the neuron-major form, so every
// disagreement is the predictor's.
//
// The predictor re-encoded in Q8_0 (stoke run --predictor-type q8_0)
// must pass the same check; Q4_0's figures are reported.
//
// To show that the check can fail, the same predictor with its scores
// lowered (a raised threshold) until it misses over 4% of the firing
// neurons must fail it, and lowered further, the greedy agreement alone
// must fail.
func TestTrainedPredictor(t *testing.T) {
	if testing.Short() {
		t.Skip("profiles 9k tokens and trains two predictors (10–15 s per model)")
	}
	for _, c := range []synth.Config{
		{Arch: "llama", Act: "relu", Params: 2e6, Type: dtype.F16, Seed: 11},
		{Arch: "bamboo", Act: "drelu", Params: 2e6, Type: dtype.F16, Seed: 11},
	} {
		t.Run(c.Act, func(t *testing.T) {
			m := load(t, synthModel(t, c))
			t0 := time.Now()
			text := generatedText(m, 8192+1024, 1)
			prof := profileOf(t, m, text[:8192], 8192)
			held := profileOf(t, m, text[8192:], 1024)
			t1 := time.Now()
			pred, reps, err := predictor.Train(prof, nil, predictor.TrainOptions{Seed: 1, Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			t2 := time.Now()
			for _, r := range reps {
				t.Logf("layer %d: rank %d, %d epochs; test samples: recall %.4f precision %.3f sparsity %.4f (true %.4f)",
					r.Layer, r.Rank, r.Epochs, r.Recall, r.Precision, r.Sparsity, r.TrueSparsity)
			}
			prompt := m.Tok.Encode("Once upon a time", true, true)
			want := greedy(t, session(t, m, engine.Options{Context: 512}), prompt, 256)
			q := measurePredictor(t, m, pred, held, prompt, want)
			t.Logf("held-out recall %.4f (min over layers), sparsity %.4f; greedy agreement teacher-forced %d/%d, free-running %d/%d; %.1f%% of neurons computed; profile %v, training %v",
				q.recall, q.sparsity, q.forced, q.n, q.agree, q.n, 100*q.computed, t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond))
			if !q.pass(*strictGreedy) {
				t.Errorf("held-out recall %.4f (want ≥ 0.99), greedy agreement teacher-forced %d/%d, free-running %d/%d (want ≥ 95%%)", q.recall, q.forced, q.n, q.agree, q.n)
			}

			// Re-encoded at load (stoke run --predictor-type): Q8_0 must
			// pass the same check; Q4_0 is reported.
			for _, typ := range []dtype.Type{dtype.Q8_0, dtype.Q4_0} {
				pq, err := pred.Quantized(typ)
				if err != nil {
					t.Fatal(err)
				}
				qq := measurePredictor(t, m, pq, held, prompt, want)
				t.Logf("re-encoded in %s: held-out recall %.4f, sparsity %.4f; greedy agreement teacher-forced %d/%d, free-running %d/%d; %.1f%% of neurons computed",
					typ, qq.recall, qq.sparsity, qq.forced, qq.n, qq.agree, qq.n, 100*qq.computed)
				if typ == dtype.Q8_0 && !qq.pass(*strictGreedy) {
					t.Errorf("re-encoded in Q8_0: held-out recall %.4f, greedy agreement teacher-forced %d/%d", qq.recall, qq.forced, qq.n)
				}
			}

			// Worse predictors: every score lowered, first until held-out
			// recall falls under 0.96 (the recall check must fail), then
			// until the greedy agreement check fails on its own.
			var bad predictorQuality
			shift := float32(2)
			for ; shift < 1e4; shift *= 1.5 {
				if bad = measureRecall(shifted(pred, shift), held); bad.recall < 0.96 {
					break
				}
			}
			bad = measurePredictor(t, m, shifted(pred, shift), held, prompt, want)
			t.Logf("scores lowered by %.1f: recall %.4f, greedy agreement teacher-forced %d/%d, free-running %d/%d", shift, bad.recall, bad.forced, bad.n, bad.agree, bad.n)
			if bad.pass(*strictGreedy) {
				t.Errorf("a predictor with recall %.4f passes the check", bad.recall)
			}
			for ; shift < 1e4; shift *= 2 {
				if bad = measurePredictor(t, m, shifted(pred, shift), held, prompt, want); float64(bad.forced) < 0.95*float64(bad.n) {
					break
				}
			}
			t.Logf("scores lowered by %.1f: recall %.4f, sparsity %.4f, greedy agreement teacher-forced %d/%d, free-running %d/%d", shift, bad.recall, bad.sparsity, bad.forced, bad.n, bad.agree, bad.n)
			if bad.recall = 1; bad.pass(false) {
				t.Errorf("greedy agreement %d/%d of a predictor with recall %.4f passes the check", bad.forced, bad.n, bad.recall)
			}
		})
	}
}

// measureRecall is measurePredictor's recall and sparsity alone.
func measureRecall(p *predictor.Predictor, held *predictor.Profile) predictorQuality {
	q := predictorQuality{recall: 1}
	for l := range held.Layers {
		hl := &held.Layers[l]
		mt := predictor.Evaluate(&p.Layers[l], hl.X, hl.A, hl.N, 0)
		q.recall = min(q.recall, mt.Recall)
		q.sparsity += mt.Sparsity / float64(len(held.Layers))
	}
	return q
}

func (q predictorQuality) pass(strict bool) bool {
	ok := q.recall >= 0.99 && float64(q.forced) >= 0.95*float64(q.n)
	if strict {
		ok = ok && float64(q.agree) >= 0.95*float64(q.n)
	}
	return ok
}

// shifted returns p with every output score lowered by shift.
func shifted(p *predictor.Predictor, shift float32) *predictor.Predictor {
	out := &predictor.Predictor{ActThreshold: p.ActThreshold}
	for _, lp := range p.Layers {
		lp.B2 = append([]float32(nil), lp.B2...)
		for i := range lp.B2 {
			lp.B2[i] -= shift
		}
		out.Layers = append(out.Layers, lp)
	}
	return out
}
