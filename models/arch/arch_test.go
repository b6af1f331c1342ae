package arch_test

import (
	"bytes"
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
	w := gguf.NewWriter(3)
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
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
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
		{"missing tensor", func(_ map[string]gguf.Value, s map[string][]uint64) { delete(s, "blk.0.ffn_down.weight") }, "blk.0.ffn_down.weight is missing"},
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
