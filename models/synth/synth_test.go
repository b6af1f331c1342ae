package synth_test

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/models/synth"
)

func TestShape1B(t *testing.T) {
	c, err := synth.Shape(synth.Config{Params: 1e9})
	if err != nil {
		t.Fatal(err)
	}
	if c.Params < 0.99e9 || c.Params > 1.21e9 {
		t.Errorf("1B model has %d parameters, want 1.1e9 ± 10%%", c.Params)
	}
	if c.Dim != 2048 || c.Heads != 32 || c.KVHeads != 4 || c.FFN != 5632 || c.Vocab != 32000 || c.HeadDim() != 64 {
		t.Errorf("1B shape %+v, want TinyLlama's (dim 2048, 32 heads, 4 KV heads, FFN 5632, vocab 32000)", c)
	}
	if c.Layers < 19 || c.Layers > 23 {
		t.Errorf("1B model has %d layers", c.Layers)
	}
	tiny, err := synth.Shape(synth.Config{Dim: 2048, Layers: 22})
	if err != nil {
		t.Fatal(err)
	}
	if tiny.Params != 1_100_048_384 || tiny.KVHeads != 4 || tiny.FFN != 5632 {
		t.Errorf("TinyLlama shape: %+v, want 1,100,048,384 parameters", tiny)
	}
}

func TestShapeTargets(t *testing.T) {
	for _, p := range []int64{2e6, 1e7, 3e7, 1e8, 3e8, 1e9, 3e9, 7e9, 13e9, 70e9} {
		c, err := synth.Shape(synth.Config{Params: p, Type: dtype.Q4_K})
		if err != nil {
			t.Fatal(err)
		}
		if r := float64(c.Params) / float64(p); r < 0.9 || r > 1.1 {
			t.Errorf("target %g: got %d parameters (%+v)", float64(p), c.Params, c)
		}
		if c.Dim%256 != 0 || c.FFN%256 != 0 || c.Dim%c.Heads != 0 || c.Heads%c.KVHeads != 0 {
			t.Errorf("target %g: bad widths %+v", float64(p), c)
		}
		if c.Params != synth.Count(c) {
			t.Errorf("Params %d != Count %d", c.Params, synth.Count(c))
		}
		again, err := synth.Shape(c)
		if err != nil || again != c {
			t.Errorf("Shape is not idempotent: %+v → %+v, %v", c, again, err)
		}
	}
}

func TestShapeErrors(t *testing.T) {
	for _, tc := range []struct {
		c    synth.Config
		want string
	}{
		{synth.Config{}, "set Params or Dim"},
		{synth.Config{Dim: 256}, "set Params or Layers"},
		{synth.Config{Arch: "gpt2", Params: 1e6}, "unsupported architecture"},
		{synth.Config{Params: 1e6, Type: dtype.Q8_K}, "cannot write Q8_K"},
		{synth.Config{Params: 1e6, Type: dtype.IQ2_XS}, "cannot write IQ2_XS"},
		{synth.Config{Dim: 96, Layers: 1, Type: dtype.Q4_K}, "block size 256"},
		{synth.Config{Dim: 256, Layers: 1, Heads: 3}, "does not split into 3 heads"},
		{synth.Config{Dim: 256, Layers: 1, Heads: 4, KVHeads: 3}, "do not group into 3 KV heads"},
		{synth.Config{Dim: 256, Layers: 1, Vocab: 100}, "below the minimum"},
		{synth.Config{Params: -1}, "negative"},
		{synth.Config{Params: 1e6, Type: dtype.Q4_0, Mix: synth.MixQ4KM}, "mix"},
		{synth.Config{Params: 1e6, Type: dtype.Q4_K, Mix: synth.MixQ5KM}, "mix"},
		{synth.Config{Params: 1e6, Type: dtype.Q4_K, Mix: "Q3_K_M"}, "mix"},
	} {
		if _, err := synth.Shape(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Shape(%+v) err = %v, want %q", tc.c, err, tc.want)
		}
	}
}

