package gguf_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// sharedModels finds the shared model folder: $STOKE_SHARED/models, or
// ../shared/models beside the checkout.
func sharedModels(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "models")
	if s := os.Getenv("STOKE_SHARED"); s != "" {
		dir = filepath.Join(s, "models")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("../shared/models not found: %v", err)
	}
	return dir
}

// TestRealFiles parses every shared GGUF, checks it survives a write and
// comes back byte for byte: the writer lays files out as ggml does, and
// Parse keeps the KV order, so no re-encoding difference is expected.
func TestRealFiles(t *testing.T) {
	dir := sharedModels(t)
	paths, _ := filepath.Glob(filepath.Join(dir, "*.gguf"))
	more, _ := filepath.Glob(filepath.Join(dir, "derived", "*.gguf"))
	paths = append(paths, more...)
	if len(paths) == 0 {
		t.Skipf("no .gguf files in %s", dir)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			f, err := gguf.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			w, err := gguf.NewWriterFrom(f)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := w.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			orig, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(orig, buf.Bytes()) {
				t.Errorf("rewrite differs: %d bytes vs %d", buf.Len(), len(orig))
			}
		})
	}
}

func TestStories260K(t *testing.T) {
	f, err := gguf.Open(filepath.Join(sharedModels(t), "stories260K.gguf"))
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	if f.Version != 3 || len(f.Tensors) != 48 || len(f.KVs) != 19 || f.DataOffset != 14176 || f.Alignment != 32 {
		t.Fatalf("v%d, %d tensors, %d KVs, data at %d, align %d", f.Version, len(f.Tensors), len(f.KVs), f.DataOffset, f.Alignment)
	}
	if n, ok := f.Uint("llama.block_count"); !ok || n != 5 {
		t.Errorf("block_count = %d, %v", n, ok)
	}
	if s, _ := f.String("general.architecture"); s != "llama" {
		t.Errorf("architecture = %q", s)
	}
	if _, ok := f.Get("general.file_type"); ok {
		t.Error("unexpected general.file_type")
	}
	if x, ok := f.Float("llama.attention.layer_norm_rms_epsilon"); !ok || float32(x) != 1e-5 {
		t.Errorf("eps = %g", x)
	}
	if n, ok := f.Uint("tokenizer.ggml.padding_token_id"); !ok || n != 4294967295 {
		t.Errorf("padding id = %d", n)
	}
	toks, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil || len(toks) != 512 || toks[0] != "<unk>" || toks[1] != "<s>" || toks[3] != "<0x00>" {
		t.Fatalf("tokens: %d, %v", len(toks), err)
	}
	types, err := f.Int32s("tokenizer.ggml.token_type")
	if err != nil || types[0] != 2 || types[1] != 3 || types[3] != 6 || types[300] != 1 {
		t.Errorf("token types: %v", err)
	}
	scores, err := f.Float32s("tokenizer.ggml.scores")
	if err != nil || scores[259] != 0 || scores[300] != -41 {
		t.Errorf("scores: %v, [259]=%g [300]=%g", err, scores[259], scores[300])
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || emb.Type != dtype.F32 || !equalShape(emb.Shape, []uint64{64, 512}) || emb.Size != 64*512*4 {
		t.Fatalf("token_embd: %+v", emb)
	}
	out, _ := f.Tensor("output.weight")
	if !bytes.Equal(f.TensorData(emb), f.TensorData(out)) {
		t.Error("output.weight should equal token_embd.weight (tied in the original)")
	}
	down, _ := f.Tensor("blk.4.ffn_down.weight")
	if !equalShape(down.Shape, []uint64{172, 64}) {
		t.Errorf("ffn_down shape %v", down.Shape)
	}
}

func TestLlama2Tiny(t *testing.T) {
	f, err := gguf.Open(filepath.Join(sharedModels(t), "llama-2-tiny-random.gguf"))
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	if f.DataOffset != 724416 || len(f.Tensors) != 12 {
		t.Fatalf("data at %d, %d tensors", f.DataOffset, len(f.Tensors))
	}
	if ft, _ := f.Uint("general.file_type"); ft != 1 {
		t.Errorf("file_type %d", ft)
	}
	for _, ti := range f.Tensors {
		want := dtype.F16
		if len(ti.Shape) == 1 {
			want = dtype.F32
		}
		if ti.Type != want {
			t.Errorf("%s is %s, want %s", ti.Name, ti.Type, want)
		}
	}
	toks, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil || len(toks) != 32000 {
		t.Fatalf("tokens: %d, %v", len(toks), err)
	}
}

func TestQwen3Tiny(t *testing.T) {
	f, err := gguf.Open(filepath.Join(sharedModels(t), "qwen3-tiny-random.gguf"))
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	if n, _ := f.Uint("qwen3.block_count"); n != 2 {
		t.Errorf("block_count %d", n)
	}
	if _, ok := f.Tensor("output.weight"); ok {
		t.Error("qwen3-tiny has no output.weight (tied)")
	}
	toks, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil || len(toks) != 151936 {
		t.Fatalf("tokens: %d, %v", len(toks), err)
	}
	merges, err := f.Strings("tokenizer.ggml.merges")
	if err != nil || len(merges) != 151387 {
		t.Fatalf("merges: %d, %v", len(merges), err)
	}
	if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); !ok || b {
		t.Errorf("add_bos_token = %v, %v", b, ok)
	}
	if x, _ := f.Float("qwen3.rope.freq_base"); x != 1e6 {
		t.Errorf("freq_base %g", x)
	}
}

func BenchmarkParseQwen3(b *testing.B) {
	p := filepath.Join("..", "..", "..", "shared", "models", "qwen3-tiny-random.gguf")
	if s := os.Getenv("STOKE_SHARED"); s != "" {
		p = filepath.Join(s, "models", "qwen3-tiny-random.gguf")
	}
	data, err := os.ReadFile(p)
	if err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := gguf.Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
