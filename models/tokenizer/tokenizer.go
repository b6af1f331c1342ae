// Package tokenizer turns text into token ids and back for the two
// vocabulary kinds GGUF files carry: SentencePiece-style BPE over scored
// pieces (tokenizer.ggml.model "llama") and byte-level BPE over ranked merges
// (tokenizer.ggml.model "gpt2"). The results match llama.cpp's
// llama-vocab.cpp token for token; where llama.cpp and Hugging Face differ
// the doc comment says which one is followed.
//
// Encoding runs in three steps:
//
//  1. Special-token partition. Control, user-defined and unknown tokens
//     written in the text are cut out as single ids, longest token text
//     first (llama.cpp's tokenizer_st_partition). User-defined tokens are
//     always cut out; control and unknown ones only with parseSpecial.
//  2. Each remaining text fragment is tokenized on its own: SentencePiece
//     merges adjacent symbols by highest piece score and falls back to
//     <0xNN> byte tokens; byte-level BPE splits the fragment with the
//     pre-tokenizer of tokenizer.ggml.pre, maps each piece's bytes through
//     the GPT-2 byte→unicode table and applies merges by lowest rank.
//  3. BOS/EOS are added when asked and the vocabulary says so.
//
// A Tokenizer is immutable after New and safe for concurrent use.
package tokenizer

import (
	"fmt"
	"slices"
	"strings"
)

// Token types, as tokenizer.ggml.token_type numbers them.
const (
	TypeUndefined   = 0
	TypeNormal      = 1
	TypeUnknown     = 2
	TypeControl     = 3
	TypeUserDefined = 4
	TypeUnused      = 5
	TypeByte        = 6
)

// Vocabulary kinds (tokenizer.ggml.model).
const (
	ModelSPM = "llama" // SentencePiece: scored pieces, ▁ for space, <0xNN> byte fallback
	ModelBPE = "gpt2"  // byte-level BPE: ranked merges over the GPT-2 byte alphabet
)

// Vocab is a vocabulary as GGUF metadata describes it. Ids that are absent
// are -1. New checks it and builds a Tokenizer; FromGGUF fills it from a
// file with llama.cpp's defaults.
type Vocab struct {
	Model string // tokenizer.ggml.model: ModelSPM or ModelBPE
	// Pre is tokenizer.ggml.pre, the pre-tokenizer of a BPE vocabulary
	// (see Pres); "" means "default". Ignored for SPM.
	Pre string

	Tokens []string  // piece text by id
	Scores []float32 // SPM merge priority by id; nil means all 0
	Types  []int32   // Type* by id; nil means all TypeNormal
	Merges []string  // BPE merges "left right"; the rank is the index

	BOS, EOS, UNK, PAD int32 // -1 when absent
	// EOG lists further end-of-generation ids beyond EOS and the ones
	// recognised by their text (tokenizer.ggml.eot_token_id, eom_token_id,
	// fim_pad/fim_rep/fim_sep_token_id). Nil for none.
	EOG []int32

	AddBOS, AddEOS bool
	// AddSpacePrefix puts a space before the text (and after every special
	// token cut out of it) before SentencePiece tokenization
	// (tokenizer.ggml.add_space_prefix; llama.cpp's default is true for SPM).
	AddSpacePrefix bool
}

// Tokenizer encodes and decodes with one vocabulary. Build it with New or
// FromGGUF.
type Tokenizer struct {
	v     Vocab   // a copy; Types adjusted as llama.cpp adjusts them
	types []int32 // effective type per id
	ids   map[string]int32

	spm bool
	pre *preTokenizer // BPE only

	// SPM: the token for byte b (<0xNN>, else the one-byte piece), -1 if none.
	byteTok [256]int32
	// SPM: pairs of adjacent symbols that occur inside a token.
	spmPairs pairSet
	// BPE: the token whose text is byte b's GPT-2 unicode character, -1 if none.
	byteSym      [256]int32
	merges       map[uint64]merge // (left id, right id) → rank and result
	ignoreMerges bool             // try the whole pre-token as one token first (LLaMA-3)

	specials []int32 // control, user-defined and unknown ids, longest text first
	eog      map[int32]bool

	// pieces holds every token's decoded bytes with special=true:
	// token id's are pieces[pieceOff[id]:pieceOff[id+1]].
	pieces   []byte
	pieceOff []uint32
}

