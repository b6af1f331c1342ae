package tokenizer_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stokehq/stoke/models/tokenizer"
)

func mustNew(t testing.TB, v tokenizer.Vocab) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ids maps vocabulary texts to ids, failing on a missing one.
func ids(t testing.TB, tok *tokenizer.Tokenizer, texts ...string) []int32 {
	t.Helper()
	out := []int32{}
	for _, s := range texts {
		id, ok := tok.ID(s)
		if !ok {
			t.Fatalf("no token %q", s)
		}
		out = append(out, id)
	}
	return out
}

func checkEncode(t *testing.T, tok *tokenizer.Tokenizer, text string, addSpecial, parseSpecial bool, want []int32) {
	t.Helper()
	if got := tok.Encode(text, addSpecial, parseSpecial); !slices.Equal(got, want) {
		t.Errorf("Encode(%q, %v, %v) = %v, want %v", text, addSpecial, parseSpecial, got, want)
	}
}

// SentencePiece merging by score, worked by hand for the synthetic vocab:
// "▁the▁and" → ▁t (-2), he (-3), ▁the (-1), an (-4), and (-5), ▁and (-6).
func TestSPMSynthetic(t *testing.T) {
	tok := mustNew(t, synthSPMVocab())
	checkEncode(t, tok, "the and", false, false, ids(t, tok, "▁the", "▁and"))
	checkEncode(t, tok, "the and", true, false, append([]int32{1}, ids(t, tok, "▁the", "▁and")...))
	// "an" (-4) beats "▁a" (-7), and there is no "▁an" piece.
	checkEncode(t, tok, "an", false, false, ids(t, tok, "▁", "an"))
	// "xx" is not a piece: ▁x, x.
	checkEncode(t, tok, "xx", false, false, ids(t, tok, "▁x", "x"))
	// Byte fallback: ü (C3 BC) is not a piece, é is.
	checkEncode(t, tok, "éü", false, false, []int32{mustID(t, tok, "▁"), mustID(t, tok, "é"), 3 + 0xC3, 3 + 0xBC})
	checkEncode(t, tok, "", false, false, []int32{})
	checkEncode(t, tok, "", true, false, []int32{1})
	if got := tok.Decode(tok.Encode("the and", true, false)); got != "the and" {
		t.Errorf("Decode = %q", got)
	}
}

func mustID(t testing.TB, tok *tokenizer.Tokenizer, s string) int32 {
	t.Helper()
	return ids(t, tok, s)[0]
}

// Hand-checked SentencePiece cases on the real 512-token stories260K
// vocabulary: byte tokens are <0xNN> = id NN+3.
func TestSPMStories(t *testing.T) {
	tok := loadTok(t, "stories260K.gguf")
	sp := mustID(t, tok, "▁")
	b := func(x ...byte) []int32 {
		out := []int32{}
		for _, c := range x {
			out = append(out, int32(c)+3)
		}
		return out
	}
	cases := []struct {
		text string
		want []int32
	}{
		{"ü", append([]int32{sp}, b(0xC3, 0xBC)...)}, // é, ñ, “ are pieces; ü is not
		{"é", []int32{sp, mustID(t, tok, "é")}},
		{"😀", append([]int32{sp}, b(0xF0, 0x9F, 0x98, 0x80)...)},
		{"中", append([]int32{sp}, b(0xE4, 0xB8, 0xAD)...)},
		{"", []int32{}},
	}
	for _, c := range cases {
		checkEncode(t, tok, c.text, false, false, c.want)
		if got := tok.Decode(c.want); got != c.text {
			t.Errorf("Decode(%v) = %q, want %q", c.want, got, c.text)
		}
	}
	// Only spaces: all ▁, merged into whatever ▁-run pieces exist.
	for _, s := range []string{" ", "   ", "\n", "\n\n", "a\nb"} {
		got := tok.Encode(s, false, false)
		if len(got) == 0 || tok.Decode(got) != s {
			t.Errorf("%q: %v decodes to %q", s, got, tok.Decode(got))
		}
	}
	// A newline is not a piece: it falls back to <0x0A>.
	if got := tok.Encode("a\nb", false, false); !slices.Contains(got, 3+'\n') {
		t.Errorf("a\\nb = %v has no <0x0A>", got)
	}
	// Special-token text: plain text unless parseSpecial; with it, the
	// token, and the text after it gets the space prefix again (llama.cpp's
	// is_prev_special).
	plain := tok.Encode("<s>Once", false, false)
	if slices.Contains(plain, 1) {
		t.Errorf("<s> with parseSpecial=false became BOS: %v", plain)
	}
	if tok.Decode(plain) != "<s>Once" {
		t.Errorf("Decode(%v) = %q", plain, tok.Decode(plain))
	}
	once := tok.Encode("Once", false, false)
	checkEncode(t, tok, "<s>Once", false, true, append([]int32{1}, once...))
	checkEncode(t, tok, "Once</s>", true, true, append(append([]int32{1}, once...), 2))
	checkEncode(t, tok, "<unk>", false, true, []int32{0})
}

