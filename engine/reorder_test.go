package engine_test

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/models/synth"
)

// TestRenumberedModelComputesTheSame: a model whose FFN neurons were
// renumbered (arch.PermuteFFN, as stoke reorder writes it) computes the
// same logits as the original within 1e-5 relative (only the order of
// the down projection's sum changes), dense, and sparse with the file's
// predictor (renumbered with the rows it predicts), on every family; a
// quantized standard-layout file, whose ffn_down gives way to the
// neuron-major down the sparse FFN builds, computes what the original
// does sparse.
func TestRenumberedModelComputesTheSame(t *testing.T) {
	for _, c := range []synth.Config{
		{Arch: "llama", Act: "relu", PowerInfer: true, Type: dtype.Q4_0},
		{Arch: "bamboo", Act: "drelu", PowerInfer: true, Type: dtype.Q8_0},
		{Arch: "opt", Act: "relu", PowerInfer: true, Type: dtype.F16},
		{Arch: "opt", Act: "relu", Type: dtype.F32},
		{Arch: "llama", Type: dtype.F16},
		{Arch: "llama", Act: "relu", Type: dtype.Q4_0},
		{Arch: "opt", Act: "relu", Type: dtype.Q8_0},
	} {
		c.Params, c.Seed = 3e6, 11
		name := c.Arch + "-" + c.Type.String()
		if c.PowerInfer {
			name += "-powerinfer"
		}
		t.Run(name, func(t *testing.T) {
			src := synthModel(t, c)
			f, err := gguf.Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cfg, err := arch.ConfigFromGGUF(f)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			order := make([][]int32, cfg.Layers)
			for l := range order {
				for _, v := range rng.Perm(cfg.FFN) {
					order[l] = append(order[l], int32(v))
				}
			}
			m0 := load(t, src)
			var downT []*arch.Tensor
			if c.Type.BlockSize() > 1 && !c.PowerInfer {
				// quantized ffn_down: the sparse FFN's neuron-major down
				// goes in its place, so dense differs from the original
				// (Q8_0 against the file's down) and sparse is compared
				if downT, err = m0.NeuronMajorDown(); err != nil {
					t.Fatal(err)
				}
			}
			w, _, err := arch.PermuteFFN(f, order, downT)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "renumbered.gguf")
			if err := gguf.WriteFile(dst, w); err != nil {
				t.Fatal(err)
			}
			m1 := load(t, dst)
			prompt := m0.Tok.Encode("Renumbered neurons compute the same function.", true, true)
			check := func(mode string, a, b [][]float32) {
				t.Helper()
				for i := range a {
					if d := relDiff(b[i], a[i]); d > 1e-5 {
						t.Fatalf("%s, token %d: renumbered differs by %.2e relative", mode, i, d)
					}
				}
			}
			if downT != nil {
				oracle := func(r *engine.Runner) {
					if err := r.EnableSparse(engine.Sparsity{}); err != nil {
						t.Fatal(err)
					}
				}
				check("sparse (oracle)", decodeLogits(t, m0, prompt, oracle), decodeLogits(t, m1, prompt, oracle))
				return
			}
			check("dense", decodeLogits(t, m0, prompt, nil), decodeLogits(t, m1, prompt, nil))
			if !c.PowerInfer {
				return
			}
			sparse := func(m *engine.Model) func(r *engine.Runner) {
				return func(r *engine.Runner) {
					p, err := m.FilePredictor()
					if err != nil || p == nil {
						t.Fatalf("file predictor: %v", err)
					}
					if err := r.EnableSparse(engine.Sparsity{Predictor: p, OnResidual: true}); err != nil {
						t.Fatal(err)
					}
				}
			}
			check("sparse", decodeLogits(t, m0, prompt, sparse(m0)), decodeLogits(t, m1, prompt, sparse(m1)))
		})
	}
}
