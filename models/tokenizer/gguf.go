package tokenizer

import (
	"fmt"

	"github.com/stokehq/stoke/models/gguf"
)

// GGUF metadata keys of the tokenizer.
const (
	keyModel     = "tokenizer.ggml.model"
	keyPre       = "tokenizer.ggml.pre"
	keyTokens    = "tokenizer.ggml.tokens"
	keyScores    = "tokenizer.ggml.scores"
	keyTypes     = "tokenizer.ggml.token_type"
	keyMerges    = "tokenizer.ggml.merges"
	keyBOS       = "tokenizer.ggml.bos_token_id"
	keyEOS       = "tokenizer.ggml.eos_token_id"
	keyUNK       = "tokenizer.ggml.unknown_token_id"
	keyPAD       = "tokenizer.ggml.padding_token_id"
	keyAddBOS    = "tokenizer.ggml.add_bos_token"
	keyAddEOS    = "tokenizer.ggml.add_eos_token"
	keyAddPrefix = "tokenizer.ggml.add_space_prefix"
	keyChatTmpl  = "tokenizer.chat_template"
)

// Further ids that end generation (llama.cpp adds them to its EOG set).
var eogKeys = []string{
	"tokenizer.ggml.eot_token_id",
	"tokenizer.ggml.eom_token_id",
	"tokenizer.ggml.fim_pad_token_id",
	"tokenizer.ggml.fim_rep_token_id",
	"tokenizer.ggml.fim_sep_token_id",
}

// VocabFromGGUF reads the tokenizer.ggml.* keys of f into a Vocab with
// llama.cpp's defaults:
//   - SPM: BOS 1, EOS 2, UNK 0 when their keys are absent; BOS is added and
//     a space prefixed unless add_bos_token / add_space_prefix say
//     otherwise;
//   - BPE: no default ids; BOS is added by default only for the LLaMA-3
//     pre-tokenizers (llama-bpe, llama3, ...); no space prefix;
//   - an id key that is absent, or out of range (4294967295 marks "none"),
//     leaves the default;
//   - no scores means all 0, no token types means all normal.
func VocabFromGGUF(f *gguf.File) (Vocab, error) {
	var v Vocab
	model, ok := f.String(keyModel)
	if !ok {
		return v, fmt.Errorf("tokenizer: GGUF has no %s", keyModel)
	}
	v.Model = model
	v.BOS, v.EOS, v.UNK, v.PAD = -1, -1, -1, -1
	switch model {
	case ModelSPM:
		v.BOS, v.EOS, v.UNK = 1, 2, 0
		v.AddBOS = true
		v.AddSpacePrefix = true
	case ModelBPE:
		v.Pre, _ = f.String(keyPre)
		p, err := newPreTokenizer(v.Pre)
		if err != nil {
			return v, err
		}
		v.AddBOS = p.addBOS
		merges, err := f.Strings(keyMerges)
		if err != nil {
			return v, fmt.Errorf("tokenizer: BPE vocabulary without merges: %w", err)
		}
		v.Merges = merges
	default:
		return v, fmt.Errorf("tokenizer: unsupported tokenizer model %q (%s); supported: %q, %q", model, keyModel, ModelSPM, ModelBPE)
	}

	tokens, err := f.Strings(keyTokens)
	if err != nil {
		return v, fmt.Errorf("tokenizer: %w", err)
	}
	v.Tokens = tokens
	n := len(tokens)
	if _, ok := f.Get(keyScores); ok {
		if v.Scores, err = f.Float32s(keyScores); err != nil {
			return v, fmt.Errorf("tokenizer: %w", err)
		}
		if len(v.Scores) < n {
			return v, fmt.Errorf("tokenizer: %d scores for %d tokens", len(v.Scores), n)
		}
		v.Scores = v.Scores[:n]
	}
	if _, ok := f.Get(keyTypes); ok {
		if v.Types, err = f.Int32s(keyTypes); err != nil {
			return v, fmt.Errorf("tokenizer: %w", err)
		}
		if len(v.Types) < n {
			return v, fmt.Errorf("tokenizer: %d token types for %d tokens", len(v.Types), n)
		}
		v.Types = v.Types[:n]
	}

	id := func(key string, def int32) int32 {
		x, ok := f.Uint(key)
		if !ok || x >= uint64(n) {
			return def
		}
		return int32(x)
	}
	v.BOS = id(keyBOS, v.BOS)
	v.EOS = id(keyEOS, v.EOS)
	v.UNK = id(keyUNK, v.UNK)
	v.PAD = id(keyPAD, v.PAD)
	for _, k := range eogKeys {
		if x := id(k, -1); x >= 0 {
			v.EOG = append(v.EOG, x)
		}
	}
	// A default id past the end of a tiny vocabulary is no id.
	for _, p := range []*int32{&v.BOS, &v.EOS, &v.UNK} {
		if int(*p) >= n {
			*p = -1
		}
	}
	if b, ok := f.Bool(keyAddBOS); ok {
		v.AddBOS = b
	}
	if b, ok := f.Bool(keyAddEOS); ok {
		v.AddEOS = b
	}
	if b, ok := f.Bool(keyAddPrefix); ok {
		v.AddSpacePrefix = b
	}
	return v, nil
}

// FromGGUF builds the tokenizer of a GGUF file (see VocabFromGGUF).
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, err
	}
	if v.AddBOS && v.BOS < 0 {
		v.AddBOS = false // llama.cpp would assert; there is nothing to add
	}
	if v.AddEOS && v.EOS < 0 {
		v.AddEOS = false
	}
	return New(v)
}

// ChatTemplate returns the file's tokenizer.chat_template, if any.
func ChatTemplate(f *gguf.File) (string, bool) {
	return f.String(keyChatTmpl)
}
