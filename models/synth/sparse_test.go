package synth_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/models/synth"
)

// sparseConfigs are the planted families the tests write: small enough
// for a few seconds of simulated tokens, with one quantized type each.
func sparseConfigs() []synth.Config {
	base := synth.Config{Dim: 256, Layers: 2, FFN: 512, Vocab: 512, Context: 256, Seed: 5}
	with := func(f func(*synth.Config)) synth.Config { c := base; f(&c); return c }
	return []synth.Config{
		with(func(c *synth.Config) { c.Act, c.Type = "relu", dtype.F16 }),
		with(func(c *synth.Config) { c.Act, c.Type, c.PowerInfer = "relu", dtype.Q4_0, true }),
		with(func(c *synth.Config) { c.Arch, c.Type, c.PowerInfer, c.HotFraction = "bamboo", dtype.Q8_0, true, 0.1 }),
		with(func(c *synth.Config) { c.Arch, c.Type, c.PowerInfer, c.ColdRate = "opt", dtype.Q4_K, true, 0.04 }),
	}
}

func open(t *testing.T, c synth.Config) (*gguf.File, synth.Config) {
	t.Helper()
	sc, err := synth.Shape(c)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := synth.Write(path, c); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, sc
}

// matrix dequantizes a 2-D tensor into rows of ne0.
func matrix(t *testing.T, f *gguf.File, name string) [][]float32 {
	t.Helper()
	ti, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("tensor %s is missing", name)
	}
	x := make([]float32, ti.Elements())
	if err := dtype.Dequantize(ti.Type, f.TensorData(ti), x); err != nil {
		t.Fatal(err)
	}
	ne0 := int(ti.Shape[0])
	rows := make([][]float32, len(x)/ne0)
	for i := range rows {
		rows[i] = x[i*ne0 : (i+1)*ne0]
	}
	return rows
}

