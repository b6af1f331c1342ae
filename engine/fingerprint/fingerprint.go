// Package fingerprint commits to a model's final hidden states compactly,
// so that a verifier who re-runs the same tokens can tell whether a
// generation came from the claimed model, weights and prompt.
//
// It follows TOPLOC (Ong et al., arXiv 2501.16007): the prover keeps the
// largest-magnitude entries of the final-norm output and commits to the
// (index, value) pairs as the interpolating polynomial of degree n−1 over
// a prime field, stored by its n coefficients; the indices cost nothing,
// because the verifier evaluates the polynomial at the indices of its own
// largest entries. Stoke differs in three ways:
//
//   - Values are 16-bit fixed point relative to a power-of-two scale shared
//     by the group (15 bits below the scale instead of bfloat16's 7), so an
//     honest re-run agrees to within tens of units while weights quantized
//     differently (Q4_0 served for Q8_0) miss by hundreds.
//   - Every token keeps its own TopK largest entries (PromptTopK for prompt
//     tokens) rather than the group keeping its largest overall, so each
//     token is represented: a single altered token, even the last one or
//     one early in a long prompt, misses in all its entries.
//   - Entries are those of the hidden state minus the running mean of the
//     hidden states before it, so the few dimensions that are large for
//     every token (massive activations) do not fill the top-k: in
//     stories260K three dimensions take half of all raw top-4 places, and
//     a replaced token agreed with the original in them.
//
// Groups: the prompt (positions [0, Prompt)) and the output (positions
// [Prompt, Tokens)) are each cut into groups of Interval tokens, the last
// group of each possibly shorter; a group's entry indices are t·Dim+i for
// entry i of its t-th token.
//
// The package knows nothing of the engine: an Encoder (prover) or a
// Checker (verifier) is fed one hidden-state vector per token, in order.
package fingerprint

import "fmt"

// Params are the fingerprint's sampling parameters. Prover and verifier
// must use the same ones; the proof header carries them.
type Params struct {
	Interval   int // tokens per group (TOPLOC: 32 output tokens)
	TopK       int // entries kept per output token, by magnitude
	PromptTopK int // entries kept per prompt token, by magnitude
}

// DefaultParams: 4 entries per token in groups of 32 (259 bytes a group,
// 8.1 bytes per token, TOPLOC's size for output tokens).
var DefaultParams = Params{Interval: 32, TopK: 4, PromptTopK: 4}

// Limits on every count a proof may carry (the decoder checks them before
// using them).
const (
	Version         = 1
	Magic           = "STFP"
	HeaderSize      = 24
	GroupHeaderSize = 3 // scale exponent (int8), index modulus (uint16)
	MaxDim          = 1 << 16
	MaxTokens       = 1 << 24
	MaxInterval     = 4096
	// MaxGroupEntries bounds the points of one polynomial (Interval·TopK
	// and Interval·PromptTopK), hence the O(n²) interpolation.
	MaxGroupEntries = 1024
)

// Validate reports whether p is usable.
func (p Params) Validate() error {
	switch {
	case p.Interval < 1 || p.Interval > MaxInterval:
		return fmt.Errorf("fingerprint: interval %d is out of range [1, %d]", p.Interval, MaxInterval)
	case p.TopK < 1 || p.Interval*p.TopK > MaxGroupEntries:
		return fmt.Errorf("fingerprint: %d entries per token in groups of %d exceed %d per group", p.TopK, p.Interval, MaxGroupEntries)
	case p.PromptTopK < 1 || p.Interval*p.PromptTopK > MaxGroupEntries:
		return fmt.Errorf("fingerprint: %d entries per prompt token in groups of %d exceed %d per group", p.PromptTopK, p.Interval, MaxGroupEntries)
	}
	return nil
}

func (p Params) String() string {
	return fmt.Sprintf("groups of %d tokens, top-%d per output token, top-%d per prompt token", p.Interval, p.TopK, p.PromptTopK)
}

// layout is the group structure of a fingerprint over tokens positions of
// which the first prompt are the prompt.
type layout struct {
	p              Params
	dim            int
	prompt, tokens int
}

// promptGroups is the number of groups of the prompt.
func (l layout) promptGroups() int { return ceilDiv(l.prompt, l.p.Interval) }

// groups is the number of groups.
func (l layout) groups() int {
	return l.promptGroups() + ceilDiv(l.tokens-l.prompt, l.p.Interval)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// span returns group g's first position and the most tokens it can hold
// (fewer at the end of the prompt; at the end of the output the encoder
// does not know yet, and tokens is the count so far).
func (l layout) span(g int) (start, n int) {
	if pg := l.promptGroups(); g >= pg {
		return l.prompt + (g-pg)*l.p.Interval, l.p.Interval
	}
	start = g * l.p.Interval
	return start, min(l.p.Interval, l.prompt-start)
}

// inPrompt reports whether group g is a prompt group.
func (l layout) inPrompt(g int) bool { return g < l.promptGroups() }

// perToken is the entries kept per token of group g.
func (l layout) perToken(g int) int {
	if l.inPrompt(g) {
		return min(l.p.PromptTopK, l.dim)
	}
	return min(l.p.TopK, l.dim)
}

// groupTokens is the number of tokens in group g of a complete sequence.
func (l layout) groupTokens(g int) int {
	start, n := l.span(g)
	return min(n, l.tokens-start)
}
