package engine_test

import (
	"os"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cuda"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/offload"
)

// openGPU returns the GPU for a GPU test (closed when it ends), skipping
// it unless STOKE_GPU=1.
func openGPU(t *testing.T) *cuda.Backend {
	t.Helper()
	if os.Getenv("STOKE_GPU") != "1" {
		t.Skip("GPU tests run with STOKE_GPU=1 on a machine with an NVIDIA GPU")
	}
	g, err := cuda.Open(cuda.Config{})
	if err != nil {
		t.Fatalf("STOKE_GPU=1 but no GPU: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// TestHybridOnGPU runs the hybrid end to end with CUDA as the device
// (STOKE_GPU=1 on a machine with an NVIDIA GPU; skipped otherwise): for
// hybrid plans at half and all of the model and a layer split, the logits
// of a prefill and greedy decode stay within 1e-2 relative of the CPU's
// (the GPU sums in other orders and does not quantize activations).
func TestHybridOnGPU(t *testing.T) {
	g := openGPU(t)
	for _, c := range []synth.Config{
		{Arch: "llama", Act: "relu", PowerInfer: true, Type: dtype.Q4_0},
		{Arch: "llama", Type: dtype.F16},
		{Arch: "llama", Type: dtype.Q8_0},
	} {
		c.Params, c.Seed = 20e6, 4
		m := load(t, synthModel(t, c))
		prompt := m.Tok.Encode("The GPU half and the CPU half must agree.", true, true)
		want := offloadLogits(t, m, prompt, 8, nil)
		desc, err := m.OffloadDesc(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range []offload.Options{
			{Mode: offload.ModeHybrid, Budget: desc.WeightBytes() / 2},
			{Mode: offload.ModeHybrid, Budget: 2 * desc.WeightBytes()},
			{Mode: offload.ModeLayerSplit, Budget: 2 * desc.WeightBytes(), Layers: -1},
		} {
			o.Context, o.Seqs, o.Batch = 64, 1, 8
			plan, err := offload.Solve(desc, o)
			if err != nil {
				t.Fatal(err)
			}
			got := offloadLogits(t, m, prompt, 8, func(r *engine.Runner) {
				if err := r.EnableOffload(g, plan); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(r.DisableOffload)
			})
			for i := range want {
				if d := relDiff(got[i], want[i]); d > 1e-2 {
					t.Fatalf("%v %s, %v plan of %d bytes: step %d differs from the CPU by %.2e relative", c.Type, c.Act, o.Mode, plan.TotalBytes, i, d)
				}
			}
		}
	}
}

// TestDevicePredictorOnGPU is TestDevicePredictor with CUDA as the device
// (STOKE_GPU=1): the plan holds every layer's predictor, the GPU computes
// it for every single-token step, and the decode stays close to the
// host predictor's: within 1% of the same active share and the same
// greedy token at 3 of 4 positions or more (the GPU sums the scores in
// another order, and one flipped neuron can change a later token).
func TestDevicePredictorOnGPU(t *testing.T) {
	g := openGPU(t)
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Type: dtype.Q4_0, Params: 20e6, Seed: 4}))
	fp, err := m.FilePredictor()
	if err != nil || fp == nil {
		t.Fatalf("the file's predictor: %v", err)
	}
	c := &m.Config
	prompt := m.Tok.Encode("The GPU predicts the active neurons.", true, true)
	const steps = 32
	run := func(plan *offload.Plan) ([]int32, float64, int64, int64) {
		s := session(t, m, engine.Options{Context: 128, Batch: 8})
		r := s.Runner()
		if plan != nil {
			if err := r.EnableOffload(g, plan); err != nil {
				t.Fatal(err)
			}
			defer r.DisableOffload()
		}
		if err := r.EnableSparse(engine.Sparsity{Predictor: fp, OnResidual: true}); err != nil {
			t.Fatal(err)
		}
		toks := greedy(t, s, prompt, steps)
		a, n := r.SparseStats()
		return toks, float64(a) / float64(n), r.DevicePredictions(), n / int64(c.Layers*c.FFN)
	}
	host, hostShare, _, _ := run(nil)
	desc, err := m.OffloadDesc(nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := offload.Solve(desc, offload.Options{Mode: offload.ModeHybrid, Budget: 2 * desc.WeightBytes(), Context: 128, Seqs: 1, Batch: 8, Layers: -1})
	if err != nil {
		t.Fatal(err)
	}
	toks, share, preds, single := run(plan)
	if want := single * int64(c.Layers); preds != want {
		t.Errorf("%d predictions on the GPU, want %d (%d steps × %d layers)", preds, want, single, c.Layers)
	}
	same := 0
	for i := range min(len(toks), len(host)) {
		if toks[i] == host[i] {
			same++
		}
	}
	t.Logf("GPU predictor: %.4f of neurons computed (host %.4f), %d/%d greedy tokens as the host's", share, hostShare, same, len(host))
	if d := share - hostShare; d > 0.01 || d < -0.01 || 4*same < 3*len(host) {
		t.Errorf("GPU predictor: %.4f of neurons computed (host %.4f), %d/%d greedy tokens as the host's", share, hostShare, same, len(host))
	}
}

// TestOffloadSparseBatchOnGPU is TestOffloadSparseBatchMatchesAlone with
// CUDA as the device (STOKE_GPU=1): concurrent requests on the scheduler
// decode the tokens of lone sparse sessions, each decode step of a
// batched pass predicting on the GPU from its own input.
func TestOffloadSparseBatchOnGPU(t *testing.T) {
	g := openGPU(t)
	offloadBatchMatchesAlone(t, func(*engine.Runner, int64) kernels.Backend { return g })
}