type merge struct {
	rank   int32
	result int32
}

// Text markers llama.cpp recognises (llama_vocab::impl::load). Tokens with
// these texts are end-of-generation or fill-in-the-middle tokens and are
// forced to control type.
var (
	eogTexts = []string{
		"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
		"<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
		"<|end_of_text|>", "<end_of_utterance>",
	}
	// Looked for as the EOT token; it also ends generation.
	eotTexts = []string{"<｜end▁of▁sentence｜>", "[EOT]"}
	// FIM pad, repo and file-separator tokens end generation too.
	fimEOGTexts = []string{
		"<|fim_pad|>", "<fim-pad>", "<PAD>",
		"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
		"<|file_sep|>",
	}
	// Other FIM tokens: control type, not end of generation.
	fimTexts = []string{
		"<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>",
		"<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>",
		"<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>",
	}
)

// New checks v and builds its Tokenizer: lengths agree, ids are in range,
// token texts are unique, every merge is "left right". Merges whose halves
// or result are not tokens can never apply and are ignored. An empty token
// text is replaced by "[EMPTY_<id>]", as llama.cpp does.
func New(v Vocab) (*Tokenizer, error) {
	n := len(v.Tokens)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer: vocabulary has no tokens")
	}
	if n > 1<<31-1 {
		return nil, fmt.Errorf("tokenizer: vocabulary of %d tokens is too large", n)
	}
	t := &Tokenizer{v: v}
	switch v.Model {
	case ModelSPM:
		t.spm = true
	case ModelBPE:
		p, err := newPreTokenizer(v.Pre)
		if err != nil {
			return nil, err
		}
		t.pre = p
		t.ignoreMerges = p.ignoreMerges
	default:
		return nil, fmt.Errorf("tokenizer: unsupported tokenizer model %q (supported: %q, %q)", v.Model, ModelSPM, ModelBPE)
	}
	if v.Scores != nil && len(v.Scores) != n {
		return nil, fmt.Errorf("tokenizer: %d scores for %d tokens", len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) != n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(v.Types), n)
	}
	for _, s := range []struct {
		name string
		id   int32
	}{{"BOS", v.BOS}, {"EOS", v.EOS}, {"UNK", v.UNK}, {"PAD", v.PAD}} {
		if s.id < -1 || int(s.id) >= n {
			return nil, fmt.Errorf("tokenizer: %s id %d is outside the vocabulary of %d tokens (use -1 for none)", s.name, s.id, n)
		}
	}
	for _, id := range v.EOG {
		if id < 0 || int(id) >= n {
			return nil, fmt.Errorf("tokenizer: end-of-generation id %d is outside the vocabulary of %d tokens", id, n)
		}
	}
	if v.AddBOS && v.BOS < 0 {
		return nil, fmt.Errorf("tokenizer: AddBOS is set but the vocabulary has no BOS token")
	}
	if v.AddEOS && v.EOS < 0 {
		return nil, fmt.Errorf("tokenizer: AddEOS is set but the vocabulary has no EOS token")
	}

	// Own copies: the caller's slices stay untouched.
	t.v.Tokens = slices.Clone(v.Tokens)
	t.v.Scores = slices.Clone(v.Scores)
	t.v.Merges = nil // kept only as the merge table below
	t.v.EOG = slices.Clone(v.EOG)
	t.types = make([]int32, n)
	if v.Types != nil {
		copy(t.types, v.Types)
	} else {
		for i := range t.types {
			t.types[i] = TypeNormal
		}
	}
	t.v.Types = t.types

	t.ids = make(map[string]int32, n)
	for i, s := range t.v.Tokens {
		if s == "" {
			s = fmt.Sprintf("[EMPTY_%d]", i)
			t.v.Tokens[i] = s
		}
		if j, dup := t.ids[s]; dup {
			return nil, fmt.Errorf("tokenizer: tokens %d and %d have the same text %q", j, i, s)
		}
		t.ids[s] = int32(i)
	}

	t.findEOG()

	if t.spm {
		t.initSPM()
	} else if err := t.initBPE(v.Merges); err != nil {
		return nil, err
	}

	for id, ty := range t.types {
		if ty == TypeControl || ty == TypeUserDefined || ty == TypeUnknown {
			t.specials = append(t.specials, int32(id))
		}
	}
	// Longest text first; equal lengths by id so the order is deterministic.
	slices.SortStableFunc(t.specials, func(a, b int32) int {
		return len(t.v.Tokens[b]) - len(t.v.Tokens[a])
	})

	t.buildPieces()
	return t, nil
}