func vector(t *testing.T, f *gguf.File, name string) []float32 {
	t.Helper()
	if _, ok := f.Tensor(name); !ok {
		return nil
	}
	return matrix(t, f, name)[0]
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// TestPlantedFiring measures what the generator plants. It stands in for
// the forward pass: the residual entering layer l's FFN is a token's
// embedding (plus, for OPT, a position row) plus normal noise that brings
// the per-dimension std to ResidualStd(l) (what attention and earlier FFNs
// add); ffn_norm and the stored (dequantized) gate and up rows then give
// the pre-activations. Over 1,500 such tokens every hot neuron must fire
// for ≥ 80% of them, every other neuron for ≤ 10%, the rates must follow
// the plan, and where the file has a predictor it must catch ≥ 99% of the
// firings.
func TestPlantedFiring(t *testing.T) {
	const tokens = 1500
	for _, c := range sparseConfigs() {
		t.Run(fmt.Sprintf("%s-%s-%s-pi%v", c.Arch, c.Act, c.Type, c.PowerInfer), func(t *testing.T) {
			f, sc := open(t, c)
			opt := sc.Arch == "opt"
			emb := matrix(t, f, "token_embd.weight")
			var pos [][]float32
			if opt {
				pos = matrix(t, f, "position_embd.weight")
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for l := range sc.Layers {
				p := fmt.Sprintf("blk.%d.", l)
				w, b := vector(t, f, p+"ffn_norm.weight"), vector(t, f, p+"ffn_norm.bias")
				up, upB := matrix(t, f, p+"ffn_up.weight"), vector(t, f, p+"ffn_up.bias")
				var gate, fc1, fc2 [][]float32
				if !opt {
					gate = matrix(t, f, p+"ffn_gate.weight")
				}
				if sc.PowerInfer {
					fc1, fc2 = matrix(t, f, p+"fc1.weight"), matrix(t, f, p+"fc2.weight")
				}
				sigma := synth.ResidualStd(sc, l)
				noise := sigma*sigma - 1
				if opt {
					noise -= 0.25 // the position rows' share
				}
				noise = math.Sqrt(max(noise, 0))
				fired := make([]int, sc.FFN)
				var hits, missed, predicted int
				h := make([]float32, sc.Dim)
				x := make([]float32, sc.Dim)
				hid := make([]float32, len(fc1))
				for range tokens {
					copy(h, emb[rng.IntN(len(emb))])
					if opt {
						for j, v := range pos[rng.IntN(len(pos))] {
							h[j] += v
						}
					}
					for j := 1; j < sc.Dim; j++ {
						h[j] += float32(rng.NormFloat64() * noise)
					}
					normalise(x, h, w, b, opt)
					for k := range fc1 {
						hid[k] = float32(max(0, dot(fc1[k], h)))
					}
					for i := range sc.FFN {
						zu := dot(up[i], x)
						if upB != nil {
							zu += float64(upB[i])
						}
						on := zu > 0
						switch {
						case sc.Act == "drelu":
							on = on && dot(gate[i], x) > 0
						case !opt:
							on = dot(gate[i], x) > 0
						}
						pred := fc2 != nil && dot(fc2[i], hid) >= 0
						if pred {
							predicted++
						}
						if on {
							fired[i]++
							if fc2 != nil && !pred {
								missed++
							}
							hits++
						}
					}
				}
				plan := synth.Firing(sc, l)
				hot := map[int]bool{}
				for _, i := range synth.Hot(sc, l) {
					hot[i] = true
				}
				if want := int(math.Round(sc.HotFraction * float64(sc.FFN))); len(hot) != want {
					t.Fatalf("layer %d: %d hot neurons, want %d", l, len(hot), want)
				}
				var planned, dev float64
				bad := 0
				for i, n := range fired {
					rate := float64(n) / tokens
					planned += plan[i]
					dev += math.Abs(rate - plan[i])
					if hot[i] && rate < 0.8 || !hot[i] && rate > 0.1 {
						if bad++; bad <= 5 {
							t.Errorf("layer %d neuron %d (hot %v, planned %.3f) fires for %.3f of tokens", l, i, hot[i], plan[i], rate)
						}
					}
				}
				planned /= float64(sc.FFN)
				measured := float64(hits) / tokens / float64(sc.FFN)
				dev /= float64(sc.FFN)
				t.Logf("layer %d: active fraction %.4f (planned %.4f), mean |rate − plan| %.4f", l, measured, planned, dev)
				if math.Abs(measured/planned-1) > 0.15 || dev > 0.02 {
					t.Errorf("layer %d: active fraction %.4f vs planned %.4f, mean deviation %.4f", l, measured, planned, dev)
				}
				if fc2 != nil {
					recall := 1 - float64(missed)/float64(hits)
					t.Logf("layer %d: predictor recall %.4f, precision %.3f", l, recall, float64(hits-missed)/float64(predicted))
					if recall < 0.99 {
						t.Errorf("layer %d: planted predictor recall %.4f < 0.99", l, recall)
					}
				}
			}
		})
	}
}

// normalise is ffn_norm: RMSNorm·w, or LayerNorm·w + b for OPT.
func normalise(x, h, w, b []float32, layer bool) {
	var mean, sq float64
	if layer {
		for _, v := range h {
			mean += float64(v)
		}
		mean /= float64(len(h))
	}
	for _, v := range h {
		d := float64(v) - mean
		sq += d * d
	}
	s := 1 / math.Sqrt(sq/float64(len(h))+1e-5)
	for j := range x {
		x[j] = float32((float64(h[j]) - mean) * s * float64(w[j]))
		if b != nil {
			x[j] += b[j]
		}
	}
}

func TestFiringPlan(t *testing.T) {
	c, err := synth.Shape(synth.Config{Act: "relu", Dim: 512, Layers: 3, FFN: 2048, HotFraction: 0.03, ColdRate: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	for l := range c.Layers {
		p := synth.Firing(c, l)
		hot := synth.Hot(c, l)
		if len(p) != c.FFN || len(hot) != 61 {
			t.Fatalf("%d rates, %d hot", len(p), len(hot))
		}
		inHot := map[int]bool{}
		var coldSum, coldMax float64
		for _, i := range hot {
			inHot[i] = true
			if p[i] < 0.85 || p[i] > 0.97 {
				t.Errorf("hot neuron %d planned at %g", i, p[i])
			}
		}
		for i, v := range p {
			if !inHot[i] {
				coldSum += v
				coldMax = max(coldMax, v)
			}
		}
		if mean := coldSum / float64(c.FFN-len(hot)); math.Abs(mean-0.01) > 1e-4 || coldMax > synth.MaxColdRate {
			t.Errorf("cold mean %g (want 0.01), max %g", mean, coldMax)
		}
		if l > 0 && fmt.Sprint(hot) == fmt.Sprint(synth.Hot(c, l-1)) {
			t.Error("two layers have the same hot set")
		}
		if hot[len(hot)-1] < c.FFN/2 {
			t.Error("hot set is not spread over the layer")
		}
	}
	if synth.Firing(synth.Config{Dim: 256, Layers: 1, FFN: 512}, 0) != nil {
		t.Error("a SwiGLU config has a plan")
	}
}

// TestPowerInferLayout checks that PowerInfer's layout stores the same
// model: ffn_down_t is the transpose of the plain file's ffn_down, other
// weights are equal, and arch binds both.
func TestPowerInferLayout(t *testing.T) {
	c := synth.Config{Act: "relu", Dim: 256, Layers: 2, FFN: 512, Vocab: 512, Type: dtype.F16, Seed: 9}
	plain, _ := open(t, c)
	c.PowerInfer = true
	pi, sc := open(t, c)
	if plain.Magic != gguf.MagicGGUF || pi.Magic != gguf.MagicPowerInfer {
		t.Fatalf("magics %q %q", plain.Magic, pi.Magic)
	}
	for l := range sc.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		down, downT := matrix(t, plain, p+"ffn_down.weight"), matrix(t, pi, p+"ffn_down_t.weight")
		for j := range down {
			for i := range down[j] {
				if down[j][i] != downT[i][j] {
					t.Fatalf("layer %d: ffn_down[%d][%d] = %g, ffn_down_t[%d][%d] = %g", l, j, i, down[j][i], i, j, downT[i][j])
				}
			}
		}
		if down[0][7] != 0 || downT[7][0] != 0 {
			t.Error("down writes to the anchor dimension")
		}
		for _, n := range []string{"ffn_gate.weight", "ffn_up.weight", "attn_q.weight", "ffn_norm.weight"} {
			a, _ := plain.Tensor(p + n)
			b, _ := pi.Tensor(p + n)
			if !bytes.Equal(plain.TensorData(a), pi.TensorData(b)) {
				t.Errorf("%s%s differs between layouts", p, n)
			}
		}
		fc1, _ := pi.Tensor(p + "fc1.weight")
		fc2, _ := pi.Tensor(p + "fc2.weight")
		r := uint64(synth.PredictorRank(sc))
		if fc1.Type != dtype.F16 || fmt.Sprint(fc1.Shape) != fmt.Sprint([]uint64{256, r}) || fmt.Sprint(fc2.Shape) != fmt.Sprint([]uint64{r, 512}) {
			t.Errorf("predictor %s %v, %s %v", fc1.Type, fc1.Shape, fc2.Type, fc2.Shape)
		}
	}
	if v, ok := pi.Float(synth.KeySparseThreshold); !ok || v != 0 {
		t.Errorf("sparse threshold %g %v", v, ok)
	}
	for _, f := range []*gguf.File{plain, pi} {
		cfg, err := arch.ConfigFromGGUF(f)
		if err != nil {
			t.Fatal(err)
		}
		w, err := arch.Bind(f, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Act != arch.ReLU || cfg.DReLU || !cfg.Gated || cfg.PowerInfer != (f == pi) {
			t.Errorf("config %+v", cfg.Family)
		}
		if (w.Layers[1].DownT != nil) != (f == pi) || (w.Layers[1].Down != nil) == (f == pi) {
			t.Error("wrong down tensor bound")
		}
	}
}

// TestSparseFamiliesBind writes each family in both layouts and every
// weight type a family allows, and binds it with models/arch.
func TestSparseFamiliesBind(t *testing.T) {
	cases := []struct {
		c       synth.Config
		name    string
		act     arch.Act
		drelu   bool
		posEmbd bool
	}{
		{synth.Config{Act: "relu"}, "llama", arch.ReLU, false, false},
		{synth.Config{Act: "drelu"}, "llama", arch.ReLU, true, false},
		{synth.Config{Arch: "bamboo"}, "bamboo", arch.ReLU, true, false},
		{synth.Config{Arch: "opt", Context: 100}, "opt", arch.ReLU, false, true},
	}
	for _, tc := range cases {
		for _, pi := range []bool{false, true} {
			for _, typ := range []dtype.Type{dtype.F32, dtype.Q5_1, dtype.Q6_K} {
				c := tc.c
				c.Dim, c.Layers, c.Vocab, c.Type, c.PowerInfer = 256, 2, 300, typ, pi
				f, sc := open(t, c)
				cfg, err := arch.ConfigFromGGUF(f)
				if err != nil {
					t.Fatal(err)
				}
				w, err := arch.Bind(f, &cfg)
				if err != nil {
					t.Fatalf("%+v: %v", c, err)
				}
				fam := cfg.Family
				if fam.Name != tc.name || cfg.Act != tc.act || cfg.DReLU != tc.drelu || fam.PosEmbd != tc.posEmbd || cfg.PowerInfer != pi {
					t.Errorf("%+v: family %+v", c, fam)
				}
				if cfg.Dim != sc.Dim || cfg.FFN != sc.FFN || cfg.Layers != sc.Layers || cfg.Heads != sc.Heads || cfg.KVHeads != sc.KVHeads || cfg.Vocab != 300 {
					t.Errorf("%+v: config %+v", c, cfg)
				}
				if tc.posEmbd && (cfg.Context != 100 || w.PosEmbd.Rows() != 102 || w.Layers[0].DownB == nil || w.OutputNormB == nil) {
					t.Errorf("opt: context %d, position rows %d", cfg.Context, w.PosEmbd.Rows())
				}
				if r := w.Layers[1].PredictorRank(); pi != (r == synth.PredictorRank(sc)) || !pi && r != 0 {
					t.Errorf("%+v: predictor rank %d", c, r)
				}
				if n, _ := f.Uint(synth.KeyParams); n != uint64(synth.Count(sc)) || sc.Params != synth.Count(sc) {
					t.Errorf("params %d, count %d", n, synth.Count(sc))
				}
				if len(f.Tensors) != len(synth.Tensors(sc)) {
					t.Errorf("%d tensors, want %d", len(f.Tensors), len(synth.Tensors(sc)))
				}
			}
		}
	}
}

func TestSparseShapeErrors(t *testing.T) {
	for _, tc := range []struct {
		c    synth.Config
		want string
	}{
		{synth.Config{Act: "gelu", Dim: 256, Layers: 1}, `llama cannot have activation "gelu"`},
		{synth.Config{Arch: "opt", Act: "drelu", Dim: 256, Layers: 1}, "opt cannot have"},
		{synth.Config{Arch: "bamboo", Act: "relu", Dim: 256, Layers: 1}, "bamboo cannot have"},
		{synth.Config{PowerInfer: true, Dim: 256, Layers: 1}, "need a ReLU or dReLU model"},
		{synth.Config{HotFraction: 0.1, Dim: 256, Layers: 1}, "need a ReLU or dReLU model"},
		{synth.Config{Act: "relu", HotFraction: 0.7, Dim: 256, Layers: 1}, "HotFraction 0.7"},
		{synth.Config{Act: "relu", ColdRate: 0.06, Dim: 256, Layers: 1}, "ColdRate 0.06"},
		{synth.Config{Act: "relu", ColdRate: -1, Dim: 256, Layers: 1}, "ColdRate -1"},
		{synth.Config{Arch: "opt", Dim: 256, Layers: 1, Heads: 4, KVHeads: 2}, "no grouped-query attention"},
	} {
		if _, err := synth.Shape(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Shape(%+v) err = %v, want %q", tc.c, err, tc.want)
		}
	}
	// Shape is idempotent for the new fields too
	for _, c := range sparseConfigs() {
		a, err := synth.Shape(c)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := synth.Shape(a); err != nil || a != b {
			t.Errorf("Shape not idempotent: %+v → %+v (%v)", a, b, err)
		}
	}
	// and a parameter target shapes every family
	for _, c := range []synth.Config{{Arch: "opt", Params: 125e6}, {Arch: "bamboo", Params: 30e6, PowerInfer: true}} {
		s, err := synth.Shape(c)
		if err != nil {
			t.Fatal(err)
		}
		if r := float64(s.Params) / float64(c.Params); r < 0.85 || r > 1.15 {
			t.Errorf("%s target %d: %d parameters (%+v)", c.Arch, c.Params, s.Params, s)
		}
	}
}

func TestConfigFromGGUF(t *testing.T) {
	for _, c := range append(sparseConfigs(), synth.Config{Dim: 256, Layers: 1, Type: dtype.Q4_K, Seed: 4}) {
		f, sc := open(t, c)
		got, err := synth.ConfigFromGGUF(f)
		if err != nil {
			t.Fatal(err)
		}
		if got != sc {
			t.Errorf("ConfigFromGGUF = %+v, want %+v", got, sc)
		}
	}
}
