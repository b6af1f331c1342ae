package tokenizer_test

import (
	"os"
	"testing"
	"unicode/utf8"

	"github.com/stokehq/stoke/models/tokenizer"
)

// warAndPeace returns the first 100 KB of the shared Tolstoy text (cut
// back to a whole character).
func warAndPeace(b *testing.B) string {
	data, err := os.ReadFile(sharedFile(b, "texts/war-and-peace.txt"))
	if err != nil {
		b.Fatal(err)
	}
	n := min(len(data), 100_000)
	for n > 0 && !utf8.RuneStart(data[n]) {
		n--
	}
	return string(data[:n])
}

func benchEncode(b *testing.B, model string) {
	tok := loadTok(b, model)
	text := warAndPeace(b)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(tok.Encode(text, true, true))
	}
	b.ReportMetric(float64(n), "tokens")
}

func BenchmarkEncode(b *testing.B) {
	b.Run("qwen3", func(b *testing.B) { benchEncode(b, "qwen3-tiny-random.gguf") })
	b.Run("stories260K", func(b *testing.B) { benchEncode(b, "stories260K.gguf") })
	b.Run("llama2-32k", func(b *testing.B) { benchEncode(b, "llama-2-tiny-random.gguf") })
}

func BenchmarkDecode(b *testing.B) {
	tok := loadTok(b, "qwen3-tiny-random.gguf")
	text := warAndPeace(b)
	ids := tok.Encode(text, false, false)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		d := tok.NewStreamDecoder()
		for _, id := range ids {
			d.Add(id)
		}
	}
}

// BenchmarkNew is construction from a Vocab already read from the file
// (151,936 tokens, 151,387 merges for Qwen3).
func BenchmarkNew(b *testing.B) {
	for _, m := range []struct{ name, file string }{
		{"qwen3", "qwen3-tiny-random.gguf"},
		{"llama2-32k", "llama-2-tiny-random.gguf"},
	} {
		b.Run(m.name, func(b *testing.B) {
			v := loadVocab(b, m.file)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tokenizer.New(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
