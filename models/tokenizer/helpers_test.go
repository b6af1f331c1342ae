package tokenizer_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/models/tokenizer"
)

// sharedDir is the shared data directory: $STOKE_SHARED, else the
// checkout's sibling ../../../shared (seen from this package).
func sharedDir() string {
	if d := os.Getenv("STOKE_SHARED"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared")
}

// sharedFile returns the path of a file under the shared models directory,
// skipping the test when it is not there.
func sharedFile(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(sharedDir(), "models", rel)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("reference file %s not available (%v); set STOKE_SHARED to the shared directory", p, err)
	}
	return p
}

var ggufVocabs sync.Map // file name → tokenizer.Vocab

// loadVocab reads a shared model's vocabulary (once per test binary).
func loadVocab(tb testing.TB, name string) tokenizer.Vocab {
	tb.Helper()
	if v, ok := ggufVocabs.Load(name); ok {
		return v.(tokenizer.Vocab)
	}
	f, err := gguf.Open(sharedFile(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	v, err := tokenizer.VocabFromGGUF(f)
	if err != nil {
		tb.Fatal(err)
	}
	ggufVocabs.Store(name, v)
	return v
}

var ggufToks sync.Map // file name → *tokenizer.Tokenizer

// loadTok builds a shared model's tokenizer through FromGGUF (once per
// test binary).
func loadTok(tb testing.TB, name string) *tokenizer.Tokenizer {
	tb.Helper()
	if t, ok := ggufToks.Load(name); ok {
		return t.(*tokenizer.Tokenizer)
	}
	f, err := gguf.Open(sharedFile(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		tb.Fatal(err)
	}
	ggufToks.Store(name, tok)
	return tok
}

// gpt2Chars is GPT-2's byte→character table, written out independently
// of the package: printable Latin-1 bytes stand for themselves, the rest
// become U+0100 onwards in byte order.
func gpt2Chars() [256]string {
	var out [256]string
	next := rune(0x100)
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			out[b] = string(rune(b))
		} else {
			out[b] = string(next)
			next++
		}
	}
	return out
}

// bpeText writes s in the GPT-2 alphabet.
func bpeText(s string) string {
	chars := gpt2Chars()
	var out []byte
	for i := 0; i < len(s); i++ {
		out = append(out, chars[s[i]]...)
	}
	return string(out)
}

// synthBPEVocab is a small byte-level vocabulary: the 256 byte characters
// (id = byte), the results of a few merges, and four added tokens.
func synthBPEVocab(pre string) tokenizer.Vocab {
	v := tokenizer.Vocab{Model: tokenizer.ModelBPE, Pre: pre, BOS: -1, EOS: -1, UNK: -1, PAD: -1}
	chars := gpt2Chars()
	for b := range 256 {
		v.Tokens = append(v.Tokens, chars[b])
		v.Types = append(v.Types, tokenizer.TypeNormal)
	}
	seen := map[string]bool{}
	for _, m := range synthMerges {
		a, b := bpeText(m[0]), bpeText(m[1])
		v.Merges = append(v.Merges, a+" "+b)
		if !seen[a+b] {
			seen[a+b] = true
			v.Tokens = append(v.Tokens, a+b)
			v.Types = append(v.Types, tokenizer.TypeNormal)
		}
	}
	for _, s := range []struct {
		text string
		typ  int32
	}{
		{"<|endoftext|>", tokenizer.TypeControl},
		{"<|im_start|>", tokenizer.TypeControl},
		{"<|im_end|>", tokenizer.TypeControl},
		{"<think>", tokenizer.TypeUserDefined},
	} {
		v.Tokens = append(v.Tokens, s.text)
		v.Types = append(v.Types, s.typ)
	}
	v.EOS = int32(len(v.Tokens) - 2) // <|im_end|>
	return v
}

// synthMerges, in rank order, as plain text.
var synthMerges = [][2]string{
	{" ", "t"}, {"h", "e"}, {" t", "he"}, {"i", "n"}, {" ", "a"}, {"e", "r"},
	{"o", "n"}, {" ", "s"}, {"r", "e"}, {"in", "g"}, {" ", "w"}, {"a", "n"},
	{" ", "o"}, {"o", "u"}, {"e", "d"}, {"1", "2"}, {"12", "3"}, {" ", " "},
	{"  ", "  "}, {"\n", "\n"}, {"\xc3", "\xa9"}, {"\xe4", "\xb8"}, {"\xe4\xb8", "\xad"},
	{"a", "nd"}, {"n", "d"}, {" an", "d"}, {" a", "n"},
}

// synthSPMVocab is a small SentencePiece vocabulary: <unk>, <s>, </s>, the
// 256 byte tokens (id = byte + 3) and a few scored pieces.
func synthSPMVocab() tokenizer.Vocab {
	v := tokenizer.Vocab{Model: tokenizer.ModelSPM, BOS: 1, EOS: 2, UNK: 0, PAD: -1, AddBOS: true, AddSpacePrefix: true}
	add := func(s string, score float32, typ int32) {
		v.Tokens = append(v.Tokens, s)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, typ)
	}
	add("<unk>", 0, tokenizer.TypeUnknown)
	add("<s>", 0, tokenizer.TypeControl)
	add("</s>", 0, tokenizer.TypeControl)
	for b := range 256 {
		add(string([]byte{'<', '0', 'x', "0123456789ABCDEF"[b>>4], "0123456789ABCDEF"[b&15], '>'}), 0, tokenizer.TypeByte)
	}
	for i, p := range synthPieces {
		add(p.text, p.score, tokenizer.TypeNormal)
		_ = i
	}
	return v
}

var synthPieces = []struct {
	text  string
	score float32
}{
	{"▁the", -1}, {"▁t", -2}, {"he", -3}, {"an", -4}, {"and", -5}, {"▁and", -6}, {"▁a", -7},
	{"▁", -9}, {"t", -10}, {"h", -11}, {"e", -12}, {"a", -13}, {"n", -14}, {"d", -15},
	{"x", -16}, {"▁x", -17}, {"é", -18},
}
