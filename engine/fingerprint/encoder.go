package fingerprint

import "fmt"

// Encoder builds a proof from the hidden states of a generation, fed one
// token at a time: the prompt's, then each output token's (including the
// last one, so that every claimed token is committed).
type Encoder struct {
	l      layout
	c      *collector
	groups []Group
	x, y   []uint32
	idx    []uint64
	seen   []uint16 // scratch of injectiveModulus
}

// NewEncoder starts a fingerprint of a sequence whose first prompt tokens
// are the prompt, for hidden states of length dim.
func NewEncoder(p Params, dim, prompt int) (*Encoder, error) {
	l := layout{p: p, dim: dim, prompt: prompt, tokens: prompt}
	if err := l.check(); err != nil {
		return nil, err
	}
	e := &Encoder{l: l}
	e.c = newCollector(l, e.commit)
	return e, nil
}

// Add records the next token's hidden state (len dim; the slice is not
// retained).
func (e *Encoder) Add(h []float32) {
	if e.c.n >= MaxTokens {
		panic(fmt.Sprintf("fingerprint: more than %d tokens", MaxTokens))
	}
	e.c.add(h)
}

// Len is the number of tokens recorded.
func (e *Encoder) Len() int { return e.c.n }

// Proof completes the last group and returns the proof of the tokens
// recorded so far. At least the prompt must have been recorded. The
// encoder must not be used afterwards.
func (e *Encoder) Proof() (*Proof, error) {
	if e.c.n < e.l.prompt {
		return nil, fmt.Errorf("fingerprint: %d of %d prompt tokens recorded", e.c.n, e.l.prompt)
	}
	e.c.flush()
	return &Proof{Params: e.l.p, Dim: e.l.dim, Prompt: e.l.prompt, Tokens: e.c.n, Groups: e.groups}, nil
}

// commit turns a group's selected entries into its polynomial.
func (e *Encoder) commit(_ int, sel []entry) {
	var top float32
	e.idx = e.idx[:0]
	for _, s := range sel {
		top = max(top, mag(s.v))
		e.idx = append(e.idx, s.idx)
	}
	exp := scaleExp(top)
	m := injectiveModulus(e.idx, &e.seen)
	dedup := m == 0
	if dedup {
		m = Prime
	}
	e.x, e.y = e.x[:0], e.y[:0]
	var seen map[uint32]bool
	if dedup {
		seen = make(map[uint32]bool, len(sel))
	}
	for _, s := range sel {
		x := uint32(s.idx % uint64(m))
		if dedup {
			// keep the first of colliding entries (a token's larger one)
			if seen[x] {
				continue
			}
			seen[x] = true
		}
		e.x = append(e.x, x)
		e.y = append(e.y, residue(quantize(s.v, exp)))
	}
	coef := interpolate(e.x, e.y)
	if len(coef) < len(sel) {
		coef = append(coef, make([]uint16, len(sel)-len(coef))...)
	}
	e.groups = append(e.groups, Group{Exp: exp, Modulus: uint16(m), Coef: coef})
}