// findEOG builds the end-of-generation set as llama.cpp does: EOS, the
// explicit extra ids, and every token whose text is a known end-of-turn,
// end-of-text or FIM pad/repo/file-separator marker. Tokens recognised by
// text (FIM prefix/suffix/middle included) are forced to control type.
func (t *Tokenizer) findEOG() {
	t.eog = make(map[int32]bool)
	mark := func(texts []string, eog bool) {
		for _, s := range texts {
			id, ok := t.ids[s]
			if !ok {
				continue
			}
			if t.types[id] != TypeControl {
				t.types[id] = TypeControl
			}
			if eog {
				t.eog[id] = true
			}
		}
	}
	mark(eogTexts, true)
	mark(eotTexts, true)
	mark(fimEOGTexts, true)
	mark(fimTexts, false)
	if t.v.EOS >= 0 {
		t.eog[t.v.EOS] = true
	}
	for _, id := range t.v.EOG {
		t.eog[id] = true
	}
}

// Vocab returns a copy of the vocabulary (with llama.cpp's type
// adjustments applied; Merges is nil).
func (t *Tokenizer) Vocab() Vocab {
	v := t.v
	v.Tokens = slices.Clone(t.v.Tokens)
	v.Scores = slices.Clone(t.v.Scores)
	v.Types = slices.Clone(t.types)
	v.EOG = slices.Clone(t.v.EOG)
	return v
}

// VocabSize is the number of token ids.
func (t *Tokenizer) VocabSize() int { return len(t.v.Tokens) }

// BOS is the beginning-of-sequence id, -1 if none.
func (t *Tokenizer) BOS() int32 { return t.v.BOS }

// EOS is the end-of-sequence id, -1 if none.
func (t *Tokenizer) EOS() int32 { return t.v.EOS }

// UNK is the unknown-token id, -1 if none.
func (t *Tokenizer) UNK() int32 { return t.v.UNK }

// PAD is the padding id, -1 if none.
func (t *Tokenizer) PAD() int32 { return t.v.PAD }

// AddBOS reports whether Encode with addSpecial prepends BOS.
func (t *Tokenizer) AddBOS() bool { return t.v.AddBOS }

// AddEOS reports whether Encode with addSpecial appends EOS.
func (t *Tokenizer) AddEOS() bool { return t.v.AddEOS }

