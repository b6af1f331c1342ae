package tokenizer_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/models/tokenizer"
)

type fuzzTok struct {
	name string
	tok  *tokenizer.Tokenizer
	spm  bool
	pre  string
}

var (
	fuzzToksOnce sync.Once
	fuzzToks     []fuzzTok
)

// fuzzTokenizers: stories260K's SPM vocabulary (or the synthetic one when
// the shared files are absent), the synthetic byte-level vocabulary with
// the qwen2 and llama-bpe pre-tokenizers, and the real Qwen3 one when
// present. Built without testing.TB so that missing files never skip.
func fuzzTokenizers(tb testing.TB) []fuzzTok {
	fuzzToksOnce.Do(func() {
		fromFile := func(name string) *tokenizer.Tokenizer {
			f, err := gguf.Open(filepath.Join(sharedDir(), "models", name))
			if err != nil {
				return nil
			}
			defer f.Close()
			tok, err := tokenizer.FromGGUF(f)
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			return tok
		}
		build := func(v tokenizer.Vocab) *tokenizer.Tokenizer {
			tok, err := tokenizer.New(v)
			if err != nil {
				tb.Fatal(err)
			}
			return tok
		}
		if tok := fromFile("stories260K.gguf"); tok != nil {
			fuzzToks = append(fuzzToks, fuzzTok{name: "stories260K", tok: tok, spm: true})
		} else {
			fuzzToks = append(fuzzToks, fuzzTok{name: "synthetic-spm", tok: build(synthSPMVocab()), spm: true})
		}
		for _, pre := range []string{"qwen2", "llama-bpe", "default"} {
			fuzzToks = append(fuzzToks, fuzzTok{name: "synthetic-" + pre, tok: build(synthBPEVocab(pre)), pre: pre})
		}
		// The real Qwen3 vocabulary on request (it takes a while to load).
		if os.Getenv("STOKE_FUZZ_QWEN3") != "" {
			if tok := fromFile("qwen3-tiny-random.gguf"); tok != nil {
				fuzzToks = append(fuzzToks, fuzzTok{name: "qwen3", tok: tok, pre: "qwen2"})
			}
		}
	})
	return fuzzToks
}

const fuzzMaxLen = 160

// FuzzEncodeDecode: for any input, Encode and Decode never panic and
// produce in-range ids; Decode(Encode(s)) == s for byte-level BPE always
// (bytes are kept even in invalid UTF-8) and for SentencePiece when s is
// valid UTF-8 (its ▁ reads back as a space; the prefixed space is
// removed by Decode). A stream decoder yields valid UTF-8 that equals the
// decoded text whenever that is valid.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{
		"", " ", "   ", "\n", "\r\n\r\n", "Once upon a time", " leading", "trailing  ",
		"a   b", "don't I'M", "1234567", "😀", "é中ü", "<|im_start|>user\nhi<|im_end|>",
		"<s></s><unk>", "<think>x</think>", "▁", "\xff\xfe", "\xe4\xb8", "a\xf0 b",
		"\t\v\f\u0085\u00a0\u3000", "x\u0301", "$100+<x>|~^", "'S'T'RE", "٣٤٥ ²",
	} {
		f.Add(s)
	}
	toks := fuzzTokenizers(f)
	f.Fuzz(func(t *testing.T, s string) {
		// Long texts are covered by the reference-text tests; short inputs
		// keep each run, and so the minimizing of new inputs, quick.
		if len(s) > fuzzMaxLen {
			s = s[:fuzzMaxLen]
		}
		for _, ft := range toks {
			tok := ft.tok
			ids := tok.Encode(s, true, true)
			for _, id := range ids {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("%s: id %d out of range for %q", ft.name, id, s)
				}
			}
			_ = tok.Decode(ids)
			ids = tok.Encode(s, false, false)
			got := tok.Decode(ids)
			want := s
			if ft.spm {
				want = strings.ReplaceAll(s, "▁", " ")
			}
			if (!ft.spm || utf8.ValidString(s)) && got != want {
				t.Fatalf("%s: Decode(Encode(%q)) = %q (ids %v)", ft.name, s, got, ids)
			}
			if ft.spm {
				if whole := tokenizer.EncodeNoCut(tok, s, false, false); !slices.Equal(whole, ids) {
					t.Fatalf("%s: %q: cut encoding %v, whole %v", ft.name, s, ids, whole)
				}
			}
			d := tok.NewStreamDecoder()
			var sb strings.Builder
			for _, id := range ids {
				sb.WriteString(d.Add(id))
			}
			sb.WriteString(d.Flush())
			streamed := sb.String()
			if !utf8.ValidString(streamed) {
				t.Fatalf("%s: stream output %q is not valid UTF-8", ft.name, streamed)
			}
			if !ft.spm && utf8.ValidString(s) && streamed != s {
				t.Fatalf("%s: stream %q, want %q", ft.name, streamed, s)
			}
			if !ft.spm {
				pieces, err := tokenizer.Split(ft.pre, s)
				if err != nil || strings.Join(pieces, "") != s {
					t.Fatalf("%s: pre-tokens %q do not join to %q (%v)", ft.name, pieces, s, err)
				}
			}
		}
	})
}
