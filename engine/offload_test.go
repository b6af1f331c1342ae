package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/offload"
	"github.com/stokehq/stoke/predictor"
)

// offloadLogits runs a prompt as one prefill (batched device trips) and
// then decodes greedily, returning the prefill's last logits and every
// decode step's; setup may enable offload on the session's runner.
func offloadLogits(t *testing.T, m *engine.Model, prompt []int32, steps int, setup func(r *engine.Runner)) [][]float32 {
	t.Helper()
	s := session(t, m, engine.Options{Context: 64, Batch: 8})
	if setup != nil {
		setup(s.Runner())
	}
	var out [][]float32
	l, err := s.Eval(prompt)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, append([]float32(nil), l...))
	for range steps {
		best := 0
		for i, v := range l {
			if v > l[best] {
				best = i
			}
		}
		if l, err = s.Eval([]int32{int32(best)}); err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]float32(nil), l...))
	}
	return out
}

// TestHybridEqualsDense is the no-GPU acceptance test of the hybrid
// executor: with a CPU backend capped to the budget standing in for the
// device, hybrid and layer-split plans at 0, 10, 50 and 100% of the
// model's bytes give the dense logits within 1e-5 relative, on every
// family and dtype, and the device never holds more than the plan (nor
// the plan more than the budget). As for the sparse path, quantized
// standard-layout files split their down projection over a Q8_0
// neuron-major copy, so they are compared in PowerInfer's layout, whose
// ffn_down_t every path shares.
func TestHybridEqualsDense(t *testing.T) {
	type tc struct {
		name string
		c    synth.Config
	}
	var cases []tc
	for _, dt := range []dtype.Type{dtype.F32, dtype.F16, dtype.BF16} {
		cases = append(cases,
			tc{"llama-silu/" + dt.String(), synth.Config{Arch: "llama", Type: dt}},
			tc{"bamboo-drelu/" + dt.String(), synth.Config{Arch: "bamboo", Act: "drelu", Type: dt}},
			tc{"opt/" + dt.String(), synth.Config{Arch: "opt", Act: "relu", Type: dt}},
		)
	}
	for _, dt := range []dtype.Type{dtype.Q4_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1, dtype.Q8_0, dtype.Q4_K, dtype.Q5_K, dtype.Q6_K} {
		cases = append(cases, tc{"powerinfer-relu/" + dt.String(), synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Type: dt}})
	}
	cases = append(cases, tc{"powerinfer-opt/Q4_0", synth.Config{Arch: "opt", Act: "relu", PowerInfer: true, Type: dtype.Q4_0}})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.c.Params, c.c.Seed = 2e6, 3
			m := load(t, synthModel(t, c.c))
			prompt := m.Tok.Encode("Hybrid and dense must agree on this prompt.", true, true)
			dense := offloadLogits(t, m, prompt, 4, nil)
			desc, err := m.OffloadDesc(nil)
			if err != nil {
				t.Fatal(err)
			}
			total := desc.WeightBytes()
			for _, mode := range []offload.Mode{offload.ModeHybrid, offload.ModeLayerSplit} {
				for _, share := range []float64{0, 0.1, 0.5, 1} {
					budget := int64(share * float64(total))
					if share == 1 {
						budget = total * 3 // all of it, with KV and scratch
					}
					t.Run(fmt.Sprintf("%v/%.0f%%", mode, share*100), func(t *testing.T) {
						plan, err := offload.Solve(desc, offload.Options{Mode: mode, Budget: budget, Context: 64, Seqs: 1, Batch: 8, Layers: -1})
						if err != nil {
							t.Skipf("no plan fits %d bytes: %v", budget, err)
						}
						if plan.TotalBytes > budget {
							t.Fatalf("plan of %d bytes over the %d budget", plan.TotalBytes, budget)
						}
						var dev *cpu.Backend
						got := offloadLogits(t, m, prompt, 4, func(r *engine.Runner) {
							dev = cpu.NewBackend(r.Pool(), budget)
							if err := r.EnableOffload(dev, plan); err != nil {
								t.Fatal(err)
							}
						})
						for i := range dense {
							if d := relDiff(got[i], dense[i]); d > 1e-5 {
								t.Fatalf("step %d: hybrid differs from dense by %.2e relative", i, d)
							}
						}
						if dev.Peak() > plan.TotalBytes {
							t.Fatalf("device held %d bytes, plan %d", dev.Peak(), plan.TotalBytes)
						}
						if share == 1 && mode == offload.ModeHybrid && plan.HitRate < 1 {
							t.Fatalf("everything fits but the plan serves %.2f of the neurons", plan.HitRate)
						}
					})
				}
			}
		})
	}
}