// IsEOG reports whether id ends generation: EOS, EOT/EOM and the other
// end-of-turn tokens llama.cpp recognises (<|im_end|>, <|endoftext|>,
// <|eot_id|>, <end_of_turn>, ...).
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// EOGs returns the end-of-generation ids in increasing order.
func (t *Tokenizer) EOGs() []int32 {
	out := make([]int32, 0, len(t.eog))
	for id := range t.eog {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// TokenText is the vocabulary text of id ("▁the", "Ġthe", "<0x0A>",
// "<|im_end|>"), "" for an id outside the vocabulary.
func (t *Tokenizer) TokenText(id int32) string {
	if id < 0 || int(id) >= len(t.v.Tokens) {
		return ""
	}
	return t.v.Tokens[id]
}

// TokenType is id's type (Type*), after llama.cpp's adjustments (tokens
// with end-of-turn or FIM texts become TypeControl); TypeUndefined for an
// id outside the vocabulary.
func (t *Tokenizer) TokenType(id int32) int32 {
	if id < 0 || int(id) >= len(t.types) {
		return TypeUndefined
	}
	return t.types[id]
}

// ID returns the id whose vocabulary text is exactly s.
func (t *Tokenizer) ID(s string) (int32, bool) {
	id, ok := t.ids[s]
	return id, ok
}

// Encode tokenizes text. With addSpecial, BOS and EOS are added as the
// vocabulary's AddBOS/AddEOS say. With parseSpecial, control and unknown
// tokens written in the text (<|im_start|>, <s>) become their single ids;
// user-defined tokens (type 4) always do, as in llama.cpp and Hugging Face.
// Text that is not valid UTF-8 is encoded losslessly (as bytes) and never
// panics; only a single text fragment over 2 GiB is refused with a panic.
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) []int32 {
	return t.encode(text, addSpecial, parseSpecial, false)
}

func (t *Tokenizer) encode(text string, addSpecial, parseSpecial, noCut bool) []int32 {
	out := make([]int32, 0, len(text)/3+4)
	if addSpecial && t.v.AddBOS {
		out = append(out, t.v.BOS)
	}
	frags := t.partition(text, parseSpecial)
	if t.spm {
		e := spmEncoder{noCut: noCut}
		prevSpecial := true // the first fragment gets the space prefix
		for _, f := range frags {
			if f.tok >= 0 {
				out = append(out, f.tok)
				prevSpecial = true
				continue
			}
			out = e.encode(t, text[f.start:f.end], t.v.AddSpacePrefix && prevSpecial, out)
			prevSpecial = false
		}
	} else {
		var e bpeEncoder
		for _, f := range frags {
			if f.tok >= 0 {
				out = append(out, f.tok)
				continue
			}
			out = e.encode(t, text[f.start:f.end], out)
		}
	}
	if addSpecial && t.v.AddEOS {
		out = append(out, t.v.EOS)
	}
	return out
}

// fragment is a piece of the input: a special token (tok ≥ 0) or the text
// text[start:end] (tok = -1).
type fragment struct {
	tok        int32
	start, end int
}

// partition cuts the special tokens out of text, as llama.cpp's
// tokenizer_st_partition: for each special token, longest first, every
// non-overlapping occurrence in each remaining text fragment, left to
// right, becomes a token fragment.
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	if text == "" {
		return nil
	}
	frags := []fragment{{tok: -1, start: 0, end: len(text)}}
	var next []fragment
	for _, id := range t.specials {
		ty := t.types[id]
		if !parseSpecial && (ty == TypeControl || ty == TypeUnknown) {
			continue
		}
		s := t.v.Tokens[id]
		if !strings.Contains(text, s) {
			continue
		}
		next = next[:0]
		for _, f := range frags {
			if f.tok >= 0 {
				next = append(next, f)
				continue
			}
			pos := f.start
			for pos < f.end {
				i := strings.Index(text[pos:f.end], s)
				if i < 0 {
					break
				}
				if i > 0 {
					next = append(next, fragment{tok: -1, start: pos, end: pos + i})
				}
				next = append(next, fragment{tok: id})
				pos += i + len(s)
			}
			if pos < f.end {
				next = append(next, fragment{tok: -1, start: pos, end: f.end})
			}
		}
		frags, next = next, frags
	}
	return frags
}
