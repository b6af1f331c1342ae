package engine_test

import (
	"os"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/kernels/cuda"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/offload"
)

// TestHybridOnGPU runs the hybrid end to end with CUDA as the device
// (STOKE_GPU=1 on a machine with an NVIDIA GPU; skipped otherwise): for
// hybrid plans at half and all of the model and a layer split, the logits
// of a prefill and greedy decode stay within 1e-2 relative of the CPU's
// (the GPU sums in other orders and does not quantize activations).
func TestHybridOnGPU(t *testing.T) {
	if os.Getenv("STOKE_GPU") != "1" {
		t.Skip("GPU tests run with STOKE_GPU=1 on a machine with an NVIDIA GPU")
	}
	g, err := cuda.Open(cuda.Config{})
	if err != nil {
		t.Fatalf("STOKE_GPU=1 but no GPU: %v", err)
	}
	defer g.Close()
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