// Byte-level BPE merging by rank on the synthetic vocabulary.
func TestBPESynthetic(t *testing.T) {
	for _, pre := range []string{"qwen2", "llama-bpe", "gpt2", "default"} {
		t.Run(pre, func(t *testing.T) {
			tok := mustNew(t, synthBPEVocab(pre))
			// " the": " t"(0), "he"(1), " t he"(2) → one token.
			checkEncode(t, tok, " the", false, false, ids(t, tok, bpeText(" the")))
			checkEncode(t, tok, "the", false, false, ids(t, tok, "t", "he"))
			// " and": " a"(4) first, then "nd"(24) before " a n"(26); there is
			// no " a"+"nd" merge, so two tokens.
			// LLaMA-3 (ignore_merges) takes a pre-token that is a token whole.
			if pre == "llama-bpe" {
				checkEncode(t, tok, " and", false, false, ids(t, tok, bpeText(" and")))
				checkEncode(t, tok, "and", false, false, ids(t, tok, "and"))
			} else {
				checkEncode(t, tok, " and", false, false, ids(t, tok, bpeText(" a"), "nd"))
				checkEncode(t, tok, "and", false, false, ids(t, tok, "an", "d"))
			}
			// Multi-byte characters merge from their bytes: é (C3 A9), 中 (E4 B8 AD);
			// ü has no merge and stays two byte tokens.
			checkEncode(t, tok, "é", false, false, ids(t, tok, bpeText("é")))
			checkEncode(t, tok, "中", false, false, ids(t, tok, bpeText("中")))
			checkEncode(t, tok, "ü", false, false, ids(t, tok, bpeText("\xc3"), bpeText("\xbc")))
			checkEncode(t, tok, "", true, true, []int32{})
			// Control tokens only with parseSpecial; user-defined always.
			im := mustID(t, tok, "<|im_start|>")
			checkEncode(t, tok, "<|im_start|>", false, true, []int32{im})
			if got := tok.Encode("<|im_start|>", false, false); slices.Contains(got, im) || tok.Decode(got) != "<|im_start|>" {
				t.Errorf("parseSpecial=false: %v", got)
			}
			think := mustID(t, tok, "<think>")
			checkEncode(t, tok, "<think>", false, false, []int32{think})
			if got := tok.Decode([]int32{im, think}); got != "<think>" {
				t.Errorf("Decode drops control tokens, keeps user-defined: %q", got)
			}
			if got := string(tok.Piece(im, true)); got != "<|im_start|>" {
				t.Errorf("Piece(special) = %q", got)
			}
		})
	}
	// Digits: qwen2 one at a time; llama-bpe groups of three, and "123"
	// is a token, found whole (ignore_merges) or by merges.
	q := mustNew(t, synthBPEVocab("qwen2"))
	checkEncode(t, q, "1234", false, false, ids(t, q, "1", "2", "3", "4"))
	l := mustNew(t, synthBPEVocab("llama-bpe"))
	checkEncode(t, l, "1234", false, false, ids(t, l, "123", "4"))
	g := mustNew(t, synthBPEVocab("gpt2"))
	checkEncode(t, g, "1234", false, false, ids(t, g, "123", "4"))
	// Runs of spaces: "  " + " and" (the last space goes with the word).
	checkEncode(t, q, "a   and", false, false, ids(t, q, "a", bpeText("  "), bpeText(" a"), "nd"))
	checkEncode(t, q, "\n\n\n", false, false, ids(t, q, bpeText("\n\n"), bpeText("\n")))
}

