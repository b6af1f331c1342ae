package tokenizer_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stokehq/stoke/models/tokenizer"
)

// promptRef is the part of a reference JSON this package checks.
type promptRef struct {
	Prompt        string   `json:"prompt"`
	PromptIDs     []int32  `json:"prompt_token_ids"`
	PromptPieces  []string `json:"prompt_token_pieces"`
	AddBOS        *bool    `json:"add_bos"`
	GreedyIDs     []int32  `json:"greedy_token_ids"`
	GreedyTextHex string   `json:"greedy_text_hex"`
	// chat renders
	Rendered string  `json:"rendered"`
	IDs      []int32 `json:"ids"`
}

func readRef(t *testing.T, name string) promptRef {
	t.Helper()
	data, err := os.ReadFile(sharedFile(t, filepath.Join("ref", name)))
	if err != nil {
		t.Fatal(err)
	}
	var r promptRef
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

// TestReferencePrompts: prompt ids from llama.cpp (SPM) and Hugging Face
// (Qwen3 BPE) must be reproduced exactly, and decode back to the prompt.
func TestReferencePrompts(t *testing.T) {
	cases := []struct{ model, ref string }{
		{"stories260K.gguf", "stories260K.p1.llamacpp.json"},
		{"stories260K.gguf", "stories260K.p2.llamacpp.json"},
		{"llama-2-tiny-random.gguf", "llama-2-tiny-random.p1.llamacpp.json"},
		{"llama-2-tiny-random.gguf", "llama-2-tiny-random.p2.llamacpp.json"},
		{"qwen3-tiny-random.gguf", "qwen3-tiny-random.p1.hf.json"},
		{"qwen3-tiny-random.gguf", "qwen3-tiny-random.p2.hf.json"},
	}
	for _, c := range cases {
		t.Run(c.ref, func(t *testing.T) {
			tok := loadTok(t, c.model)
			r := readRef(t, c.ref)
			if len(r.PromptIDs) == 0 || r.Prompt == "" {
				t.Fatalf("%s has no prompt or prompt ids", c.ref)
			}
			if r.AddBOS != nil && *r.AddBOS != tok.AddBOS() {
				t.Errorf("AddBOS = %v, reference %v", tok.AddBOS(), *r.AddBOS)
			}
			for _, parse := range []bool{true, false} {
				got := tok.Encode(r.Prompt, true, parse)
				if strings.Contains(r.Prompt, "<|") && !parse {
					if slices.Equal(got, r.PromptIDs) {
						t.Errorf("parseSpecial=false still produced the special ids")
					}
					continue
				}
				if !slices.Equal(got, r.PromptIDs) {
					t.Errorf("Encode(%q, parseSpecial=%v)\n got %v\nwant %v", r.Prompt, parse, got, r.PromptIDs)
				}
			}
			// Pieces as the reference prints them: control tokens empty
			// (llama.cpp) or as text (Hugging Face).
			special := strings.HasSuffix(c.ref, ".hf.json")
			var all []byte
			for i, id := range r.PromptIDs {
				p := tok.Piece(id, special)
				all = append(all, p...)
				if i < len(r.PromptPieces) && string(p) != r.PromptPieces[i] {
					t.Errorf("piece of %d = %q, reference %q", id, p, r.PromptPieces[i])
				}
			}
			if special {
				if string(all) != r.Prompt {
					t.Errorf("pieces with specials join to %q, want %q", all, r.Prompt)
				}
			} else if got := tok.Decode(r.PromptIDs); got != r.Prompt {
				t.Errorf("Decode = %q, want %q", got, r.Prompt)
			}
			// The greedy continuation's text is its pieces, as printed.
			if r.GreedyTextHex != "" {
				want, err := hex.DecodeString(r.GreedyTextHex)
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				for _, id := range r.GreedyIDs {
					got = append(got, tok.TokenPiece(id)...)
				}
				if string(got) != string(want) {
					t.Errorf("greedy text\n got %q\nwant %q", got, want)
				}
			}
		})
	}
}

// TestReferenceChat: the Qwen3 chat template's renders, with the ChatML
// markers written in the text, encode to the reference ids.
func TestReferenceChat(t *testing.T) {
	tok := loadTok(t, "qwen3-tiny-random.gguf")
	for _, name := range []string{"qwen3-tiny-random.chat.c1.gen0.json", "qwen3-tiny-random.chat.c1.gen1.json"} {
		r := readRef(t, name)
		if r.Rendered == "" || len(r.IDs) == 0 {
			t.Fatalf("%s has no render", name)
		}
		if got := tok.Encode(r.Rendered, true, true); !slices.Equal(got, r.IDs) {
			t.Errorf("%s: Encode(%q)\n got %v\nwant %v", name, r.Rendered, got, r.IDs)
		}
	}
}

// TestReferenceTextCounts: llama.cpp's perplexity tool tokenized the
// shared TinyStories texts (with BOS) into 1,883 and 15,555 tokens with
// the stories260K vocabulary (models/README.md): long lines, CRLF, and
// "<|endoftext|>" as plain text.
func TestReferenceTextCounts(t *testing.T) {
	tok := loadTok(t, "stories260K.gguf")
	for _, c := range []struct {
		file string
		want int
	}{
		{"texts/tinystories_sample.txt", 1883},
		{"texts/TinyStories-valid.txt", 15555},
	} {
		data, err := os.ReadFile(sharedFile(t, c.file))
		if err != nil {
			t.Fatal(err)
		}
		ids := tok.Encode(string(data), true, false)
		if len(ids) != c.want {
			t.Errorf("%s: %d tokens, llama.cpp %d", c.file, len(ids), c.want)
		}
		if got := tok.Decode(ids); got != string(data) {
			t.Errorf("%s: Decode does not give the text back", c.file)
		}
	}
}

// TestGGUFVocab checks what FromGGUF reads and the defaults it applies.
func TestGGUFVocab(t *testing.T) {
	t.Run("stories260K", func(t *testing.T) {
		v := loadVocab(t, "stories260K.gguf")
		tok := loadTok(t, "stories260K.gguf")
		if v.Model != "llama" || len(v.Tokens) != 512 || tok.VocabSize() != 512 {
			t.Fatalf("model %q, %d tokens", v.Model, len(v.Tokens))
		}
		// No add_bos_token key: SPM adds BOS; padding 4294967295 is "none".
		if !v.AddBOS || v.AddEOS || !v.AddSpacePrefix || v.BOS != 1 || v.EOS != 2 || v.UNK != 0 || v.PAD != -1 {
			t.Errorf("vocab flags/ids: %+v", struct {
				AddBOS, AddEOS, AddSpacePrefix bool
				BOS, EOS, UNK, PAD             int32
			}{v.AddBOS, v.AddEOS, v.AddSpacePrefix, v.BOS, v.EOS, v.UNK, v.PAD})
		}
		if got := tok.EOGs(); !slices.Equal(got, []int32{2}) {
			t.Errorf("EOG ids %v, want [2]", got)
		}
	})
	t.Run("qwen3", func(t *testing.T) {
		v := loadVocab(t, "qwen3-tiny-random.gguf")
		tok := loadTok(t, "qwen3-tiny-random.gguf")
		if v.Model != "gpt2" || v.Pre != "qwen2" || tok.VocabSize() != 151936 || len(v.Merges) != 151387 {
			t.Fatalf("model %q pre %q, %d tokens, %d merges", v.Model, v.Pre, tok.VocabSize(), len(v.Merges))
		}
		if v.AddBOS || tok.BOS() != 151643 || tok.EOS() != 151645 || v.PAD != 151643 {
			t.Errorf("AddBOS %v BOS %d EOS %d PAD %d", v.AddBOS, tok.BOS(), tok.EOS(), v.PAD)
		}
		// llama.cpp's end-of-generation set: <|endoftext|>, <|im_end|>, and
		// the FIM pad / repo / file-separator tokens.
		want := []int32{151643, 151645, 151662, 151663, 151664}
		if got := tok.EOGs(); !slices.Equal(got, want) {
			t.Errorf("EOG ids %v, want %v", got, want)
		}
		if tok.IsEOG(151644) || !tok.IsEOG(151645) {
			t.Error("IsEOG wrong for <|im_start|>/<|im_end|>")
		}
		// FIM tokens are user-defined in the file; llama.cpp makes them control.
		if ty := tok.TokenType(151659); ty != tokenizer.TypeControl {
			t.Errorf("<|fim_prefix|> type %d, want control", ty)
		}
		if ty := tok.TokenType(151667); ty != tokenizer.TypeUserDefined {
			t.Errorf("<think> type %d, want user-defined", ty)
		}
	})
}

// TestBPEGolden compares Qwen3 encodings with ids computed independently
// (testdata/gen_bpe_golden.py: Python regex pre-tokenization and the
// textbook BPE loop over the same GGUF vocabulary and merges).
func TestBPEGolden(t *testing.T) {
	tok := loadTok(t, "qwen3-tiny-random.gguf")
	data, err := os.ReadFile("testdata/bpe_qwen3.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Short []struct {
			Text string  `json:"text"`
			IDs  []int32 `json:"ids"`
		} `json:"short"`
		Files []struct {
			File   string `json:"file"`
			Bytes  int    `json:"bytes"`
			Count  int    `json:"count"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	for _, c := range golden.Short {
		if got := tok.Encode(c.Text, false, false); !slices.Equal(got, c.IDs) {
			t.Errorf("Encode(%q)\n got %v\nwant %v", c.Text, got, c.IDs)
		}
	}
	for _, c := range golden.Files {
		text, err := os.ReadFile(sharedFile(t, c.File))
		if err != nil {
			t.Fatal(err)
		}
		if len(text) < c.Bytes {
			t.Fatalf("%s is shorter than %d bytes", c.File, c.Bytes)
		}
		ids := tok.Encode(string(text[:c.Bytes]), false, false)
		buf := make([]byte, 4*len(ids))
		for i, id := range ids {
			binary.LittleEndian.PutUint32(buf[4*i:], uint32(id))
		}
		sum := sha256.Sum256(buf)
		if len(ids) != c.Count || hex.EncodeToString(sum[:]) != c.SHA256 {
			t.Errorf("%s: %d tokens (sha256 %x), golden %d (%s)", c.File, len(ids), sum, c.Count, c.SHA256)
		}
	}
}
