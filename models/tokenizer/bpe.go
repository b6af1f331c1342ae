package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// GPT-2's byte alphabet: every byte is written as one printable character
// so that token texts never hold raw spaces or control bytes. The bytes
// '!'..'~', '¡'..'¬' and '®'..'ÿ' stand for themselves; the other 68, in
// increasing order, become U+0100, U+0101, ... (space is U+0120 'Ġ',
// newline U+010A 'Ċ').
var (
	byteUTF8   [256]string // byte → its character's UTF-8
	runeToByte [324]int16  // character (< U+0144) → byte, -1 if none
)

func init() {
	for i := range runeToByte {
		runeToByte[i] = -1
	}
	n := rune(0)
	for b := range 256 {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE) {
			r = 256 + n
			n++
		}
		byteUTF8[b] = string(r)
		runeToByte[r] = int16(b)
	}
}

// pairKey packs a merge's two token ids.
func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func (t *Tokenizer) initBPE(merges []string) error {
	for b := range 256 {
		t.byteSym[b] = -1
		if id, ok := t.ids[byteUTF8[b]]; ok {
			t.byteSym[b] = id
		}
	}
	t.merges = make(map[uint64]merge, len(merges))
	var buf []byte
	// Vocabularies usually list merge results in rank order (Qwen's merge r
	// makes token 256+r), so the result id is guessed from the last one
	// found and checked before falling back to a lookup.
	guess := 0
	for rank, m := range merges {
		// The split is at the first space after the first byte, as in
		// llama.cpp, so a left half may itself be a space.
		i := -1
		if len(m) > 1 {
			i = strings.IndexByte(m[1:], ' ')
		}
		if i < 0 {
			return fmt.Errorf("tokenizer: merge %d %q is not two pieces separated by a space", rank, m)
		}
		i++
		left, right := m[:i], m[i+1:]
		if right == "" {
			return fmt.Errorf("tokenizer: merge %d %q has an empty right piece", rank, m)
		}
		a, okA := t.ids[left]
		b, okB := t.ids[right]
		if !okA || !okB {
			continue // can never apply: its halves are not tokens
		}
		r, okR := int32(rank+guess), false
		if g := t.v.Tokens; int(r) >= 0 && int(r) < len(g) && len(g[r]) == len(left)+len(right) &&
			g[r][:len(left)] == left && g[r][len(left):] == right {
			okR = true
		} else {
			buf = append(append(buf[:0], left...), right...)
			if r, okR = t.ids[string(buf)]; okR {
				guess = int(r) - rank
			}
		}
		if !okR {
			continue // its result is not a token
		}
		k := pairKey(a, b)
		if _, dup := t.merges[k]; !dup { // the lowest rank wins
			t.merges[k] = merge{rank: int32(rank), result: r}
		}
	}
	return nil
}

// bpeSymbol is one token of a pre-token being merged; dead symbols were
// merged into their left neighbour.
type bpeSymbol struct {
	id         int32
	prev, next int32
	dead       bool
}

// bpeBigram proposes merging symbol left (holding token a) with its right
// neighbour right (holding b) at the merge's rank.
type bpeBigram struct {
	rank        int32
	left, right int32
	a, b        int32
	result      int32
}

// before orders the BPE queue: lowest rank first, then leftmost.
func (x bpeBigram) before(y bpeBigram) bool {
	return x.rank < y.rank || (x.rank == y.rank && x.left < y.left)
}

// bpeEncoder holds the scratch of one Encode call.
type bpeEncoder struct {
	cps    []cpInfo
	bounds []int32
	tmp    []int32
	syms   []bpeSymbol
	heap   queue[bpeBigram]
	word   []byte
	// seen remembers, for this call, where the tokens of each pre-token
	// already encoded are in out: text repeats words a lot.
	seen map[string]span
}

type span struct{ start, end int32 }

// cacheMaxWord is the longest pre-token (in bytes) that is remembered.
const cacheMaxWord = 64