func TestVocab(t *testing.T) {
	for _, n := range []int{synth.MinVocab, 512, 4096, 32000} {
		toks, scores, types, err := synth.Vocab(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != n || len(scores) != n || len(types) != n {
			t.Fatalf("n=%d: %d tokens, %d scores, %d types", n, len(toks), len(scores), len(types))
		}
		if toks[0] != "<unk>" || toks[1] != "<s>" || toks[2] != "</s>" || types[0] != 2 || types[1] != 3 || types[2] != 3 {
			t.Fatalf("specials: %q %v", toks[:3], types[:3])
		}
		ids := make(map[string]int, n)
		for id, s := range toks {
			if j, dup := ids[s]; dup {
				t.Fatalf("n=%d: %q is both %d and %d", n, s, j, id)
			}
			ids[s] = id
		}
		for b := range 256 {
			if id := 3 + b; toks[id] != fmt.Sprintf("<0x%02X>", b) || types[id] != 6 || scores[id] != 0 {
				t.Fatalf("byte token %d: %q type %d", id, toks[id], types[id])
			}
		}
		for id := 259; id < n; id++ {
			if types[id] != 1 || scores[id] != -float32(id) {
				t.Fatalf("token %d %q: type %d score %g", id, toks[id], types[id], scores[id])
			}
			// every multi-character piece is reachable by merging its
			// one-shorter prefix with its last character
			r := []rune(toks[id])
			if len(r) > 1 {
				p, ok := ids[string(r[:len(r)-1])]
				if !ok || p >= id {
					t.Fatalf("token %d %q: prefix missing or later (%d)", id, toks[id], p)
				}
				if _, ok := ids[string(r[len(r)-1:])]; !ok {
					t.Fatalf("token %d %q: last character missing", id, toks[id])
				}
			}
		}
	}
	toks, _, _, _ := synth.Vocab(32000)
	have := map[string]bool{}
	for _, s := range toks {
		have[s] = true
	}
	for _, w := range []string{"▁the", "▁once", "▁Once", "▁upon", "▁and", "a", "Z", "~", "▁", "▁x", "th", "▁zq", "abc"} {
		if !have[w] {
			t.Errorf("32000-token vocabulary lacks %q", w)
		}
	}
	if _, _, _, err := synth.Vocab(100); err == nil {
		t.Error("Vocab(100) succeeded")
	}
}

func TestTensors(t *testing.T) {
	c, err := synth.Shape(synth.Config{Dim: 512, Layers: 3, Heads: 8, KVHeads: 2, FFN: 1536, Vocab: 1000, Type: dtype.Q8_0})
	if err != nil {
		t.Fatal(err)
	}
	ts := synth.Tensors(c)
	if len(ts) != 3+9*3 {
		t.Fatalf("%d tensors", len(ts))
	}
	want := map[string][]uint64{
		"token_embd.weight":        {512, 1000},
		"output_norm.weight":       {512},
		"output.weight":            {512, 1000},
		"blk.2.attn_norm.weight":   {512},
		"blk.2.attn_q.weight":      {512, 512},
		"blk.2.attn_k.weight":      {512, 128},
		"blk.2.attn_v.weight":      {512, 128},
		"blk.2.attn_output.weight": {512, 512},
		"blk.2.ffn_norm.weight":    {512},
		"blk.2.ffn_gate.weight":    {512, 1536},
		"blk.2.ffn_up.weight":      {512, 1536},
		"blk.2.ffn_down.weight":    {1536, 512},
	}
	var params int64
	for _, tt := range ts {
		n := int64(1)
		for _, ne := range tt.Shape {
			n *= int64(ne)
		}
		params += n
		if s, ok := want[tt.Name]; ok && fmt.Sprint(s) != fmt.Sprint(tt.Shape) {
			t.Errorf("%s shape %v, want %v", tt.Name, tt.Shape, s)
		}
		wantType := dtype.Q8_0
		if len(tt.Shape) == 1 {
			wantType = dtype.F32
		}
		if tt.Type != wantType {
			t.Errorf("%s is %s, want %s", tt.Name, tt.Type, wantType)
		}
	}
	if params != c.Params {
		t.Errorf("tensors hold %d parameters, config says %d", params, c.Params)
	}
}

// small is the config the write tests use: 2M parameters, two blocks.
func small(typ dtype.Type, seed uint64) synth.Config {
	return synth.Config{Params: 2e6, Type: typ, Seed: seed}
}

func writeModel(t *testing.T, c synth.Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("synth-%s-%d.gguf", c.Type, c.Seed))
	if err := synth.Write(path, c); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWriteEveryType(t *testing.T) {
	for _, typ := range synth.Types() {
		t.Run(typ.String(), func(t *testing.T) {
			c, err := synth.Shape(small(typ, 7))
			if err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(writeModel(t, c))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			checkModel(t, f, c)
			// the stored weights decode to the intended scale
			q, _ := f.Tensor("blk.0.attn_q.weight")
			x := make([]float32, q.Elements())
			if err := dtype.Dequantize(q.Type, f.TensorData(q), x); err != nil {
				t.Fatal(err)
			}
			var sq float64
			for _, v := range x {
				sq += float64(v) * float64(v)
			}
			want := 1 / math.Sqrt(float64(c.Dim))
			if rms := math.Sqrt(sq / float64(len(x))); math.Abs(rms/want-1) > 0.1 {
				t.Errorf("attn_q rms %g, want about %g", rms, want)
			}
		})
	}
}

// TestWriteQ4KM: the Q4_K_M mix keeps output.weight, and attn_v and
// ffn_down in llama.cpp's use_more_bits layers (of 16: 0, 1, 4, 7, 10,
// 13, 14, 15), in Q6_K, everything else in Q4_K, with llama.cpp's file
// type 15; Q5_K_M the same with Q5_K, file type 17.
func TestWriteQ4KM(t *testing.T) {
	for _, mix := range []struct {
		name string
		base dtype.Type
		ft   uint64
	}{{synth.MixQ4KM, dtype.Q4_K, 15}, {synth.MixQ5KM, dtype.Q5_K, 17}} {
		c, err := synth.Shape(synth.Config{Dim: 256, Layers: 16, Type: mix.base, Mix: mix.name, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(writeModel(t, c))
		if err != nil {
			t.Fatal(err)
		}
		if ft, _ := f.Uint("general.file_type"); ft != mix.ft {
			t.Errorf("%s: file_type %d, want %d", mix.name, ft, mix.ft)
		}
		more := map[int]bool{0: true, 1: true, 4: true, 7: true, 10: true, 13: true, 14: true, 15: true}
		want := map[string]dtype.Type{"output.weight": dtype.Q6_K, "token_embd.weight": mix.base}
		for l := range 16 {
			v := mix.base
			if more[l] {
				v = dtype.Q6_K
			}
			want[fmt.Sprintf("blk.%d.attn_v.weight", l)] = v
			want[fmt.Sprintf("blk.%d.ffn_down.weight", l)] = v
			for _, n := range []string{"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"} {
				want[fmt.Sprintf("blk.%d.%s.weight", l, n)] = mix.base
			}
		}
		for name, typ := range want {
			ti, ok := f.Tensor(name)
			if !ok {
				t.Fatalf("%s: no %s", mix.name, name)
			}
			if ti.Type != typ {
				t.Errorf("%s: %s is %s, want %s", mix.name, name, ti.Type, typ)
			}
		}
		f.Close()
	}
}

// checkModel checks metadata and tensor table against c.
func checkModel(t *testing.T, f *gguf.File, c synth.Config) {
	t.Helper()
	if s, _ := f.String("general.architecture"); s != "llama" {
		t.Errorf("architecture %q", s)
	}
	for key, want := range map[string]int{
		"llama.embedding_length":          c.Dim,
		"llama.block_count":               c.Layers,
		"llama.feed_forward_length":       c.FFN,
		"llama.attention.head_count":      c.Heads,
		"llama.attention.head_count_kv":   c.KVHeads,
		"llama.rope.dimension_count":      c.Dim / c.Heads,
		"llama.context_length":            c.Context,
		"tokenizer.ggml.bos_token_id":     1,
		"tokenizer.ggml.eos_token_id":     2,
		"tokenizer.ggml.unknown_token_id": 0,
	} {
		if got, ok := f.Uint(key); !ok || got != uint64(want) {
			t.Errorf("%s = %d, %v; want %d", key, got, ok, want)
		}
	}
	if x, _ := f.Float("llama.rope.freq_base"); x != 10000 {
		t.Errorf("freq_base %g", x)
	}
	if x, _ := f.Float("llama.attention.layer_norm_rms_epsilon"); float32(x) != 1e-5 {
		t.Errorf("eps %g", x)
	}
	if s, _ := f.String("tokenizer.ggml.model"); s != "llama" {
		t.Errorf("tokenizer model %q", s)
	}
	if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); !ok || !b {
		t.Error("add_bos_token not true")
	}
	if n, _ := f.Uint(synth.KeySeed); n != c.Seed {
		t.Errorf("seed %d", n)
	}
	if n, _ := f.Uint(synth.KeyParams); n != uint64(c.Params) {
		t.Errorf("params %d, want %d", n, c.Params)
	}
	toks, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil || len(toks) != c.Vocab {
		t.Errorf("tokens: %d, %v", len(toks), err)
	}
	want := synth.Tensors(c)
	if len(f.Tensors) != len(want) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors), len(want))
	}
	for i, w := range want {
		got := f.Tensors[i]
		if got.Name != w.Name || got.Type != w.Type || fmt.Sprint(got.Shape) != fmt.Sprint(w.Shape) {
			t.Errorf("tensor %d: %s %s %v, want %s %s %v", i, got.Name, got.Type, got.Shape, w.Name, w.Type, w.Shape)
		}
	}
}

