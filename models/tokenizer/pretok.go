package tokenizer

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Character classes the pre-tokenizer regexes use.
const (
	cL = 1 << iota // \p{L}: letter
	cN             // \p{N}: number
	cS             // \s: Unicode White_Space
	cP             // \p{P}: punctuation
)

// cpInfo is one code point of the text being split: its byte offset, the
// rune (utf8.RuneError for an invalid byte, which stays one byte wide) and
// its classes.
type cpInfo struct {
	off int32
	r   rune
	c   uint8
}

var asciiClass [utf8.RuneSelf]uint8

func init() {
	for r := range rune(utf8.RuneSelf) {
		asciiClass[r] = classOf(r)
	}
}

func classOf(r rune) uint8 {
	var c uint8
	if unicode.IsLetter(r) {
		c |= cL
	}
	if unicode.IsNumber(r) {
		c |= cN
	}
	if unicode.IsSpace(r) { // White_Space, the same set as llama.cpp's is_whitespace
		c |= cS
	}
	if unicode.IsPunct(r) {
		c |= cP
	}
	return c
}

// decodeCodepoints appends text's code points to dst followed by a
// sentinel whose offset is len(text). Invalid bytes become single
// utf8.RuneError code points, so every byte of text belongs to exactly one
// code point and pre-tokens cut at code points keep the original bytes.
func decodeCodepoints(dst []cpInfo, text string) []cpInfo {
	if len(text) > 1<<31-2 {
		panic("tokenizer: text fragment over 2 GiB")
	}
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			dst = append(dst, cpInfo{off: int32(i), r: rune(c), c: asciiClass[c]})
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(text[i:])
		dst = append(dst, cpInfo{off: int32(i), r: r, c: classOf(r)})
		i += n
	}
	return append(dst, cpInfo{off: int32(len(text))})
}

// A matcher is one regex of a pre-tokenizer: the length in code points of
// its match starting at c[i], or 0 for none. c is the chunk being split;
// look-ahead stops at its end.
type matcher func(c []cpInfo, i int) int

// preTokenizer splits text as one of llama.cpp's pre-tokenizer types: a
// sequence of regexes, each splitting every chunk left by the one before
// into its matches and the unmatched gaps between them (llama.cpp's
// unicode_regex_split).
type preTokenizer struct {
	name         string
	stages       []matcher
	ignoreMerges bool // LLaMA-3: a pre-token that is a token is not merged
	addBOS       bool // llama.cpp's add_bos default for this type
}

// The regexes, written out by hand. Alternatives are tried in order and
// the first that matches wins, as in a backtracking regex engine.
var (
	// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
	matchGPT2 matcher = gpt2
	// LLaMA-3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
	matchLlama3 matcher = func(c []cpInfo, i int) int { return llama3(c, i, 3) }
	// Qwen2: the LLaMA-3 regex with \p{N} (one digit at a time).
	matchQwen2 matcher = func(c []cpInfo, i int) int { return llama3(c, i, 1) }
	// [\p{P}\$\+<=>\^~\|]+
	matchPunct matcher = func(c []cpInfo, i int) int { return runOf(c, i, isDefaultPunct) - i }
	// [\p{P}\$\+<=>\^~\|`]+
	matchPunctFalcon matcher = func(c []cpInfo, i int) int {
		return runOf(c, i, func(x cpInfo) bool { return isDefaultPunct(x) || x.r == '`' }) - i
	}
	// \p{N}+
	matchNumbers matcher = func(c []cpInfo, i int) int { return runClass(c, i, cN) - i }
	// \p{N}
	matchNumber matcher = func(c []cpInfo, i int) int {
		if c[i].c&cN != 0 {
			return 1
		}
		return 0
	}
	// [0-9][0-9][0-9]
	matchDigits3 matcher = func(c []cpInfo, i int) int {
		if i+3 <= len(c) && isDigit(c[i].r) && isDigit(c[i+1].r) && isDigit(c[i+2].r) {
			return 3
		}
		return 0
	}
)