func (e *bpeEncoder) tryAdd(t *Tokenizer, left, right int32) {
	if left < 0 || right < 0 {
		return
	}
	a, b := e.syms[left].id, e.syms[right].id
	if a < 0 || b < 0 {
		return
	}
	m, ok := t.merges[pairKey(a, b)]
	if !ok {
		return
	}
	e.heap.push(bpeBigram{rank: m.rank, left: left, right: right, a: a, b: b, result: m.result})
}

// encode appends the byte-level BPE tokens of text to out: the
// pre-tokenizer splits text, and each piece is encoded on its own.
func (e *bpeEncoder) encode(t *Tokenizer, text string, out []int32) []int32 {
	if cap(e.cps) < len(text)+1 {
		e.cps = make([]cpInfo, 0, len(text)+1)
	}
	e.cps = decodeCodepoints(e.cps[:0], text)
	e.bounds, e.tmp = t.pre.split(e.cps, e.bounds[:0], e.tmp[:0])
	if e.seen == nil && len(e.bounds) > 64 {
		e.seen = make(map[string]span)
	}
	for i := 1; i < len(e.bounds); i++ {
		a, b := e.cps[e.bounds[i-1]].off, e.cps[e.bounds[i]].off
		word := text[a:b]
		if e.seen == nil || len(word) > cacheMaxWord {
			out = e.encodeWord(t, word, out)
			continue
		}
		if sp, ok := e.seen[word]; ok {
			out = append(out, out[sp.start:sp.end]...)
			continue
		}
		start := len(out)
		out = e.encodeWord(t, word, out)
		e.seen[word] = span{int32(start), int32(len(out))}
	}
	return out
}

// encodeWord encodes one pre-token as llama.cpp's llm_tokenizer_bpe_session
// does: each byte becomes the token of its GPT-2 character, then the
// adjacent pair with the lowest merge rank (leftmost on ties) is merged
// until no pair has a merge. With ignoreMerges (LLaMA-3) a pre-token that
// is itself a token is emitted whole.
func (e *bpeEncoder) encodeWord(t *Tokenizer, word string, out []int32) []int32 {
	if len(word) == 0 {
		return out
	}
	if t.ignoreMerges || len(word) == 1 {
		w := e.word[:0]
		for i := 0; i < len(word); i++ {
			w = append(w, byteUTF8[word[i]]...)
		}
		e.word = w
		if id, ok := t.ids[string(w)]; ok {
			return append(out, id)
		}
	}
	syms := e.syms[:0]
	for i := 0; i < len(word); i++ {
		syms = append(syms, bpeSymbol{id: t.byteSym[word[i]], prev: int32(i) - 1, next: int32(i) + 1})
	}
	syms[len(syms)-1].next = -1
	e.syms = syms
	e.heap = e.heap[:0]
	for i := int32(1); i < int32(len(syms)); i++ {
		e.tryAdd(t, i-1, i)
	}
	for len(e.heap) > 0 {
		bg := e.heap.pop()
		l, r := &e.syms[bg.left], &e.syms[bg.right]
		// Skip proposals whose symbols have changed since.
		if l.dead || r.dead || l.id != bg.a || r.id != bg.b {
			continue
		}
		l.id = bg.result
		r.dead = true
		l.next = r.next
		if r.next >= 0 {
			e.syms[r.next].prev = bg.left
		}
		e.tryAdd(t, l.prev, bg.left)
		e.tryAdd(t, bg.left, l.next)
	}
	for i := int32(0); i != -1; i = e.syms[i].next {
		switch id := e.syms[i].id; {
		case id >= 0:
			out = append(out, id)
		case t.v.UNK >= 0:
			// A byte whose character is not in the vocabulary (an
			// incomplete byte-level vocabulary; llama.cpp drops it).
			out = append(out, t.v.UNK)
		}
	}
	return out
}

// decodeBPEText maps a byte-level token text back to its bytes. Characters
// outside the GPT-2 alphabet are kept as their UTF-8.
func decodeBPEText(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if b := runeToByte[c]; b >= 0 {
				dst = append(dst, byte(b))
			} else {
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r < rune(len(runeToByte)) && runeToByte[r] >= 0 && n > 1 {
			dst = append(dst, byte(runeToByte[r]))
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return dst
}
