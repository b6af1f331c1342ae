package gguf_test

import (
	"bytes"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// fuzzSeeds are small files made by the writer (never copies of real
// models): the sample, a PowerInfer v2 file with a wider alignment and a
// tokenizer-like table, a metadata-only file and an empty one.
func fuzzSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{writeBytes(t, sampleWriter(t, 3))}

	w := gguf.NewWriter(2)
	if err := w.SetMagic(gguf.MagicPowerInfer); err != nil {
		t.Fatal(err)
	}
	w.AddKV("general.alignment", gguf.Uint32(64))
	w.AddKV("tokenizer.ggml.tokens", gguf.Strings([]string{"<unk>", "<s>", "</s>", "▁a", "b"}))
	w.AddKV("tokenizer.ggml.scores", gguf.Float32s([]float32{0, 0, 0, -1, -2}))
	w.AddKV("powerinfer.sparse_threshold", gguf.Float32(0))
	for i, name := range []string{"blk.0.fc1.weight", "blk.0.ffn_down_t.weight"} {
		if err := w.AddTensor(name, dtype.Q8_0, []uint64{32, 2}, patterned(68, i)); err != nil {
			t.Fatal(err)
		}
	}
	seeds = append(seeds, writeBytes(t, w))

	w = gguf.NewWriter(3)
	w.AddKV("general.name", gguf.String("meta only"))
	w.AddKV("nested", gguf.ArrayOf(gguf.TypeArray, []gguf.Value{gguf.Uint32s([]uint32{1}), gguf.ArrayOf(gguf.TypeBool, []gguf.Value{gguf.Bool(true)})}))
	seeds = append(seeds, writeBytes(t, w))
	seeds = append(seeds, writeBytes(t, gguf.NewWriter(3)))
	return seeds
}

// FuzzParse: Parse must never panic; whatever it accepts must write back
// (NewWriterFrom, WriteTo) and re-parse to the same content, and the
// rewritten bytes are a fixed point of another round trip.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := gguf.Parse(data)
		if err != nil {
			return
		}
		w, err := gguf.NewWriterFrom(a)
		if err != nil {
			t.Fatalf("NewWriterFrom of a parsed file: %v", err)
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatalf("writing a parsed file: %v", err)
		}
		b, err := gguf.Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("re-parsing a written file: %v", err)
		}
		sameContent(t, a, b)
		w2, err := gguf.NewWriterFrom(b)
		if err != nil {
			t.Fatal(err)
		}
		var buf2 bytes.Buffer
		if _, err := w2.WriteTo(&buf2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatal("second round trip changed the bytes")
		}
	})
}
