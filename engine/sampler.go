package engine

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SamplerParams choose the next token from logits. The chain runs in
// llama.cpp's order: penalties → top-k → top-p → min-p → temperature →
// draw. Temperature ≤ 0 is greedy (argmax, lowest id on ties), which is
// what the reference outputs use.
type SamplerParams struct {
	Temperature      float32
	TopK             int     // 0 disables
	TopP             float32 // 1 disables
	MinP             float32 // 0 disables
	RepeatPenalty    float32 // 1 disables; > 1 discourages repeats (CTRL-style)
	RepeatLastN      int     // how many recent tokens the penalties look at
	PresencePenalty  float32 // subtracted once from a seen token's logit
	FrequencyPenalty float32 // subtracted per occurrence
	Seed             uint64
}

// DefaultSampler matches llama.cpp's defaults.
func DefaultSampler() SamplerParams {
	return SamplerParams{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1, RepeatLastN: 64}
}

// Validate reports a parameter out of range.
func (p SamplerParams) Validate() error {
	switch {
	case math.IsNaN(float64(p.Temperature)) || p.Temperature < 0:
		return fmt.Errorf("sampler: temperature %g must be ≥ 0", p.Temperature)
	case p.TopK < 0:
		return fmt.Errorf("sampler: top-k %d must be ≥ 0", p.TopK)
	case !(p.TopP > 0 && p.TopP <= 1):
		return fmt.Errorf("sampler: top-p %g must be in (0, 1]", p.TopP)
	case !(p.MinP >= 0 && p.MinP < 1):
		return fmt.Errorf("sampler: min-p %g must be in [0, 1)", p.MinP)
	case !(p.RepeatPenalty > 0):
		return fmt.Errorf("sampler: repeat penalty %g must be > 0", p.RepeatPenalty)
	case p.RepeatLastN < 0:
		return fmt.Errorf("sampler: repeat-last-n %d must be ≥ 0", p.RepeatLastN)
	case math.IsNaN(float64(p.PresencePenalty)) || math.IsNaN(float64(p.FrequencyPenalty)):
		return fmt.Errorf("sampler: penalties must be numbers")
	}
	return nil
}

type candidate struct {
	id    int32
	logit float32
	p     float32
}

// Sampler holds the RNG, the recent-token window and preallocated buffers,
// so sampling allocates nothing per token.
type Sampler struct {
	p       SamplerParams
	rng     *rand.PCG
	rnd     *rand.Rand
	recent  []int32 // ring of the last RepeatLastN accepted tokens
	head    int
	counts  map[int32]int
	cand    []candidate
	scratch []float32
}

// NewSampler builds a sampler for a vocabulary of size vocab.
func NewSampler(p SamplerParams, vocab int) (*Sampler, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	s := &Sampler{
		p:      p,
		rng:    rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15),
		counts: make(map[int32]int),
		cand:   make([]candidate, 0, vocab),
	}
	s.rnd = rand.New(s.rng)
	return s, nil
}

// Reset readies the sampler for a new generation with parameters p,
// reusing its buffers.
func (s *Sampler) Reset(p SamplerParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s.p = p
	s.rng.Seed(p.Seed, p.Seed^0x9e3779b97f4a7c15)
	s.recent = s.recent[:0]
	s.head = 0
	clear(s.counts)
	return nil
}

// Accept records a token (prompt or generated) for the penalties.
func (s *Sampler) Accept(id int32) {
	n := s.p.RepeatLastN
	if n == 0 || (s.p.RepeatPenalty == 1 && s.p.PresencePenalty == 0 && s.p.FrequencyPenalty == 0) {
		return
	}
	if len(s.recent) < n {
		s.recent = append(s.recent, id)
	} else {
		old := s.recent[s.head]
		if s.counts[old]--; s.counts[old] <= 0 {
			delete(s.counts, old)
		}
		s.recent[s.head] = id
		s.head = (s.head + 1) % n
	}
	s.counts[id]++
}

// Sample picks the next token. logits is not modified.
func (s *Sampler) Sample(logits []float32) int32 {
	p := &s.p
	penalize := len(s.counts) > 0
	if p.Temperature <= 0 && !penalize {
		return argmax(logits)
	}
	s.cand = s.cand[:0]
	for i, l := range logits {
		s.cand = append(s.cand, candidate{id: int32(i), logit: l})
	}
	c := s.cand
	if penalize {
		for i := range c {
			n, ok := s.counts[c[i].id]
			if !ok {
				continue
			}
			l := c[i].logit
			if l > 0 {
				l /= p.RepeatPenalty
			} else {
				l *= p.RepeatPenalty
			}
			c[i].logit = l - p.PresencePenalty - float32(n)*p.FrequencyPenalty
		}
	}
	if p.Temperature <= 0 {
		best := 0
		for i := range c {
			if c[i].logit > c[best].logit {
				best = i
			}
		}
		return c[best].id
	}
	// Sort descending by logit (stable on id so equal logits keep id order).
	byLogit := func(a, b candidate) int {
		if r := cmp.Compare(b.logit, a.logit); r != 0 {
			return r
		}
		return cmp.Compare(a.id, b.id)
	}
	if p.TopK > 0 && p.TopK < len(c) {
		c = topK(c, p.TopK, byLogit)
	} else {
		slices.SortFunc(c, byLogit)
	}
	softmax(c, 1)
	if p.TopP < 1 {
		var cum float32
		for i := range c {
			cum += c[i].p
			if cum >= p.TopP {
				c = c[:i+1]
				break
			}
		}
	}
	if p.MinP > 0 {
		th := c[0].p * p.MinP
		for i := 1; i < len(c); i++ {
			if c[i].p < th {
				c = c[:i]
				break
			}
		}
	}
	softmax(c, p.Temperature)
	r := s.rnd.Float32()
	var cum float32
	for i := range c {
		cum += c[i].p
		if r < cum {
			return c[i].id
		}
	}
	return c[len(c)-1].id
}

// softmax sets c[i].p from the logits at temperature t (c is sorted, so the
// first logit is the maximum).
func softmax(c []candidate, t float32) {
	mx := c[0].logit
	var sum float64
	for i := range c {
		e := math.Exp(float64((c[i].logit - mx) / t))
		c[i].p = float32(e)
		sum += e
	}
	for i := range c {
		c[i].p = float32(float64(c[i].p) / sum)
	}
}

// topK moves the k best candidates to the front, sorted, in O(n log k):
// a full sort of a 150k vocabulary per token would cost milliseconds.
func topK(c []candidate, k int, less func(a, b candidate) int) []candidate {
	// c[:k] is kept as a min-heap on "worse first".
	h := c[:k]
	worse := func(i, j int) bool { return less(h[i], h[j]) > 0 }
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= k {
				return
			}
			m := l
			if r := l + 1; r < k && worse(r, l) {
				m = r
			}
			if !worse(m, i) {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for i := k; i < len(c); i++ {
		if less(c[i], h[0]) < 0 {
			h[0] = c[i]
			down(0)
		}
	}
	slices.SortFunc(h, less)
	return h
}

// argmax returns the index of the largest logit, the lowest on ties.
func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}
