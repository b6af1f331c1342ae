package tokenizer

import "fmt"

// spmSpace is SentencePiece's word-boundary mark ▁ (U+2581); it stands for
// a space in piece texts.
const spmSpace = "\u2581"

func (t *Tokenizer) initSPM() {
	// Every pair of adjacent symbols inside some token goes into a bit
	// set: text can be cut between two symbols whose pair is not in it,
	// as no merge will ever join them. A false positive (a hash collision)
	// only costs a missed cut.
	pairs := 0
	for _, s := range t.v.Tokens {
		pairs += len(s)
	}
	bits := uint(16)
	for 1<<bits < 16*pairs && bits < 28 {
		bits++
	}
	t.spmPairs = pairSet{bits: make([]uint64, 1<<(bits-6)), shift: 64 - bits}
	for _, s := range t.v.Tokens {
		prev, has := uint64(0), false
		for off := 0; off < len(s); {
			n := min(utf8Len(s[off]), len(s)-off)
			sym := packSymbol(s[off : off+n])
			if has {
				t.spmPairs.add(prev<<32 | sym)
			}
			prev, has = sym, true
			off += n
		}
	}
	for b := range 256 {
		t.byteTok[b] = -1
		if id, ok := t.ids[fmt.Sprintf("<0x%02X>", b)]; ok {
			t.byteTok[b] = id
		} else if id, ok := t.ids[string([]byte{byte(b)})]; ok {
			t.byteTok[b] = id
		}
	}
}

// utf8Len is the length of the UTF-8 sequence a lead byte announces, read
// from its high nibble as llama.cpp's unicode_len_utf8 does: continuation
// bytes count 1 and F8..FF count 4, so invalid input still splits into
// whole symbols.
func utf8Len(b byte) int {
	switch b >> 4 {
	case 0xC, 0xD:
		return 2
	case 0xE:
		return 3
	case 0xF:
		return 4
	}
	return 1
}

// pairSet is a one-hash Bloom filter of symbol pairs.
type pairSet struct {
	bits  []uint64
	shift uint
}

func (p *pairSet) slot(key uint64) uint64 { return (key * 0x9E3779B97F4A7C15) >> p.shift }

func (p *pairSet) add(key uint64) {
	h := p.slot(key)
	p.bits[h>>6] |= 1 << (h & 63)
}

func (p *pairSet) has(key uint64) bool {
	h := p.slot(key)
	return p.bits[h>>6]&(1<<(h&63)) != 0
}

// packSymbol packs a symbol of up to four bytes into a uint32 (distinct
// symbols may collide; that only costs a missed cut).
func packSymbol[T string | []byte](s T) uint64 {
	var p uint64
	for i := 0; i < len(s); i++ {
		p = p<<8 | uint64(s[i])
	}
	return p & 0xFFFFFFFF
}

// spmSymbol is a run of the escaped text, buf[start:end]; merged-away
// symbols have start == end. prev/next link the live symbols.
type spmSymbol struct {
	start, end int32
	prev, next int32
}

// spmBigram proposes merging symbol left with its right neighbour right
// into a piece of the given score and byte size.
type spmBigram struct {
	left, right int32
	score       float32
	size        int32
}

// spmEncoder holds the scratch of one Encode call.
type spmEncoder struct {
	buf  []byte // the escaped text
	seg  []byte // the segment being merged
	syms []spmSymbol
	heap queue[spmBigram]
	seen map[string]span
	// noCut merges the whole text at once (tests compare the two).
	noCut bool
}

// before orders the SPM queue: highest score first, then leftmost.
func (a spmBigram) before(b spmBigram) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

// tryAdd queues the merge of symbols left and right if their
// concatenation is a piece of the vocabulary.
func (e *spmEncoder) tryAdd(t *Tokenizer, left, right int32) {
	if left < 0 || right < 0 {
		return
	}
	a, b := e.syms[left].start, e.syms[right].end
	id, ok := t.ids[string(e.seg[a:b])]
	if !ok {
		return
	}
	var score float32
	if t.v.Scores != nil {
		score = t.v.Scores[id]
	}
	e.heap.push(spmBigram{left: left, right: right, score: score, size: b - a})
}