// pres maps tokenizer.ggml.pre values to pre-tokenizers; the names and
// regexes are llama.cpp's (llama-vocab.cpp). "gpt2" is accepted as an
// alias of llama.cpp's "gpt-2".
var pres = func() map[string]preTokenizer {
	m := map[string]preTokenizer{}
	add := func(p preTokenizer, names ...string) {
		for _, n := range names {
			p.name = n
			m[n] = p
		}
	}
	gpt2 := []matcher{matchGPT2}
	add(preTokenizer{stages: []matcher{matchPunct, matchGPT2, matchNumbers, matchDigits3}}, "default")
	add(preTokenizer{stages: []matcher{matchLlama3}, ignoreMerges: true, addBOS: true}, "llama3", "llama-v3", "llama-bpe", "falcon3")
	add(preTokenizer{stages: []matcher{matchLlama3}}, "dbrx", "smaug-bpe")
	add(preTokenizer{stages: []matcher{matchQwen2}}, "qwen2", "deepseek-r1-qwen", "stablelm2", "megrez")
	add(preTokenizer{stages: gpt2}, "gpt-2", "gpt2", "phi-2", "roberta-bpe", "gigachat", "mpt", "olmo", "jais")
	add(preTokenizer{stages: []matcher{matchNumber, matchGPT2}}, "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b")
	add(preTokenizer{stages: []matcher{matchPunctFalcon, matchGPT2, matchDigits3}}, "falcon")
	return m
}()