// Hand-checked cases on the real Qwen3 vocabulary (printable ASCII
// character c is id c-33 in it).
func TestBPEQwen3(t *testing.T) {
	tok := loadTok(t, "qwen3-tiny-random.gguf")
	digit := func(s string) []int32 {
		out := []int32{}
		for _, c := range []byte(s) {
			out = append(out, int32(c)-33)
		}
		return out
	}
	checkEncode(t, tok, "1234567890", false, false, digit("1234567890"))
	checkEncode(t, tok, "", true, true, []int32{})
	checkEncode(t, tok, "<|im_start|><|im_end|>", false, true, []int32{151644, 151645})
	// With parseSpecial=false the markers are text: "<|", "im", "_start", "|>".
	plain := tok.Encode("<|im_start|>", false, false)
	if slices.Contains(plain, 151644) || len(plain) < 2 || tok.Decode(plain) != "<|im_start|>" {
		t.Errorf("parseSpecial=false: %v", plain)
	}
	// User-defined tokens are cut out even without parseSpecial (llama.cpp, HF).
	checkEncode(t, tok, "<think>", false, false, []int32{151667})
	// Contractions and spaces, against the pre-tokenizer plus the vocab.
	for _, s := range []string{"don't", "I'M HERE", "a   b", "   ", "\n", " \n\n ", "x  \t y", "héllo wörld", "中文，标点。", "2+2=4"} {
		got := tok.Encode(s, false, false)
		if tok.Decode(got) != s {
			t.Errorf("%q: %v decodes to %q", s, got, tok.Decode(got))
		}
		pieces, _ := tokenizer.Split("qwen2", s)
		var n int
		for _, p := range pieces {
			n += len(tok.Encode(p, false, false))
		}
		if n != len(got) {
			t.Errorf("%q: %d tokens but its pre-tokens encode to %d", s, len(got), n)
		}
	}
	if got := tok.Encode("don't", false, false); len(got) != 2 || tok.Decode(got[1:]) != "'t" {
		t.Errorf("don't = %v", got)
	}
}

// SentencePiece cuts the text where no token can span two symbols and
// merges the parts on their own; that must equal merging the whole text
// (llama.cpp's way) token for token.
func TestSPMCutsMatchWhole(t *testing.T) {
	texts := []string{
		"", " ", "▁▁ ▁", "Once upon a time, there was a little girl named Lily.",
		"  many   spaces\n\n\tand tabs  ", "mixed 中文 ελληνικά русский 😀 text",
		"\xff\xfe invalid \xe4\xb8 bytes", "<s>Once</s>",
	}
	for _, f := range []string{"texts/TinyStories-valid.txt", "texts/war-and-peace.txt"} {
		if data, err := os.ReadFile(filepath.Join(sharedDir(), "models", f)); err == nil {
			texts = append(texts, string(data[:min(len(data), 40000)]))
		}
	}
	toks := []*tokenizer.Tokenizer{mustNew(t, synthSPMVocab())}
	for _, m := range []string{"stories260K.gguf", "llama-2-tiny-random.gguf"} {
		if _, err := os.Stat(filepath.Join(sharedDir(), "models", m)); err == nil {
			toks = append(toks, loadTok(t, m))
		}
	}
	for _, tok := range toks {
		for _, s := range texts {
			for _, parse := range []bool{false, true} {
				cut := tok.Encode(s, true, parse)
				whole := tokenizer.EncodeNoCut(tok, s, true, parse)
				if !slices.Equal(cut, whole) {
					t.Errorf("vocab of %d: %.40q: cut %d tokens, whole %d", tok.VocabSize(), s, len(cut), len(whole))
				}
			}
		}
	}
}

