package fingerprint

import "fmt"

// entry is one kept hidden-state value: its index in the group (t·dim+i)
// and value.
type entry struct {
	idx uint64
	v   float32
}

// mag is |v| with NaN read as 0, so selection is a total order.
func mag(v float32) float32 {
	switch {
	case v < 0:
		return -v
	case v > 0:
		return v
	}
	return 0
}

// better orders entries for selection: larger magnitude first, then lower
// index, so prover and verifier break ties the same way.
func better(a, b entry) bool {
	ma, mb := mag(a.v), mag(b.v)
	if ma != mb {
		return ma > mb
	}
	return a.idx < b.idx
}

// collector splits a stream of hidden states into groups and selects each
// token's entries; done is called with each completed group (the slice is
// reused afterwards).
//
// A token's entries are taken from its hidden state minus the mean of the
// hidden states at all earlier positions (nothing for the first): the
// dimensions that are large for every token (trained models' "massive
// activations") would otherwise fill most of each token's top-k, and a
// token replaced by another would agree with the original there.
type collector struct {
	layout
	n    int // tokens seen
	g    int // current group
	sel  []entry
	done func(g int, sel []entry)
	sum  []float64 // Σ of the hidden states seen
	c    []float32 // the current token, centered
}

func newCollector(l layout, done func(int, []entry)) *collector {
	return &collector{layout: l, done: done}
}

// add takes the next token's hidden state.
func (c *collector) add(h []float32) {
	if len(h) != c.dim {
		panic(fmt.Sprintf("fingerprint: hidden state of length %d, want %d", len(h), c.dim))
	}
	if c.sum == nil {
		c.sum, c.c = make([]float64, c.dim), make([]float32, c.dim)
	}
	inv := 0.0
	if c.n > 0 {
		inv = 1 / float64(c.n)
	}
	for i, v := range h {
		c.c[i] = float32(float64(v) - c.sum[i]*inv)
		c.sum[i] += float64(v)
	}
	start, n := c.span(c.g)
	t := uint64(c.n - start) // token within the group
	c.sel = appendTop(c.sel, c.c, c.perToken(c.g), t*uint64(c.dim))
	c.n++
	if c.n == start+n {
		c.flush()
	}
}

// flush completes the current group (a partial last group at the end).
func (c *collector) flush() {
	if len(c.sel) == 0 {
		return // nothing since the last group
	}
	c.done(c.g, c.sel)
	c.sel = c.sel[:0]
	c.g++
}

// appendTop appends h's k largest-magnitude entries (ties: lower index),
// largest first, with indices base+i.
func appendTop(dst []entry, h []float32, k int, base uint64) []entry {
	at := len(dst)
	thr := float32(-1) // magnitude of the last kept entry, once k are kept
	for i, v := range h {
		m := mag(v)
		if m <= thr {
			continue // a tie loses to the kept entry's lower index
		}
		if len(dst)-at < k {
			dst = append(dst, entry{})
		}
		kept := dst[at:]
		// shift the smaller entries down (dropping the last) and insert
		j := len(kept) - 1
		for ; j > 0 && mag(kept[j-1].v) < m; j-- {
			kept[j] = kept[j-1]
		}
		kept[j] = entry{base + uint64(i), v}
		if len(kept) == k {
			thr = mag(kept[k-1].v)
		}
	}
	return dst
}