// encode appends the SentencePiece tokens of text to out. It follows
// llama.cpp's llm_tokenizer_spm_session: spaces become ▁ (and one is put
// in front when prefix is set), the text is split into UTF-8 characters,
// and the adjacent pair whose concatenation is the highest-scoring piece
// (leftmost on ties) is merged until no pair forms a piece. A final symbol
// that is not a piece is emitted as its bytes' tokens (<0xNN>), or UNK
// where the vocabulary has no byte token.
func (e *spmEncoder) encode(t *Tokenizer, text string, prefix bool, out []int32) []int32 {
	buf := e.buf[:0]
	if prefix {
		buf = append(buf, spmSpace...)
	}
	for i := 0; i < len(text); i++ {
		if text[i] == ' ' {
			buf = append(buf, spmSpace...)
		} else {
			buf = append(buf, text[i])
		}
	}
	e.buf = buf
	if len(buf) == 0 {
		return out
	}
	if len(buf) > 1<<31-1 {
		panic("tokenizer: text fragment over 2 GiB")
	}

	if e.noCut {
		return e.merge(t, buf, out)
	}
	// Cut the text where no token spans two adjacent symbols and merge
	// each segment on its own: the result is the same as merging the
	// whole, as merges in different segments never interact.
	start, prev := 0, uint64(0)
	for off := 0; off < len(buf); {
		n := min(utf8Len(buf[off]), len(buf)-off)
		sym := packSymbol(buf[off : off+n])
		if off > start {
			if !t.spmPairs.has(prev<<32 | sym) {
				out = e.segment(t, buf[start:off], out)
				start = off
			}
		}
		prev = sym
		off += n
	}
	return e.segment(t, buf[start:], out)
}

// segment appends the tokens of seg, one cut of the escaped text,
// remembering the result for repeats within this call.
func (e *spmEncoder) segment(t *Tokenizer, seg []byte, out []int32) []int32 {
	if len(seg) <= cacheMaxWord {
		if e.seen == nil {
			e.seen = make(map[string]span)
		}
		if sp, ok := e.seen[string(seg)]; ok {
			return append(out, out[sp.start:sp.end]...)
		}
		start := len(out)
		out = e.merge(t, seg, out)
		e.seen[string(seg)] = span{int32(start), int32(len(out))}
		return out
	}
	return e.merge(t, seg, out)
}

// merge runs the SentencePiece merges over seg.
func (e *spmEncoder) merge(t *Tokenizer, seg []byte, out []int32) []int32 {
	e.seg = seg
	syms := e.syms[:0]
	for off := 0; off < len(seg); {
		n := min(utf8Len(seg[off]), len(seg)-off)
		k := int32(len(syms))
		syms = append(syms, spmSymbol{start: int32(off), end: int32(off + n), prev: k - 1, next: k + 1})
		off += n
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
		// Skip proposals whose symbols have since been merged.
		if l.start == l.end || r.start == r.end || (l.end-l.start)+(r.end-r.start) != bg.size {
			continue
		}
		l.end = r.end
		r.start = r.end
		l.next = r.next
		if r.next >= 0 {
			e.syms[r.next].prev = bg.left
		}
		e.tryAdd(t, l.prev, bg.left)
		e.tryAdd(t, bg.left, l.next)
	}

	for i := int32(0); i != -1; i = e.syms[i].next {
		s := e.syms[i]
		piece := seg[s.start:s.end]
		if id, ok := t.ids[string(piece)]; ok {
			out = append(out, id)
			continue
		}
		for _, c := range piece {
			switch {
			case t.byteTok[c] >= 0:
				out = append(out, t.byteTok[c])
			case t.v.UNK >= 0:
				out = append(out, t.v.UNK)
			}
		}
	}
	return out
}
