package fingerprint

import (
	"fmt"
	"math"
	"slices"
)

// Tolerances decide when a recomputed fingerprint matches a proof. An
// entry's error is |q_proof − q_verifier| in units of 2^(E−ValueBits) of
// its group's scale 2^E (the group's largest |value| is in [2^(E−1), 2^E)),
// so one unit is 2⁻¹⁵ to 2⁻¹⁴ of the largest value.
type Tolerances struct {
	// Miss: an entry whose error exceeds this many units is a miss.
	// Entries the prover did not keep (the verifier's top-k differs after
	// a near-tie) evaluate to a random field element and are misses, as
	// are values from another token.
	Miss int
	// MaxMiss: the largest fraction of a group's entries that may miss.
	MaxMiss float64
	// MaxMedian: the largest median error (units) of a group's entries.
	// Weights quantized differently shift every value a little: the
	// median catches that where no single entry stands out.
	MaxMedian float64
	// MaxTokenMiss: the largest fraction of one token's entries that may
	// miss; an altered token misses in all of them.
	MaxTokenMiss float64
}

// DefaultTolerances, calibrated with stoke fingerprint-eval on
// stories260K (F32, Q8_0, Q4_0) and a synthetic 3M-parameter Q8_0 llama,
// proofs made by one build and checked by the other of assembly and pure-Go
// kernels (other summation order, no FMA; the honest difference that
// threads, batching and concurrent sequences do not make, since the CPU
// kernels give the same bits for those). Over about 385,000 honest tokens
// the largest group median error was 135 units and the worst token's
// third-largest entry error 260 units; Q4_0 weights served for Q8_0 gave
// group medians of at least 808 units, and a replaced token had at least
// three of its four entries off by more than 512 units in 2,993 of 2,997
// trials (the last position, the hardest: nothing after it changes).
var DefaultTolerances = Tolerances{Miss: 512, MaxMiss: 0.5, MaxMedian: 320, MaxTokenMiss: 0.5}

// ErrBuckets are the upper bounds (inclusive) of Report.ErrHist's buckets;
// the last bucket holds everything larger.
var ErrBuckets = [...]int{0, 1, 3, 7, 15, 31, 63, 127, 255, 1023, 2047}

// Report is the outcome of a verification.
type Report struct {
	OK     bool
	Reason string // why it failed, for people

	Groups, Entries int
	Misses          int     // entries whose error exceeds Tolerances.Miss
	BadTokens       int     // tokens with more than MaxTokenMiss of their entries missing
	WorstMiss       float64 // largest fraction of missing entries in a group
	WorstMedian     float64 // largest median error of a group, in units
	MaxErr          int     // largest error of an entry that is not a miss
	ErrHist         [len(ErrBuckets) + 1]int
}

// fail marks the report failed; the first reason is kept.
func (r *Report) fail(format string, a ...any) {
	r.OK = false
	if r.Reason == "" {
		r.Reason = fmt.Sprintf(format, a...)
	}
}

// Checker recomputes a fingerprint from the verifier's own hidden states,
// fed one token at a time like an Encoder, and compares it with a proof
// group by group.
type Checker struct {
	proof *Proof
	tol   Tolerances
	c     *collector
	r     Report
	done  bool
	errs  []int
	miss  []int // per token of the current group
	trace func(g int, errs []int, token []int)
	tok   []int
}

// Trace makes the checker call f with each group's entry errors (units)
// and each entry's token within the group: raw data for calibrating
// tolerances. The slices are reused after the call.
func (k *Checker) Trace(f func(g int, errs []int, token []int)) { k.trace = f }

