package tokenizer_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stokehq/stoke/models/tokenizer"
)

// TestSplitGolden checks the hand-written pre-tokenizers against splits an
// independent regex engine computed (testdata/gen_pretok.py, Python's
// regex module). STOKE_PRETOK_GOLDEN names another file of the same form
// (e.g. a larger one generated with gen_pretok.py 30000).
func TestSplitGolden(t *testing.T) {
	path := "testdata/pretok.json"
	if p := os.Getenv("STOKE_PRETOK_GOLDEN"); p != "" {
		path = p
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Cases []struct {
			Text   string              `json:"text"`
			Splits map[string][]string `json:"splits"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden.Cases) < 100 {
		t.Fatalf("only %d cases in %s", len(golden.Cases), path)
	}
	fails := 0
	for _, c := range golden.Cases {
		for pre, want := range c.Splits {
			got, err := tokenizer.Split(pre, c.Text)
			if err != nil {
				t.Fatal(err)
			}
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s %q:\n got %q\nwant %q", pre, c.Text, got, want)
				if fails++; fails > 20 {
					t.FailNow()
				}
			}
		}
	}
}

// Hand-checked splits of the rules the brief calls out.
func TestSplitRules(t *testing.T) {
	cases := []struct {
		pre, text string
		want      []string
	}{
		// qwen2 splits digits one by one, LLaMA-3 in groups of up to three.
		{"qwen2", "12345", []string{"1", "2", "3", "4", "5"}},
		{"llama-bpe", "1234567", []string{"123", "456", "7"}},
		{"gpt2", "1234567 89", []string{"1234567", " 89"}},
		{"default", "1234567", []string{"123", "456", "7"}},
		// Contractions: case-insensitive for LLaMA-3/Qwen2, not for GPT-2.
		{"qwen2", "don't I'M", []string{"don", "'t", " I", "'M"}},
		{"llama-bpe", "we'Ve", []string{"we", "'Ve"}},
		{"gpt2", "I'M we've", []string{"I", "'", "M", " we", "'ve"}},
		// \s+(?!\S): the last space of a run goes with the next word.
		{"qwen2", "a   b", []string{"a", "  ", " b"}},
		{"gpt2", "a   b", []string{"a", "  ", " b"}},
		{"qwen2", "a   ", []string{"a", "   "}},
		{"qwen2", "   ", []string{"   "}},
		// Newlines: \s*[\r\n]+ takes white space up to the last line break.
		{"qwen2", "a\n\nb", []string{"a", "\n\n", "b"}},
		{"qwen2", "a \n b", []string{"a", " \n", " b"}},
		{"qwen2", "x\r\n\r\n  y", []string{"x", "\r\n\r\n", " ", " y"}},
		{"gpt2", "a\n\nb", []string{"a", "\n", "\n", "b"}}, // no \r\n rule in GPT-2
		// Punctuation takes one leading space and trailing line breaks.
		{"qwen2", "Hello, world!!!\n", []string{"Hello", ",", " world", "!!!\n"}},
		{"qwen2", "(hello", []string{"(hello"}},
		{"gpt2", "(hello", []string{"(", "hello"}},
		{"qwen2", "\thello", []string{"\thello"}},
		{"qwen2", "2+2?", []string{"2", "+", "2", "?"}},
		{"qwen2", "", []string{}},
		// Non-ASCII letters and numbers.
		// A non-letter, non-number character prefixes the letters after it.
		{"qwen2", "中文，标点。", []string{"中文", "，标点", "。"}},
		{"qwen2", " ٣٤", []string{" ", "٣", "٤"}},
	}
	for _, c := range cases {
		got, err := tokenizer.Split(c.pre, c.text)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s %q: got %q, want %q", c.pre, c.text, got, c.want)
		}
	}
	if _, err := tokenizer.Split("no-such-pre", "x"); err == nil || !strings.Contains(err.Error(), "no-such-pre") {
		t.Errorf("unknown pre: error %v does not name it", err)
	}
}
