package cpu

import (
	"fmt"
	"math"

	"github.com/stokehq/stoke/models/dtype"
)

// KV is one key or value cache: ctx positions × nKVHeads heads × headDim
// values, row-major ([pos][head][i]), held either as float32 or as IEEE 754
// half precision. Exactly one of the two slices is set.
type KV struct {
	F32 []float32
	F16 []uint16 // binary16 bit patterns
}

// Len is the number of values the cache holds.
func (c KV) Len() int {
	if c.F16 != nil {
		return len(c.F16)
	}
	return len(c.F32)
}

// Store writes src, which holds len(src)/width positions of width =
// nKVHeads·headDim values each, into the cache at positions pos, pos+1, …:
// cache[(pos+j)·width + i] = src[j·width + i]. A half-precision cache gets
// the values rounded to nearest even (dtype.F32ToF16). It panics if
// len(src) is not a multiple of width or the positions are outside the
// cache.
func (c KV) Store(pos, width int, src []float32) {
	if width <= 0 || len(src)%width != 0 {
		panic(fmt.Sprintf("cpu: storing %d values in a cache of %d-value positions", len(src), width))
	}
	off := pos * width
	if c.F16 != nil {
		d := c.F16[off : off+len(src)]
		for i, v := range src {
			d[i] = dtype.F32ToF16(v)
		}
		return
	}
	copy(c.F32[off:off+len(src)], src)
}

// Attention computes causal scaled dot-product attention of nTok query
// tokens against a KV cache, with grouped-query heads:
//
//	for token i < nTok at position P = startPos+i, head h < nHeads,
//	with g = h / (nHeads/nKVHeads) and q_ih = q[(i·nHeads+h)·headDim : +headDim]:
//	  s_j = scale · Σ_d q_ih[d] · K[j, g, d]            j = 0..P
//	  p_j = e^{s_j − max s} / Σ_j' e^{s_j' − max s}
//	  out[(i·nHeads+h)·headDim + d] = Σ_j p_j · V[j, g, d]
//
// K and V are the layer's caches (see KV) with positions 0..startPos+nTok−1
// filled (the new tokens' keys and values included). q and out are nTok ×
// nHeads × headDim, token-major, and must not overlap. Scores and
// probabilities are float32 (exponentials by expPoly, within about an
// ulp; silu.go); the softmax denominator is summed in float64. Work is split over
// (token, head) pairs; each worker keeps a score buffer as long as the
// cache's capacity in positions, made on the first call, so later calls
// allocate nothing.
// Inconsistent shapes panic.
func (p *Pool) Attention(out, q []float32, nTok, startPos int, k, v KV, nHeads, nKVHeads, headDim int, scale float32) {
	one := [1]AttnSeq{{Out: out, Q: q, NTok: nTok, Start: startPos, K: k, V: v}}
	longest, pairs := checkAttention(one[:], nHeads, nKVHeads, headDim)
	p.mu.Lock()
	defer p.mu.Unlock()
	// the task keeps its sequences: the pool's array, not the caller's
	// stack, so that nothing escapes
	p.attOne = one
	p.attention(p.attOne[:], pairs, longest, nHeads, nKVHeads, headDim, scale)
	p.attOne = [1]AttnSeq{}
}

// AttnSeq is one sequence of AttentionBatch: Attention's out, q, nTok,
// startPos, k and v.
type AttnSeq struct {
	Out, Q      []float32
	NTok, Start int
	K, V        KV
}

// AttentionBatch is Attention for several sequences with the same heads
// (a batched decode step's), in one pass of the pool over all their
// (token, head) pairs: one wake-up and one wait where a call per
// sequence would take as many. Each sequence's out is the bits Attention
// gives it.
func (p *Pool) AttentionBatch(seqs []AttnSeq, nHeads, nKVHeads, headDim int, scale float32) {
	longest, pairs := checkAttention(seqs, nHeads, nKVHeads, headDim)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attention(seqs, pairs, longest, nHeads, nKVHeads, headDim, scale)
}

// checkAttention panics on inconsistent shapes, and returns the most
// positions any sequence's cache holds and the (token, head) pairs.
func checkAttention(seqs []AttnSeq, nHeads, nKVHeads, headDim int) (longest, pairs int) {
	if nHeads <= 0 || nKVHeads <= 0 || headDim <= 0 || nHeads%nKVHeads != 0 {
		panic(fmt.Sprintf("cpu: Attention with %d heads, %d KV heads of %d values", nHeads, nKVHeads, headDim))
	}
	for _, sq := range seqs {
		if sq.NTok < 0 || sq.Start < 0 {
			panic(fmt.Sprintf("cpu: Attention of %d tokens at %d", sq.NTok, sq.Start))
		}
		checkLen("Attention q", len(sq.Q), sq.NTok*nHeads*headDim)
		checkLen("Attention out", len(sq.Out), len(sq.Q))
		ctx := sq.Start + sq.NTok
		need := ctx * nKVHeads * headDim
		for _, c := range [2]KV{sq.K, sq.V} {
			if (c.F32 == nil) == (c.F16 == nil) {
				panic("cpu: Attention cache must hold exactly one of F32 and F16")
			}
			if c.Len() < need {
				panic(fmt.Sprintf("cpu: Attention cache of %d values is short of %d positions × %d heads × %d", c.Len(), ctx, nKVHeads, headDim))
			}
		}
		pairs += sq.NTok * nHeads
		// scores for as many positions as the cache holds, so that a
		// growing context never reallocates
		longest = max(longest, ctx, sq.K.Len()/(nKVHeads*headDim))
	}
	return longest, pairs
}

