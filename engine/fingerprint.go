package engine

import (
	"errors"
	"fmt"

	"github.com/stokehq/stoke/engine/fingerprint"
)

// HiddenRecorder receives the final-norm output of each token a Seq
// evaluates (len Dim; the slice is reused after the call), in order:
// fingerprint.Encoder on the prover's side, fingerprint.Checker on the
// verifier's.
type HiddenRecorder interface {
	Add(h []float32)
}

// recordHidden passes the final-norm output of the k tokens whose
// residual streams are the rows of x to h.
func (r *Runner) recordHidden(h HiddenRecorder, x []float32, k int) {
	m := r.m
	dim := m.Config.Dim
	if len(r.hidden) != dim {
		r.hidden = make([]float32, dim)
	}
	for i := range k {
		r.norm(r.hidden, x[i*dim:(i+1)*dim], m.outNorm, m.outNormB, 1)
		h.Add(r.hidden)
	}
}

// Fingerprint parameters and tolerances of this build: provers commit
// with FingerprintParams, and VerifyFingerprint accepts only those.
var (
	FingerprintParams     = fingerprint.DefaultParams
	FingerprintTolerances = fingerprint.DefaultTolerances
)

// startFingerprint makes g record a fingerprint of prompt + output when
// its parameters ask for one.
func (g *generation) startFingerprint(m *Model, promptLen int) error {
	if !g.p.Fingerprint {
		return nil
	}
	enc, err := fingerprint.NewEncoder(FingerprintParams, m.Config.Dim, promptLen)
	if err != nil {
		return err
	}
	g.fp = enc
	return nil
}

// hidden is the recorder for the tokens g feeds (nil without fingerprint).
func (g *generation) hidden() HiddenRecorder {
	if g.fp == nil {
		return nil
	}
	return g.fp
}

// room reports whether the token about to be sampled may be followed by
// another, the cache being at pos of ctx. A fingerprinted generation
// keeps one position free for its final token: the proof commits to the
// hidden state of every token, so the last one is fed too.
func (g *generation) room(pos, ctx int) bool {
	if g.fp != nil {
		return pos+1 < ctx
	}
	return pos < ctx
}

// fpPending reports whether the last generated token still has to be fed
// for the fingerprint (it was not: generation stopped after sampling it).
func (g *generation) fpPending() bool {
	return g.fp != nil && g.fp.Len() < g.res.PromptTokens+len(g.res.Tokens)
}

// sealFingerprint encodes the proof into the result when every token was
// recorded.
func (g *generation) sealFingerprint() {
	if g.fp == nil || g.fp.Len() != g.res.PromptTokens+len(g.res.Tokens) {
		return
	}
	if pr, err := g.fp.Proof(); err == nil {
		g.res.Fingerprint = pr.Encode()
	}
	g.fp = nil
}

// feed evaluates tokens with h recording their hidden states. With logits
// false no logits are computed (the output matrix is not read) and it
// returns nil.
func (s *Session) feed(tokens []int32, h HiddenRecorder, logits bool) ([]float32, error) {
	if h == nil && logits {
		return s.Eval(tokens)
	}
	if s.pos+len(tokens) > s.ctx {
		return nil, fmt.Errorf("%w: %d cached + %d new tokens > context %d", ErrContextFull, s.pos, len(tokens), s.ctx)
	}
	decode := len(tokens) == 1
	for len(tokens) > 0 {
		n := min(len(tokens), s.r.batch)
		s.seq[0] = Seq{KV: s.KVCache, Tokens: tokens[:n], Hidden: h, Decode: decode}
		if logits && n == len(tokens) {
			s.seq[0].Logits = s.logits
		}
		if err := s.r.Forward(s.seq[:]); err != nil {
			return nil, err
		}
		tokens = tokens[n:]
	}
	if !logits {
		return nil, nil
	}
	return s.logits, nil
}

// VerifyFingerprint checks a generation's proof (Result.Fingerprint) by
// re-running prompt + output (output being Result.Tokens) as one batched
// prefill without the output head, recomputing the fingerprint and
// comparing it with the proof within FingerprintTolerances. The session's
// cache is reset and holds prompt + output afterwards. The verifier must
// load the same model file (weights and quantization) the node claims;
// thread count, prefill chunking and kernels may differ.
//
// A proof that does not decode is an error (wrapping
// fingerprint.ErrMalformed); a well-formed proof that does not match (other
// model, weights, prompt or tokens, or other fingerprint parameters) gives
// Report.OK false with the reason.
func (s *Session) VerifyFingerprint(prompt, output []int32, proof []byte) (fingerprint.Report, error) {
	pr, err := fingerprint.Decode(proof)
	if err != nil {
		return fingerprint.Report{}, err
	}
	if len(prompt) == 0 {
		return fingerprint.Report{}, errors.New("engine: empty prompt")
	}
	n := len(prompt) + len(output)
	if n > s.ctx {
		return fingerprint.Report{}, fmt.Errorf("%w: %d prompt + %d output tokens > context %d", ErrContextFull, len(prompt), len(output), s.ctx)
	}
	chk := fingerprint.NewChecker(pr, FingerprintParams, FingerprintTolerances, s.r.m.Config.Dim, len(prompt), n)
	if chk.Done() {
		return chk.Report(), nil
	}
	all := make([]int32, 0, n)
	all = append(append(all, prompt...), output...)
	s.Reset()
	if _, err := s.feed(all, chk, false); err != nil {
		return fingerprint.Report{}, err
	}
	return chk.Report(), nil
}