func TestStreamDecoder(t *testing.T) {
	t.Run("emoji over byte tokens", func(t *testing.T) {
		tok := mustNew(t, synthSPMVocab())
		ids := tok.Encode("😀x", false, false) // ▁, F0 9F 98 80 as bytes, x
		if len(ids) != 6 {
			t.Fatalf("ids %v", ids)
		}
		d := tok.NewStreamDecoder()
		var outs []string
		for _, id := range ids {
			outs = append(outs, d.Add(id))
		}
		want := []string{" ", "", "", "", "😀", "x"}
		if !slices.Equal(outs, want) {
			t.Errorf("outputs %q, want %q", outs, want)
		}
		if f := d.Flush(); f != "" {
			t.Errorf("Flush = %q", f)
		}
	})
	t.Run("invalid bytes", func(t *testing.T) {
		tok := mustNew(t, synthSPMVocab())
		bt := func(b byte) int32 { return int32(b) + 3 }
		d := tok.NewStreamDecoder()
		if got := d.Add(bt(0xFF)); got != "\uFFFD" {
			t.Errorf("0xFF → %q", got)
		}
		if got := d.Add(bt(0xE4)); got != "" || d.Pending() != 1 {
			t.Errorf("E4 → %q, pending %d", got, d.Pending())
		}
		if got := d.Add(mustID(t, tok, "x")); got != "\uFFFDx" {
			t.Errorf("E4 then x → %q", got)
		}
		d.Add(bt(0xF0))
		d.Add(bt(0x9F))
		if got := d.Flush(); got != "\uFFFD\uFFFD" {
			t.Errorf("Flush = %q", got)
		}
		if got := d.Add(1); got != "" { // BOS: control, nothing
			t.Errorf("BOS → %q", got)
		}
		ds := tok.NewStreamDecoderSpecial()
		if got := ds.Add(1); got != "<s>" {
			t.Errorf("special BOS → %q", got)
		}
	})
	t.Run("qwen3 chinese", func(t *testing.T) {
		tok := loadTok(t, "qwen3-tiny-random.gguf")
		text := "你好，世界！今天天气很好。我们去公园散步吧？🙂 Ünïcödé ἀρχή 𝔘𝔫𝔦"
		ids := tok.Encode(text, false, false)
		d := tok.NewStreamDecoder()
		var sb strings.Builder
		held := 0
		for _, id := range ids {
			s := d.Add(id)
			if !utf8.ValidString(s) {
				t.Fatalf("Add(%d) emitted invalid UTF-8 %q", id, s)
			}
			if d.Pending() > 0 {
				held++
			}
			sb.WriteString(s)
		}
		sb.WriteString(d.Flush())
		if sb.String() != text {
			t.Errorf("stream = %q, want %q", sb.String(), text)
		}
		if got := tok.Decode(ids); got != text {
			t.Errorf("Decode = %q", got)
		}
		if held == 0 {
			t.Log("no token ended inside a character")
		}
	})
}