// attention runs checked sequences on the pool; p.mu is held.
func (p *Pool) attention(seqs []AttnSeq, pairs, longest, nHeads, nKVHeads, headDim int, scale float32) {
	if pairs == 0 {
		return
	}
	p.growScratch(longest)
	p.attEnds = p.attEnds[:0]
	end := 0
	for _, sq := range seqs {
		end += sq.NTok * nHeads
		p.attEnds = append(p.attEnds, end)
	}
	p.att = attentionTask{
		seqs: seqs, ends: p.attEnds,
		heads: nHeads, group: nHeads / nKVHeads, kvHeads: nKVHeads, hd: headDim,
		scale: scale, scr: p.scr,
	}
	p.run(pairs, 1, nil, &p.att)
	p.att = attentionTask{}
}

type attentionTask struct {
	seqs                      []AttnSeq
	ends                      []int // pairs of seqs[:i+1]
	heads, group, kvHeads, hd int
	scale                     float32
	scr                       [][]float32
}

func (a *attentionTask) RunWorker(id, lo, hi int) {
	hd := a.hd
	stride := a.kvHeads * hd
	sq, first := 0, 0 // the sequence of pair lo, and its first pair
	for lo >= a.ends[sq] {
		first = a.ends[sq]
		sq++
	}
	for g := lo; g < hi; g++ {
		for g >= a.ends[sq] {
			first = a.ends[sq]
			sq++
		}
		seq := &a.seqs[sq]
		pair := g - first
		i, h := pair/a.heads, pair%a.heads
		n := seq.Start + i + 1
		off := (h / a.group) * hd // this KV head's offset within a position
		qv := seq.Q[pair*hd : (pair+1)*hd : (pair+1)*hd]
		o := seq.Out[pair*hd : (pair+1)*hd : (pair+1)*hd]
		s := a.scr[id][:n]

		m := float32(math.Inf(-1))
		if seq.K.F16 != nil {
			for j := range s {
				b := j*stride + off
				s[j] = dotHalf(qv, seq.K.F16[b:b+hd]) * a.scale
			}
		} else {
			attnScores(s, qv, seq.K.F32[off:], stride, a.scale)
		}
		for _, d := range s {
			m = max(m, d)
		}
		expSub(s, m)
		var sum float64
		for _, e := range s {
			sum += float64(e)
		}
		if seq.V.F16 != nil {
			clear(o)
			for j, w := range s {
				b := j*stride + off
				axpyHalf(o, w, seq.V.F16[b:b+hd])
			}
		} else {
			attnValues(o, s, seq.V.F32[off:], stride)
		}
		Scale(o, float32(1/sum))
	}
}

// attnScoresGo sets s[j] = scale·Dot(q, k[j·stride : j·stride+len(q)])
// for j < len(s): the scores of one query against an f32 key cache.
func attnScoresGo(s, q, k []float32, stride int, scale float32) {
	hd := len(q)
	for j := range s {
		b := j * stride
		s[j] = Dot(q, k[b:b+hd]) * scale
	}
}

// attnValuesGo sets o[i] = Σ_j p[j]·v[j·stride + i] for i < len(o), by
// one Axpy per j in order from a zeroed o.
func attnValuesGo(o, p, v []float32, stride int) {
	hd := len(o)
	clear(o)
	for j, w := range p {
		b := j * stride
		Axpy(o, w, v[b:b+hd])
	}
}

// halfToF32 widens a binary16 value; the common normal case without a call.
func halfToF32(h uint16) float32 {
	if e := h & 0x7c00; e != 0 && e != 0x7c00 {
		return math.Float32frombits(uint32(h&0x8000)<<16 | (uint32(h&0x7fff)+0x1c000)<<13)
	}
	return dtype.F16ToF32(h)
}

// dotHalfGeneric returns Σ_i a[i]·halfToF32(b[i]).
func dotHalfGeneric(a []float32, b []uint16) float32 {
	b = b[:len(a)]
	var s0, s1 float32
	i := 0
	for ; i+2 <= len(a); i += 2 {
		s0 += a[i] * halfToF32(b[i])
		s1 += a[i+1] * halfToF32(b[i+1])
	}
	if i < len(a) {
		s0 += a[i] * halfToF32(b[i])
	}
	return s0 + s1
}

// axpyHalfGeneric computes dst[i] += a·halfToF32(x[i]).
func axpyHalfGeneric(dst []float32, a float32, x []uint16) {
	x = x[:len(dst)]
	for i, h := range x {
		dst[i] += a * halfToF32(h)
	}
}