// TestDevicePredictor: with the plan holding a PowerInfer file's
// predictor on the device (a capped CPU backend standing in), the runner
// computes it there for every layer of every decode step, and decodes
// what the host predictor decodes: the same greedy tokens, within a few
// neurons of the same active share (scores summed in another order may
// fall on the other side of the threshold). A predictor that is not the
// file's (here the file's re-encoded in Q8_0) runs on the host, and a plan
// made without the predictor holds none of its bytes.
func TestDevicePredictor(t *testing.T) {
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Type: dtype.Q4_0, Params: 2e6, Seed: 5}))
	fp, err := m.FilePredictor()
	if err != nil || fp == nil {
		t.Fatalf("the file's predictor: %v", err)
	}
	prompt := m.Tok.Encode("The device predicts the active neurons.", true, true)
	const steps = 24
	c := &m.Config
	var sparseSteps int64 // single-token steps (sparse), per run
	run := func(p *predictor.Predictor, plan *offload.Plan) ([]int32, float64, int64) {
		s := session(t, m, engine.Options{Context: 128, Batch: 8})
		r := s.Runner()
		if plan != nil {
			if err := r.EnableOffload(cpu.NewBackend(r.Pool(), plan.TotalBytes), plan); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.EnableSparse(engine.Sparsity{Predictor: p, OnResidual: true}); err != nil {
			t.Fatal(err)
		}
		toks := greedy(t, s, prompt, steps)
		a, n := r.SparseStats()
		sparseSteps = n / int64(c.Layers*c.FFN)
		return toks, float64(a) / float64(n), r.DevicePredictions()
	}
	host, hostShare, none := run(fp, nil)
	if none != 0 {
		t.Fatalf("%d device predictions without a device", none)
	}

	desc, err := m.OffloadDesc(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, share := range []float64{0.6, 3} { // some layers' attention and predictor, then all of it
		budget := int64(share * float64(desc.WeightBytes()))
		plan, err := offload.Solve(desc, offload.Options{Mode: offload.ModeHybrid, Budget: budget, Context: 128, Seqs: 1, Batch: 8, Layers: -1})
		if err != nil {
			t.Fatal(err)
		}
		layers := 0
		for _, lp := range plan.Layers {
			if lp.Predictor {
				layers++
			}
		}
		if layers == 0 || share < 1 && layers == len(plan.Layers) {
			t.Fatalf("budget %.0f%%: the plan holds %d of %d layers' predictors", 100*share, layers, len(plan.Layers))
		}
		toks, devShare, preds := run(fp, plan)
		// one prediction per single-token step and layer the plan holds
		if want := sparseSteps * int64(layers); preds != want || sparseSteps < steps-1 {
			t.Errorf("budget %.0f%%: %d device predictions, want %d (%d steps × %d layers)", 100*share, preds, want, sparseSteps, layers)
		}
		if !slices.Equal(toks, host) {
			t.Errorf("budget %.0f%%: device predictor decodes %v, host %v", 100*share, toks, host)
		}
		if d := devShare - hostShare; d > 0.002 || d < -0.002 {
			t.Errorf("budget %.0f%%: %.4f of neurons computed, %.4f with the host predictor", 100*share, devShare, hostShare)
		}

		q, err := fp.Quantized(dtype.Q8_0)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, preds := run(q, plan); preds != 0 {
			t.Errorf("budget %.0f%%: a re-encoded predictor ran %d times on the device, which holds the file's", 100*share, preds)
		}
	}

	// without the predictor in the description, the plan holds none
	for l := range desc.Layers {
		desc.Layers[l].Predictor = nil
	}
	plan, err := offload.Solve(desc, offload.Options{Mode: offload.ModeHybrid, Budget: 3 * desc.WeightBytes(), Context: 128, Seqs: 1, Batch: 8, Layers: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, preds := run(fp, plan); preds != 0 {
		t.Errorf("%d device predictions with no predictor in the plan", preds)
	}
}

// TestOffloadSparseBatchMatchesAlone: with a hybrid plan, a pass that
// decodes several sequences gives each decode step its own predicted
// neurons on the device and the CPU alike, so concurrent requests on the
// scheduler get exactly the tokens of lone sparse sessions with the same
// plan. The predictor is the file's with its threshold raised until
// sparse and dense decoding part ways (checked): a batched pass that ran
// every neuron would show. Device predictions count one per decode step
// and layer whose predictor the plan holds.
func TestOffloadSparseBatchMatchesAlone(t *testing.T) {
	offloadBatchMatchesAlone(t, func(r *engine.Runner, budget int64) kernels.Backend { return cpu.NewBackend(r.Pool(), budget) })
}

// offloadBatchMatchesAlone is TestOffloadSparseBatchMatchesAlone with the
// device dev gives a runner (for a plan of budget bytes).
func offloadBatchMatchesAlone(t *testing.T, dev func(r *engine.Runner, budget int64) kernels.Backend) {
	m, weak := weakPredictorModel(t)
	desc, err := m.OffloadDesc(nil)
	if err != nil {
		t.Fatal(err)
	}
	const clients, parallel, batch, ctx = 8, 4, 16, 256
	// layer 0 mostly on the device, layer 1 partly, layer 2 not
	plan, err := offload.Solve(desc, offload.Options{Mode: offload.ModeHybrid, Budget: 2 * desc.WeightBytes(),
		Context: ctx, Seqs: parallel, Batch: batch, Layers: -1})
	if err != nil {
		t.Fatal(err)
	}
	hot, preds := 0, 0
	for _, lp := range plan.Layers {
		if len(lp.Hot) > 0 {
			hot++
		}
		if lp.Predictor {
			preds++
		}
	}
	if hot == 0 || preds == 0 {
		t.Fatalf("the plan has %d layers with hot neurons and %d predictors: nothing to check", hot, preds)
	}
	setup := func(sparse bool) func(r *engine.Runner) error {
		return func(r *engine.Runner) error {
			if err := r.EnableOffload(dev(r, plan.TotalBytes), plan); err != nil {
				return err
			}
			if !sparse {
				return nil
			}
			return r.EnableSparse(engine.Sparsity{Predictor: weak, OnResidual: true})
		}
	}
	prompts := make([][]int32, clients)
	want := make([][]int32, clients)
	differ := 0
	for i := range prompts {
		prompts[i] = m.Tok.Encode(fmt.Sprintf("Request %d: %s", i, strings.Repeat("tell me a story ", i%4+1)), true, true)
		var got [2][]int32
		for k, sparse := range []bool{false, true} {
			s := session(t, m, engine.Options{Context: ctx, Batch: batch})
			if err := setup(sparse)(s.Runner()); err != nil {
				t.Fatal(err)
			}
			res, err := s.Generate(context.Background(), prompts[i], greedyParams(12+i%5), nil)
			if err != nil {
				t.Fatal(err)
			}
			s.Runner().DisableOffload() // the device's memory back for the next
			got[k] = res.Tokens
		}
		want[i] = got[1]
		if !slices.Equal(got[0], got[1]) {
			differ++
		}
	}
	if differ < clients/2 {
		t.Fatalf("only %d of %d requests decode differently sparse and dense: the check could not tell them apart", differ, clients)
	}
	var runner *engine.Runner
	sc, err := engine.NewScheduler(m, engine.SchedulerOptions{Parallel: parallel, Context: ctx, Queue: clients, Batch: batch,
		Setup: func(r *engine.Runner) error { runner = r; return setup(true)(r) }})
	if err != nil {
		t.Fatal(err)
	}
	generateConcurrently(t, sc, prompts, want)
	st, devPreds := sc.Stats(), runner.DevicePredictions() // the loop is idle: every request has its answer
	sc.Close()
	if st.Steps >= st.GenTokens {
		t.Errorf("stats %+v: want passes that decoded several sequences at once", st)
	}
	// every generated token but each request's first is a decode step
	steps := st.GenTokens - int64(clients)
	if got, want := devPreds, steps*int64(preds); got != want {
		t.Errorf("%d device predictions, want %d (%d decode steps × %d layers)", got, want, steps, preds)
	}
}

// TestHybridPromptPath: prompt tokens of a layer whose cold neurons are a
// large share run on the CPU's dense FFN, the whole pass at once, and
// only those of a layer almost all on the device go through the hybrid
// executor, token by token; decode steps always go through it. Counted
// by the executor's neurons.
func TestHybridPromptPath(t *testing.T) {
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Type: dtype.Q8_0, Params: 3e6, Seed: 6}))
	c := &m.Config
	desc, err := m.OffloadDesc(nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := offload.Solve(desc, offload.Options{Mode: offload.ModeHybrid, Budget: 2 * desc.WeightBytes(), Context: 256, Seqs: 4, Batch: 16, Layers: -1})
	if err != nil {
		t.Fatal(err)
	}
	onDevice, hot := 0, 0 // layers whose prompt tokens take the executor; layers with hot neurons
	for _, lp := range plan.Layers {
		if len(lp.Hot) > 0 {
			hot++
			if cold := c.FFN - len(lp.Hot); 5*cold < c.FFN {
				onDevice++
			}
		}
	}
	if onDevice == 0 || onDevice == hot {
		t.Fatalf("the plan has %d layers with hot neurons, %d of them mostly hot: want both kinds", hot, onDevice)
	}
	r := m.NewRunner(16, 2, nil)
	defer r.Close()
	if err := r.EnableOffload(cpu.NewBackend(r.Pool(), plan.TotalBytes), plan); err != nil {
		t.Fatal(err)
	}
	kv, err := m.NewKVCache(64, dtype.F32)
	if err != nil {
		t.Fatal(err)
	}
	prompt := m.Tok.Encode("Prompt tokens take the dense FFN.", true, true)[:12] // within the batch
	if err := r.Forward([]engine.Seq{{KV: kv, Tokens: prompt}}); err != nil {
		t.Fatal(err)
	}
	if got, want := r.OffloadStats().Active, int64(len(prompt)*onDevice*c.FFN); got != want {
		t.Errorf("prompt of %d tokens: the executor computed %d neurons, want %d (%d layers mostly on the device × %d)", len(prompt), got, want, onDevice, c.FFN)
	}
	r.DisableOffload()
	if err := r.EnableOffload(cpu.NewBackend(r.Pool(), plan.TotalBytes), plan); err != nil {
		t.Fatal(err)
	}
	logits := make([]float32, c.Vocab)
	if err := r.Forward([]engine.Seq{{KV: kv, Tokens: []int32{prompt[1]}, Logits: logits, Decode: true}}); err != nil {
		t.Fatal(err)
	}
	if got, want := r.OffloadStats().Active, int64(hot*c.FFN); got != want {
		t.Errorf("decode step: the executor computed %d neurons, want %d (%d layers with hot neurons × %d)", got, want, hot, c.FFN)
	}

	// a pass that mixes a prompt with a decode step: each as alone
	kv2, err := m.NewKVCache(64, dtype.F32)
	if err != nil {
		t.Fatal(err)
	}
	before := r.OffloadStats().Active
	if err := r.Forward([]engine.Seq{{KV: kv2, Tokens: prompt}, {KV: kv, Tokens: []int32{prompt[2]}, Logits: logits, Decode: true}}); err != nil {
		t.Fatal(err)
	}
	if got, want := r.OffloadStats().Active-before, int64((len(prompt)*onDevice+hot)*c.FFN); got != want {
		t.Errorf("prompt and decode step in one pass: the executor computed %d neurons, want %d", got, want)
	}
}