// Pres lists the supported tokenizer.ggml.pre values.
func Pres() []string {
	out := make([]string, 0, len(pres))
	for n := range pres {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func newPreTokenizer(name string) (*preTokenizer, error) {
	if name == "" {
		name = "default" // llama.cpp's fallback for files without tokenizer.ggml.pre
	}
	p, ok := pres[name]
	if !ok {
		return nil, fmt.Errorf("tokenizer: unsupported pre-tokenizer %q (tokenizer.ggml.pre); supported: %s", name, strings.Join(Pres(), ", "))
	}
	p.stages = slices.Clone(p.stages)
	return &p, nil
}

// split partitions cps (ending with decodeCodepoints' sentinel) into
// pre-tokens. It returns their boundaries as code point indices, 0 first
// and the text's length last (nothing for empty text); tmp is scratch.
func (p *preTokenizer) split(cps []cpInfo, bounds, tmp []int32) ([]int32, []int32) {
	n := len(cps) - 1
	if n <= 0 {
		return bounds, tmp
	}
	bounds = append(bounds, 0, int32(n))
	for _, m := range p.stages {
		tmp = append(tmp[:0], 0)
		for k := 1; k < len(bounds); k++ {
			a, b := bounds[k-1], bounds[k]
			chunk := cps[a:b]
			pos, gap := 0, 0
			for pos < len(chunk) {
				l := m(chunk, pos)
				if l <= 0 {
					pos++
					continue
				}
				if gap < pos {
					tmp = append(tmp, a+int32(pos))
				}
				pos += l
				tmp = append(tmp, a+int32(pos))
				gap = pos
			}
			if gap < len(chunk) {
				tmp = append(tmp, b)
			}
		}
		bounds, tmp = tmp, bounds
	}
	return bounds, tmp
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// isDefaultPunct is [\p{P}\$\+<=>\^~\|].
func isDefaultPunct(x cpInfo) bool {
	if x.c&cP != 0 {
		return true
	}
	switch x.r {
	case '$', '+', '<', '=', '>', '^', '~', '|':
		return true
	}
	return false
}

// runOf returns the end of the run of code points from i that satisfy ok.
func runOf(c []cpInfo, i int, ok func(cpInfo) bool) int {
	for i < len(c) && ok(c[i]) {
		i++
	}
	return i
}

// runClass returns the end of the run from i of code points in class.
func runClass(c []cpInfo, i int, class uint8) int {
	for i < len(c) && c[i].c&class != 0 {
		i++
	}
	return i
}

// runOther returns the end of the run from i of [^\s\p{L}\p{N}].
func runOther(c []cpInfo, i int) int {
	for i < len(c) && c[i].c&(cL|cN|cS) == 0 {
		i++
	}
	return i
}

// spaces matches \s+(?!\S)|\s+ at c[i] (a white-space code point): the
// whole run if it ends the chunk or is a single character, otherwise all
// but its last character, which then prefixes the next word.
func spaces(c []cpInfo, i int) int {
	k := runClass(c, i, cS)
	if k == len(c) || k-i == 1 {
		return k - i
	}
	return k - i - 1
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d at c[i] (ASCII letters,
// case-insensitively when fold is set, as llama.cpp's [sS] rewrite of
// (?i:...)).
func contraction(c []cpInfo, i int, fold bool) int {
	if c[i].r != '\'' || i+1 >= len(c) {
		return 0
	}
	lower := func(r rune) rune {
		if fold && r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}
	switch lower(c[i+1].r) {
	case 's', 't', 'm', 'd':
		return 2
	}
	if i+2 < len(c) {
		switch r1, r2 := lower(c[i+1].r), lower(c[i+2].r); {
		case r1 == 'r' && r2 == 'e', r1 == 'v' && r2 == 'e', r1 == 'l' && r2 == 'l':
			return 3
		}
	}
	return 0
}

// gpt2 is GPT-2's regex at c[i].
func gpt2(c []cpInfo, i int) int {
	if l := contraction(c, i, false); l > 0 {
		return l
	}
	j := i
	if c[i].r == ' ' {
		j++ // the optional leading space of the next three alternatives
	}
	if j < len(c) {
		switch x := c[j].c; {
		case x&cL != 0:
			return runClass(c, j, cL) - i
		case x&cN != 0:
			return runClass(c, j, cN) - i
		case x&(cS|cL|cN) == 0:
			return runOther(c, j) - i
		}
	}
	if c[i].c&cS != 0 {
		return spaces(c, i)
	}
	return 0
}

// llama3 is the LLaMA-3 regex at c[i], with \p{N}{1,digits}.
func llama3(c []cpInfo, i, digits int) int {
	if l := contraction(c, i, true); l > 0 {
		return l
	}
	x, r := c[i].c, c[i].r
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if x&cL != 0 {
		return runClass(c, i, cL) - i
	}
	if r != '\r' && r != '\n' && x&cN == 0 && i+1 < len(c) && c[i+1].c&cL != 0 {
		return runClass(c, i+1, cL) - i
	}
	// \p{N}{1,digits}
	if x&cN != 0 {
		k := i + 1
		for k < len(c) && k-i < digits && c[k].c&cN != 0 {
			k++
		}
		return k - i
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	j := i
	if r == ' ' {
		j++
	}
	if j < len(c) && c[j].c&(cS|cL|cN) == 0 {
		k := runOther(c, j)
		for k < len(c) && (c[k].r == '\r' || c[k].r == '\n') {
			k++
		}
		return k - i
	}
	if x&cS == 0 {
		return 1 // not reached: every code point is a letter, number, space or other
	}
	// \s*[\r\n]+ : up to the last line break of the white-space run.
	k, last := i, -1
	for k < len(c) && c[k].c&cS != 0 {
		if c[k].r == '\r' || c[k].r == '\n' {
			last = k
		}
		k++
	}
	if last >= 0 {
		return last + 1 - i
	}
	return spaces(c, i)
}

// Split cuts text into the pre-tokens of the named pre-tokenizer (a
// tokenizer.ggml.pre value, "" for "default"), as byte-level BPE does
// before merging. The pieces concatenate to text.
func Split(pre, text string) ([]string, error) {
	p, err := newPreTokenizer(pre)
	if err != nil {
		return nil, err
	}
	cps := decodeCodepoints(nil, text)
	bounds, _ := p.split(cps, nil, nil)
	out := make([]string, 0, len(bounds))
	for i := 1; i < len(bounds); i++ {
		out = append(out, text[cps[bounds[i-1]].off:cps[bounds[i]].off])
	}
	return out, nil
}
