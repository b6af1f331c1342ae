// Package verify checks a job's claimed output against a model: the
// spot check that a coordinator, or a node it picks, runs on a sample of
// other nodes' jobs.
//
// With a fingerprint (the node's commitment to its final hidden states,
// see engine/fingerprint) the verifier re-runs prompt + output as one
// prefill and compares encodings (Session.VerifyFingerprint). Without one
// it falls back to a logit check over the same prefill: under greedy
// sampling every claimed token must be the model's argmax (after the
// job's penalties, within a float tolerance); under random sampling every
// claimed token must be one the sampler could have drawn (inside top-k,
// probability above a floor). The logit check catches a different model
// or fabricated tokens but not a quantization swap; fingerprints do.
package verify

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/stokehq/stoke/engine"
)

// Check is one job to verify.
type Check struct {
	Prompt []int32
	Output []int32
	Params engine.GenerateParams
	Proof  []byte // the node's fingerprint; nil when it sent none
}

// Verdict is a check's outcome.
type Verdict struct {
	OK     bool
	Reason string // why it failed (or how it passed)
}

// Verifier checks jobs. An error means the check could not be run (not
// that it failed).
type Verifier interface {
	Verify(ctx context.Context, c Check) (Verdict, error)
}

// Logit-check tolerances.
const (
	// GreedyTolerance: a greedy token's logit may be below the maximum by
	// this much times max(1, |max|) (honest CPU/GPU/batch rounding is
	// orders of magnitude smaller).
	GreedyTolerance = 1e-3
	// MinTokenProb: a sampled token must have at least this probability
	// at the job's temperature.
	MinTokenProb = 1e-6
)

// Engine verifies on a local model with one session, one check at a time.
type Engine struct {
	m       *engine.Model
	opts    engine.Options
	require bool // a proof is required once fingerprints exist

	mu   sync.Mutex
	sess *engine.Session
}

// NewEngine makes a verifier for m; o sizes its session (Context bounds
// prompt + output).
func NewEngine(m *engine.Model, o engine.Options) *Engine {
	return &Engine{m: m, opts: o}
}

// RequireProof makes a missing fingerprint a failed check instead of a
// logit check.
func (v *Engine) RequireProof(on bool) { v.require = on }

// Close frees the session.
func (v *Engine) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.sess != nil {
		v.sess.Close()
		v.sess = nil
	}
}

// Verify re-runs c's prompt and output and judges the claim.
func (v *Engine) Verify(ctx context.Context, c Check) (Verdict, error) {
	if len(c.Prompt) == 0 {
		return Verdict{}, fmt.Errorf("verify: empty prompt")
	}
	if len(c.Output) == 0 {
		return Verdict{OK: true, Reason: "no output"}, nil
	}
	vocab := int32(v.m.Config.Vocab)
	for _, t := range append(c.Prompt[:len(c.Prompt):len(c.Prompt)], c.Output...) {
		if t < 0 || t >= vocab {
			return Verdict{Reason: fmt.Sprintf("token id %d outside the vocabulary", t)}, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return Verdict{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.sess == nil {
		s, err := v.m.NewSession(v.opts)
		if err != nil {
			return Verdict{}, err
		}
		v.sess = s
	}
	s := v.sess
	if n := len(c.Prompt) + len(c.Output); n > s.Context() {
		return Verdict{}, fmt.Errorf("verify: %d tokens do not fit the verifier's context of %d", n, s.Context())
	}
	s.Reset()
	if len(c.Proof) > 0 {
		if vd, ok, err := fingerprintCheck(s, c); ok || err != nil {
			return vd, err
		}
	} else if v.require {
		return Verdict{Reason: "no fingerprint sent"}, nil
	}
	return v.logitCheck(s, c)
}

// logitCheck evaluates prompt and output in one prefill and checks that
// each output token is one the job's sampler could have picked.
func (v *Engine) logitCheck(s *engine.Session, c Check) (Verdict, error) {
	t0 := time.Now()
	n := len(c.Prompt)
	if n > 1 {
		if _, err := s.Eval(c.Prompt[:n-1]); err != nil {
			return Verdict{}, err
		}
	}
	// rows i = 0..len(Output)-1: the distribution of Output[i]
	feed := append([]int32{c.Prompt[n-1]}, c.Output[:len(c.Output)-1]...)
	all, err := s.EvalAll(feed)
	if err != nil {
		return Verdict{}, err
	}
	vocab := v.m.Config.Vocab
	sp := c.Params.Sampler
	pen := newPenalties(sp, c.Prompt)
	row := make([]float32, vocab)
	for i, tok := range c.Output {
		copy(row, all[i*vocab:(i+1)*vocab])
		pen.apply(row)
		if why := judge(row, tok, sp); why != "" {
			return Verdict{Reason: fmt.Sprintf("output token %d (id %d): %s", i, tok, why)}, nil
		}
		pen.accept(tok)
	}
	return Verdict{OK: true, Reason: fmt.Sprintf("logit check of %d tokens in %s", len(c.Output), time.Since(t0).Round(time.Millisecond))}, nil
}

// judge says why tok could not have been sampled from logits ("" if it
// could).
func judge(logits []float32, tok int32, sp engine.SamplerParams) string {
	mx := logits[0]
	for _, l := range logits {
		mx = max(mx, l)
	}
	l := logits[tok]
	if sp.Temperature <= 0 {
		if tol := GreedyTolerance * max(1, float32(math.Abs(float64(mx)))); l < mx-tol {
			return fmt.Sprintf("greedy decoding picks a logit of %.4g, this token has %.4g", mx, l)
		}
		return ""
	}
	if sp.TopK > 0 {
		rank := 0
		for _, x := range logits {
			if x > l {
				rank++
			}
		}
		if rank >= sp.TopK {
			return fmt.Sprintf("rank %d is outside top-k %d", rank, sp.TopK)
		}
	}
	var sum float64
	for _, x := range logits {
		sum += math.Exp(float64((x - mx) / sp.Temperature))
	}
	if p := math.Exp(float64((l-mx)/sp.Temperature)) / sum; p < MinTokenProb {
		return fmt.Sprintf("probability %.3g at temperature %g is below %g", p, sp.Temperature, MinTokenProb)
	}
	return ""
}

// penalties replays the sampler's repeat/presence/frequency penalties.
type penalties struct {
	p      engine.SamplerParams
	on     bool
	recent []int32
	counts map[int32]int
}

func newPenalties(p engine.SamplerParams, prompt []int32) *penalties {
	pn := &penalties{p: p, counts: map[int32]int{}}
	pn.on = p.RepeatLastN > 0 && (p.RepeatPenalty != 1 || p.PresencePenalty != 0 || p.FrequencyPenalty != 0)
	for _, t := range prompt {
		pn.accept(t)
	}
	return pn
}

func (pn *penalties) accept(t int32) {
	if !pn.on {
		return
	}
	pn.recent = append(pn.recent, t)
	pn.counts[t]++
	if len(pn.recent) > pn.p.RepeatLastN {
		old := pn.recent[0]
		pn.recent = pn.recent[1:]
		if pn.counts[old]--; pn.counts[old] <= 0 {
			delete(pn.counts, old)
		}
	}
}

func (pn *penalties) apply(logits []float32) {
	for id, n := range pn.counts {
		l := logits[id]
		if l > 0 {
			l /= pn.p.RepeatPenalty
		} else {
			l *= pn.p.RepeatPenalty
		}
		logits[id] = l - pn.p.PresencePenalty - float32(n)*pn.p.FrequencyPenalty
	}
}