// NewChecker prepares the comparison of proof with the hidden states of
// tokens tokens (the first prompt being the prompt) of width dim. A proof
// made with other parameters or for another shape fails at once: Done
// then reports true and no hidden states are needed.
func NewChecker(proof *Proof, want Params, tol Tolerances, dim, prompt, tokens int) *Checker {
	k := &Checker{proof: proof, tol: tol, r: Report{OK: true}}
	switch {
	case proof.Params != want:
		k.r.fail("proof uses %v; the verifier requires %v", proof.Params, want)
	case proof.Dim != dim:
		k.r.fail("proof is for hidden states of width %d; the model's are %d", proof.Dim, dim)
	case proof.Prompt != prompt || proof.Tokens != tokens:
		k.r.fail("proof covers %d prompt + %d output tokens; the claim has %d + %d", proof.Prompt, proof.Tokens-proof.Prompt, prompt, tokens-prompt)
	}
	if !k.r.OK {
		k.done = true
		return k
	}
	k.c = newCollector(proof.layout(), k.compare)
	return k
}

// Done reports whether the outcome is already known (a header mismatch).
func (k *Checker) Done() bool { return k.done }

// Add records the verifier's hidden state of the next token.
func (k *Checker) Add(h []float32) {
	if k.done {
		return
	}
	if k.c.n >= k.proof.Tokens {
		panic("fingerprint: more hidden states than the proof covers")
	}
	k.c.add(h)
}

// Report completes the comparison.
func (k *Checker) Report() Report {
	if !k.done {
		k.done = true
		if k.c.n < k.proof.Tokens {
			k.r.fail("only %d of %d tokens were evaluated", k.c.n, k.proof.Tokens)
		} else {
			k.c.flush()
		}
	}
	return k.r
}

// compare checks group g's recomputed entries against the proof's
// polynomial.
func (k *Checker) compare(g int, sel []entry) {
	gr := &k.proof.Groups[g]
	l := k.c.layout
	start, n := l.span(g)
	n = l.groupTokens(g)
	k.miss = append(k.miss[:0], make([]int, n)...)
	k.errs, k.tok = k.errs[:0], k.tok[:0]
	misses := 0
	for _, e := range sel {
		qp := signed(eval(gr.Coef, uint32(e.idx%uint64(gr.Modulus))))
		qv := quantize(e.v, gr.Exp)
		d := int(math.Abs(float64(qp) - float64(qv)))
		t := int(e.idx / uint64(l.dim))
		k.errs = append(k.errs, d)
		k.tok = append(k.tok, t)
		b, _ := slices.BinarySearch(ErrBuckets[:], d)
		k.r.ErrHist[b]++
		if d > k.tol.Miss {
			misses++
			k.miss[t]++
			continue
		}
		k.r.MaxErr = max(k.r.MaxErr, d)
	}
	k.r.Groups++
	k.r.Entries += len(sel)
	k.r.Misses += misses
	frac := float64(misses) / float64(max(len(sel), 1))
	k.r.WorstMiss = max(k.r.WorstMiss, frac)
	if k.trace != nil {
		k.trace(g, k.errs, k.tok)
	}
	med := median(k.errs)
	k.r.WorstMedian = max(k.r.WorstMedian, med)
	what := "output"
	if l.inPrompt(g) {
		what = "prompt"
	}
	what = fmt.Sprintf("%s positions %d–%d", what, start, start+n-1)
	if frac > k.tol.MaxMiss {
		k.r.fail("%s: %d of %d entries miss by more than %d units (at most %.0f%% may)", what, misses, len(sel), k.tol.Miss, 100*k.tol.MaxMiss)
	}
	if med > k.tol.MaxMedian {
		k.r.fail("%s: median error %.1f units (at most %.1f): the weights or the computation differ", what, med, k.tol.MaxMedian)
	}
	per := l.perToken(g)
	for t, m := range k.miss {
		if float64(m) > k.tol.MaxTokenMiss*float64(per) {
			k.r.BadTokens++
			k.r.fail("position %d: %d of its %d entries miss (the token or its context was changed)", start+t, m, per)
		}
	}
}

// median returns the median of v (reordering it); 0 for none.
func median(v []int) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	h := len(v) / 2
	if len(v)%2 == 1 {
		return float64(v[h])
	}
	return float64(v[h-1]+v[h]) / 2
}