func sha(t *testing.T, path string) [32]byte {
	t.Helper()
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fd); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func TestDeterminism(t *testing.T) {
	for _, typ := range []dtype.Type{dtype.F16, dtype.Q4_K} {
		a := sha(t, writeModel(t, small(typ, 1)))
		old := runtime.GOMAXPROCS(1) // chunking must not depend on the worker count
		b := sha(t, writeModel(t, small(typ, 1)))
		runtime.GOMAXPROCS(old)
		c := sha(t, writeModel(t, small(typ, 2)))
		if a != b {
			t.Errorf("%s: same seed, different bytes", typ)
		}
		if a == c {
			t.Errorf("%s: different seeds, same bytes", typ)
		}
	}
}

// TestWeightScale checks the F32 weights' statistics: matrices normal with
// std 1/sqrt(ne0), embeddings std 1, norms exactly 1.
func TestWeightScale(t *testing.T) {
	c, _ := synth.Shape(small(dtype.F32, 3))
	f, err := gguf.Open(writeModel(t, c))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		name string
		std  float64
	}{
		{"token_embd.weight", 1},
		{"blk.0.attn_q.weight", 1 / math.Sqrt(float64(c.Dim))},
		{"blk.1.ffn_down.weight", 1 / math.Sqrt(float64(c.FFN))},
		{"output.weight", 1 / math.Sqrt(float64(c.Dim))},
		{"output_norm.weight", 0},
	} {
		ti, _ := f.Tensor(tc.name)
		data := f.TensorData(ti)
		var sum, sq float64
		n := len(data) / 4
		for i := range n {
			x := float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
			sum += x
			sq += x * x
		}
		mean := sum / float64(n)
		std := math.Sqrt(sq/float64(n) - mean*mean)
		if tc.std == 0 {
			if mean != 1 || std != 0 {
				t.Errorf("%s: mean %g std %g, want all ones", tc.name, mean, std)
			}
			continue
		}
		if math.Abs(std/tc.std-1) > 0.05 || math.Abs(mean) > 5*tc.std/math.Sqrt(float64(n)) {
			t.Errorf("%s: mean %g std %g, want 0 and %g", tc.name, mean, std, tc.std)
		}
	}
	// distinct tensors must not share a random stream
	q, _ := f.Tensor("blk.0.attn_q.weight")
	o, _ := f.Tensor("blk.0.attn_output.weight")
	if string(f.TensorData(q)) == string(f.TensorData(o)) {
		t.Error("attn_q and attn_output hold the same numbers")
	}
}