func TestNewErrors(t *testing.T) {
	base := func() tokenizer.Vocab { return synthBPEVocab("qwen2") }
	cases := []struct {
		name   string
		edit   func(*tokenizer.Vocab)
		substr string
	}{
		{"unknown model", func(v *tokenizer.Vocab) { v.Model = "bert" }, `"bert"`},
		{"unknown pre", func(v *tokenizer.Vocab) { v.Pre = "tekken" }, `"tekken"`},
		{"no tokens", func(v *tokenizer.Vocab) { v.Tokens, v.Types = nil, nil }, "no tokens"},
		{"scores length", func(v *tokenizer.Vocab) { v.Scores = []float32{1} }, "scores"},
		{"types length", func(v *tokenizer.Vocab) { v.Types = v.Types[:3] }, "types"},
		{"bos range", func(v *tokenizer.Vocab) { v.BOS = int32(len(v.Tokens)) }, "BOS"},
		{"eos range", func(v *tokenizer.Vocab) { v.EOS = -2 }, "EOS"},
		{"eog range", func(v *tokenizer.Vocab) { v.EOG = []int32{1 << 30} }, "end-of-generation"},
		{"add bos without bos", func(v *tokenizer.Vocab) { v.AddBOS = true }, "AddBOS"},
		{"merge without space", func(v *tokenizer.Vocab) { v.Merges = append(v.Merges, "abc") }, `"abc"`},
		{"merge empty right", func(v *tokenizer.Vocab) { v.Merges = append(v.Merges, "a ") }, "empty"},
		{"duplicate", func(v *tokenizer.Vocab) { v.Tokens[5] = v.Tokens[4] }, "same text"},
	}
	for _, c := range cases {
		v := base()
		c.edit(&v)
		_, err := tokenizer.New(v)
		if err == nil || !strings.Contains(err.Error(), c.substr) {
			t.Errorf("%s: error %v, want one mentioning %s", c.name, err, c.substr)
		}
	}
	// New copies: changing the caller's slices afterwards changes nothing.
	v := base()
	tok := mustNew(t, v)
	before := tok.Encode(" the", false, false)
	v.Tokens[0] = "changed"
	if after := tok.Encode(" the", false, false); !slices.Equal(before, after) || tok.TokenText(0) == "changed" {
		t.Error("tokenizer shares the caller's token slice")
	}
	// Empty token texts become [EMPTY_<id>], as in llama.cpp.
	v = base()
	v.Tokens[7] = ""
	if tok := mustNew(t, v); tok.TokenText(7) != "[EMPTY_7]" {
		t.Errorf("empty token text → %q", tok.TokenText(7))
	}
}

func TestAccessors(t *testing.T) {
	tok := mustNew(t, synthSPMVocab())
	if tok.VocabSize() != 3+256+len(synthPieces) || tok.BOS() != 1 || tok.EOS() != 2 || tok.UNK() != 0 || tok.PAD() != -1 {
		t.Error("ids/size")
	}
	if !tok.IsEOG(2) || tok.IsEOG(1) || tok.IsEOG(-1) || tok.IsEOG(1<<20) {
		t.Error("IsEOG")
	}
	if tok.TokenPiece(-1) != nil || tok.TokenPiece(1<<20) != nil || tok.TokenText(-5) != "" || tok.TokenType(1<<20) != tokenizer.TypeUndefined {
		t.Error("out-of-range ids")
	}
	if got := string(tok.TokenPiece(3 + 'A')); got != "A" {
		t.Errorf("byte piece %q", got)
	}
	if got := string(tok.TokenPiece(mustID(t, tok, "▁the"))); got != " the" {
		t.Errorf("▁ piece %q", got)
	}
	if tok.TokenPiece(0) != nil || string(tok.Piece(0, true)) != "<unk>" {
		t.Error("unknown token piece")
	}
	p := tok.TokenPiece(3 + 'A')
	p[0] = 'Z'
	if string(tok.TokenPiece(3+'A')) != "A" {
		t.Error("TokenPiece returned shared memory")
	}
	// EOS through the vocab's text markers.
	v := synthBPEVocab("qwen2")
	v.EOS = -1
	b := mustNew(t, v)
	if !b.IsEOG(mustID(t, b, "<|im_end|>")) || !b.IsEOG(mustID(t, b, "<|endoftext|>")) || b.IsEOG(mustID(t, b, "<|im_start|>")) {
		t.Errorf("text-detected EOG: %v", b.EOGs())
	}
	if len(tokenizer.Pres()) < 10 {
		t.Errorf("Pres() = %v", tokenizer.Pres())
	}
}
