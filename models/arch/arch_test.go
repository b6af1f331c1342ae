package arch_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

func sharedModels(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared")
	if d := os.Getenv("STOKE_SHARED"); d != "" {
		dir = d
	}
	dir = filepath.Join(dir, "models")
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Skipf("reference models not found at %s (set STOKE_SHARED to the shared directory): %v", dir, err)
	}
	return dir
}

func TestRealFiles(t *testing.T) {
	dir := sharedModels(t)
	cases := []struct {
		file                                   string
		family                                 string
		dim, layers, heads, kv, hd, ffn, vocab int
		eps                                    float32
		base                                   float64
		tied                                   bool
	}{
		{"stories260K.gguf", "llama", 64, 5, 8, 4, 8, 172, 512, 1e-5, 10000, false},
		{"llama-2-tiny-random.gguf", "llama", 8, 1, 2, 2, 4, 32, 32000, 1e-5, 10000, false},
		{"qwen3-tiny-random.gguf", "qwen3", 32, 2, 4, 2, 16, 96, 151936, 1e-6, 1e6, true},
	}
	for _, c := range cases {
		f, err := gguf.Open(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := arch.ConfigFromGGUF(f)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		w, err := arch.Bind(f, &cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		got := []int{cfg.Dim, cfg.Layers, cfg.Heads, cfg.KVHeads, cfg.HeadDim, cfg.FFN, cfg.Vocab}
		want := []int{c.dim, c.layers, c.heads, c.kv, c.hd, c.ffn, c.vocab}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: dims %v, want %v", c.file, got, want)
				break
			}
		}
		if cfg.Family.Name != c.family || cfg.NormEps != c.eps || cfg.RoPEBase != c.base {
			t.Errorf("%s: family %s eps %g base %g", c.file, cfg.Family.Name, cfg.NormEps, cfg.RoPEBase)
		}
		if tied := w.Output == w.TokenEmbd || w.Output.Name == "token_embd.weight"; tied != c.tied {
			t.Errorf("%s: tied embeddings %v, want %v", c.file, tied, c.tied)
		}
		if c.family == "qwen3" && (w.Layers[1].QNorm == nil || cfg.RoPE != arch.RoPENeoX) {
			t.Errorf("qwen3: q norm or NeoX RoPE missing")
		}
		f.Close()
	}
}

// tiny builds a one-layer llama GGUF in memory, letting a test break it.
func tiny(t *testing.T, edit func(kv map[string]gguf.Value, shapes map[string][]uint64)) *gguf.File {
	t.Helper()
	const dim, ffn, vocab = 32, 64, 40
	kv := map[string]gguf.Value{
		"general.architecture":               gguf.String("llama"),
		"llama.embedding_length":             gguf.Uint32(dim),
		"llama.block_count":                  gguf.Uint32(1),
		"llama.feed_forward_length":          gguf.Uint32(ffn),
		"llama.attention.head_count":         gguf.Uint32(4),
		"llama.attention.head_count_kv":      gguf.Uint32(2),
		"llama.context_length":               gguf.Uint32(128),
		"llama.attention.layer_norm_rms_eps": gguf.Float32(1e-5),
	}
	shapes := map[string][]uint64{
		"token_embd.weight": {dim, vocab}, "output_norm.weight": {dim},
		"blk.0.attn_norm.weight": {dim}, "blk.0.attn_q.weight": {dim, dim}, "blk.0.attn_k.weight": {dim, 16},
		"blk.0.attn_v.weight": {dim, 16}, "blk.0.attn_output.weight": {dim, dim}, "blk.0.ffn_norm.weight": {dim},
		"blk.0.ffn_gate.weight": {dim, ffn}, "blk.0.ffn_up.weight": {dim, ffn}, "blk.0.ffn_down.weight": {ffn, dim},
	}
	edit(kv, shapes)
	return build(t, gguf.MagicGGUF, kv, shapes)
}

// tinyOPT builds a one-layer OPT GGUF as PowerInfer's converter names it
// (PowerInfer layout, with a predictor), letting a test break it.
func tinyOPT(t *testing.T, edit func(kv map[string]gguf.Value, shapes map[string][]uint64)) *gguf.File {
	t.Helper()
	const dim, ffn, vocab = 32, 128, 40
	kv := map[string]gguf.Value{
		"general.architecture":        gguf.String("opt"),
		"opt.context_length":          gguf.Uint32(2050),
		"opt.embedding_length":        gguf.Uint32(dim),
		"opt.block_count":             gguf.Uint32(1),
		"opt.feed_forward_length":     gguf.Uint32(ffn),
		"opt.attention.head_count":    gguf.Uint32(4),
		"powerinfer.sparse_threshold": gguf.Float32(0),
	}
	shapes := map[string][]uint64{
		"token_embd.weight": {dim, vocab}, "position_embd.weight": {dim, 34},
		"output_norm.weight": {dim}, "output_norm.bias": {dim}, "output.weight": {dim, vocab},
		"blk.0.fc1.weight": {dim, 8}, "blk.0.fc2.weight": {8, ffn},
	}
	for _, n := range []string{"attn_norm", "ffn_norm"} {
		shapes["blk.0."+n+".weight"], shapes["blk.0."+n+".bias"] = []uint64{dim}, []uint64{dim}
	}
	for n, s := range map[string][]uint64{"attn_q": {dim, dim}, "attn_k": {dim, dim}, "attn_v": {dim, dim},
		"attn_output": {dim, dim}, "ffn_up": {dim, ffn}, "ffn_down_t": {dim, ffn}} {
		shapes["blk.0."+n+".weight"], shapes["blk.0."+n+".bias"] = s, []uint64{s[1]}
	}
	shapes["blk.0.ffn_down_t.bias"] = []uint64{dim}
	edit(kv, shapes)
	return build(t, gguf.MagicPowerInfer, kv, shapes)
}

// build writes a GGUF of F32 zeros in memory and parses it.
func build(t *testing.T, magic string, kv map[string]gguf.Value, shapes map[string][]uint64) *gguf.File {
	t.Helper()
	w := gguf.NewWriter(3)
	if err := w.SetMagic(magic); err != nil {
		t.Fatal(err)
	}
	for _, k := range sortedKeys(kv) {
		w.AddKV(k, kv[k])
	}
	for _, name := range sortedKeys(shapes) {
		n := uint64(4)
		for _, d := range shapes[name] {
			n *= d
		}
		if err := w.AddTensor(name, dtype.F32, shapes[name], make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	return parsed(t, w)
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func TestBadModels(t *testing.T) {
	cases := []struct {
		name string
		edit func(kv map[string]gguf.Value, shapes map[string][]uint64)
		want string
	}{
		{"ok", func(map[string]gguf.Value, map[string][]uint64) {}, ""},
		{"unknown arch", func(kv map[string]gguf.Value, _ map[string][]uint64) {
			kv["general.architecture"] = gguf.String("mamba")
		}, `unsupported architecture "mamba"`},
		{"missing key", func(kv map[string]gguf.Value, _ map[string][]uint64) { delete(kv, "llama.block_count") }, "llama.block_count is missing"},
		{"absurd dim", func(kv map[string]gguf.Value, _ map[string][]uint64) {
			kv["llama.embedding_length"] = gguf.Uint64(1 << 40)
		}, "out of range"},
		{"heads not multiple", func(kv map[string]gguf.Value, _ map[string][]uint64) {
			kv["llama.attention.head_count_kv"] = gguf.Uint32(3)
		}, "not a multiple"},
		{"missing tensor", func(_ map[string]gguf.Value, s map[string][]uint64) { delete(s, "blk.0.ffn_up.weight") }, "blk.0.ffn_up.weight is missing"},
		{"no down at all", func(_ map[string]gguf.Value, s map[string][]uint64) { delete(s, "blk.0.ffn_down.weight") },
			"blk.0.ffn_down.weight and blk.0.ffn_down_t.weight are both missing"},
		{"transposed down only", func(_ map[string]gguf.Value, s map[string][]uint64) {
			delete(s, "blk.0.ffn_down.weight")
			s["blk.0.ffn_down_t.weight"] = []uint64{32, 64}
		}, ""},
		{"transposed down not transposed", func(_ map[string]gguf.Value, s map[string][]uint64) {
			delete(s, "blk.0.ffn_down.weight")
			s["blk.0.ffn_down_t.weight"] = []uint64{64, 32}
		}, "blk.0.ffn_down_t.weight has shape [64 32], want [32 64]"},
		{"predictor", func(_ map[string]gguf.Value, s map[string][]uint64) {
			s["blk.0.fc1.weight"], s["blk.0.fc2.weight"] = []uint64{32, 24}, []uint64{24, 64}
		}, ""},
		{"predictor half", func(_ map[string]gguf.Value, s map[string][]uint64) { s["blk.0.fc2.weight"] = []uint64{24, 64} },
			"blk.0.fc1.weight and blk.0.fc2.weight come as a pair"},
		{"predictor ranks differ", func(_ map[string]gguf.Value, s map[string][]uint64) {
			s["blk.0.fc1.weight"], s["blk.0.fc2.weight"] = []uint64{32, 24}, []uint64{16, 64}
		}, "predictor rank mismatch: blk.0.fc1.weight has shape [32 24] and blk.0.fc2.weight [16 64]"},
		{"predictor not over ffn", func(_ map[string]gguf.Value, s map[string][]uint64) {
			s["blk.0.fc1.weight"], s["blk.0.fc2.weight"] = []uint64{32, 24}, []uint64{24, 32}
		}, "blk.0.fc2.weight has shape [24 32], want [* 64]"},
		{"predictor of rank 0", func(_ map[string]gguf.Value, s map[string][]uint64) {
			s["blk.0.fc1.weight"], s["blk.0.fc2.weight"] = []uint64{32, 0}, []uint64{0, 64}
		}, "blk.0.fc1.weight has shape [32 0], want [32 *]"},
		{"unknown activation", func(kv map[string]gguf.Value, _ map[string][]uint64) {
			kv[arch.KeyActivation] = gguf.String("swish")
		}, `stoke.ffn.activation = "swish" is not one of`},
		{"activation not a string", func(kv map[string]gguf.Value, _ map[string][]uint64) {
			kv[arch.KeyActivation] = gguf.Uint32(2)
		}, "stoke.ffn.activation is uint32, want a string"},
		{"threshold not a number", func(kv map[string]gguf.Value, _ map[string][]uint64) {
			kv[arch.KeySparseThreshold] = gguf.String("0")
		}, "powerinfer.sparse_threshold is string, want a finite number"},
		{"wrong shape", func(_ map[string]gguf.Value, s map[string][]uint64) { s["blk.0.attn_k.weight"] = []uint64{32, 32} }, "blk.0.attn_k.weight has shape [32 32], want [32 16]"},
		{"gate missing", func(_ map[string]gguf.Value, s map[string][]uint64) { delete(s, "blk.0.ffn_gate.weight") }, "ffn_gate.weight is missing"},
		{"bad rope scaling", func(kv map[string]gguf.Value, _ map[string][]uint64) {
			kv["llama.rope.scaling.type"] = gguf.String("yarn")
			kv["llama.rope.scaling.factor"] = gguf.Float32(4)
		}, `rope scaling type "yarn"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := tiny(t, c.edit)
			cfg, err := arch.ConfigFromGGUF(f)
			if err == nil {
				_, err = arch.Bind(f, &cfg)
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestBadOPT(t *testing.T) {
	cases := []struct {
		name string
		edit func(kv map[string]gguf.Value, shapes map[string][]uint64)
		want string
	}{
		{"ok", func(map[string]gguf.Value, map[string][]uint64) {}, ""},
		{"no positions", func(_ map[string]gguf.Value, s map[string][]uint64) { delete(s, "position_embd.weight") },
			"opt needs learned positions but position_embd.weight is missing"},
		{"positions all padding", func(_ map[string]gguf.Value, s map[string][]uint64) { s["position_embd.weight"] = []uint64{32, 2} },
			"position_embd.weight has 2 rows, want more than the position offset 2"},
		{"positions too narrow", func(_ map[string]gguf.Value, s map[string][]uint64) { s["position_embd.weight"] = []uint64{16, 34} },
			"position_embd.weight has shape [16 34], want [32 *]"},
		{"missing bias", func(_ map[string]gguf.Value, s map[string][]uint64) { delete(s, "blk.0.attn_q.bias") },
			"opt has biases everywhere but blk.0.attn_q.bias is missing"},
		{"missing down bias", func(_ map[string]gguf.Value, s map[string][]uint64) { delete(s, "blk.0.ffn_down_t.bias") },
			"blk.0.ffn_down.bias is missing"},
		{"missing norm bias", func(_ map[string]gguf.Value, s map[string][]uint64) { delete(s, "output_norm.bias") },
			"output_norm.bias is missing"},
		{"dReLU on OPT", func(kv map[string]gguf.Value, _ map[string][]uint64) { kv[arch.KeyActivation] = gguf.String("drelu") },
			"stoke.ffn.activation = drelu needs a gated FFN, and opt's is not"},
		{"bad eps", func(kv map[string]gguf.Value, _ map[string][]uint64) {
			kv["opt.attention.layer_norm_epsilon"] = gguf.Float32(2)
		},
			"opt.attention.layer_norm_epsilon = 2 is out of range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := tinyOPT(t, c.edit)
			cfg, err := arch.ConfigFromGGUF(f)
			if err == nil {
				_, err = arch.Bind(f, &cfg)
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
}

// TestOPT checks what a PowerInfer OPT file binds to.
func TestOPT(t *testing.T) {
	f := tinyOPT(t, func(map[string]gguf.Value, map[string][]uint64) {})
	cfg, err := arch.ConfigFromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	w, err := arch.Bind(f, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	fam := cfg.Family
	if fam.Norm != arch.LayerNorm || cfg.Act != arch.ReLU || cfg.Gated || !fam.NoRoPE || !fam.PosEmbd || fam.PosOffset != 2 || !fam.Biases {
		t.Errorf("family %+v", fam)
	}
	if cfg.KVHeads != 4 || cfg.HeadDim != 8 || cfg.NormEps != 1e-5 || !cfg.PowerInfer || cfg.SparseThreshold != 0 {
		t.Errorf("config %+v", cfg)
	}
	if cfg.Context != 32 { // 34 position rows, two of them padding (context_length 2050 is the converter's)
		t.Errorf("context %d, want 32", cfg.Context)
	}
	l := &w.Layers[0]
	if l.Down != nil || l.DownT == nil || l.DownB == nil || l.DownB.Name != "blk.0.ffn_down_t.bias" || l.PredictorRank() != 8 {
		t.Errorf("layer: down %v, down_t %v, down bias %v, rank %d", l.Down, l.DownT, l.DownB, l.PredictorRank())
	}
	if w.PosEmbd.Rows() != 34 || w.Output.Name != "output.weight" || w.OutputNormB == nil {
		t.Error("positions or output not bound")
	}
}

// TestActivation checks how a file says which activation its FFN has.
func TestActivation(t *testing.T) {
	cases := []struct {
		name       string
		arch       string
		powerInfer bool
		key        string
		act        arch.Act
		drelu      bool
	}{
		{"llama", "llama", false, "", arch.SiLU, false},
		{"PowerInfer llama (ReluLLaMA)", "llama", true, "", arch.ReLU, false},
		{"Stoke ReLU llama", "llama", false, "relu", arch.ReLU, false},
		{"Stoke dReLU llama", "llama", false, "drelu", arch.ReLU, true},
		{"PowerInfer SwiGLU with Stoke predictors", "llama", true, "silu", arch.SiLU, false},
		{"gelu", "llama", false, "gelu", arch.GELU, false},
		{"bamboo", "bamboo", true, "", arch.ReLU, true},
		{"bamboo made plain ReLU", "bamboo", false, "relu", arch.ReLU, false},
		{"qwen3 ReLU", "qwen3", false, "relu", arch.ReLU, false},
	}
	for _, c := range cases {
		kv := map[string]gguf.Value{
			"general.architecture":           gguf.String(c.arch),
			c.arch + ".embedding_length":     gguf.Uint32(32),
			c.arch + ".block_count":          gguf.Uint32(1),
			c.arch + ".feed_forward_length":  gguf.Uint32(64),
			c.arch + ".attention.head_count": gguf.Uint32(4),
			arch.KeySparseThreshold:          gguf.Float32(0.25),
		}
		if c.key != "" {
			kv[arch.KeyActivation] = gguf.String(c.key)
		}
		magic := gguf.MagicGGUF
		if c.powerInfer {
			magic = gguf.MagicPowerInfer
		}
		cfg, err := arch.ConfigFromGGUF(build(t, magic, kv, map[string][]uint64{"token_embd.weight": {32, 40}}))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cfg.Act != c.act || cfg.DReLU != c.drelu || !cfg.Gated || cfg.PowerInfer != c.powerInfer || cfg.SparseThreshold != 0.25 {
			t.Errorf("%s: act %s dReLU %v PowerInfer %v threshold %g", c.name, cfg.Act, cfg.DReLU, cfg.PowerInfer, cfg.SparseThreshold)
		}
	}
}
