package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stokehq/stoke/engine/fingerprint"
	"github.com/stokehq/stoke/models/tokenizer"
)

// GenerateParams control one generation.
type GenerateParams struct {
	MaxTokens int      // ≤ 0: until EOS or the context is full
	Stop      []string // generation ends before the first occurrence of any
	IgnoreEOS bool
	Sampler   SamplerParams
	// Fingerprint records a proof of the final hidden states of prompt +
	// output into Result.Fingerprint (Session.VerifyFingerprint checks
	// it). The proof covers the sequence from position 0, so a Session
	// must be empty; the last token is fed once more to commit it.
	Fingerprint bool
}

// Token is one generated token and the text it completes. Text may be
// empty (a token that ends inside a UTF-8 character, or text held back
// because it could be the start of a stop string) and is released later;
// the last Token of a generation may have ID -1: text held back until the
// end, with no token of its own.
type Token struct {
	ID   int32
	Text string
}

// Finish reasons, as OpenAI names them.
const (
	FinishStop   = "stop"   // EOS or a stop string
	FinishLength = "length" // MaxTokens or the context was reached
)

// Result summarises a generation.
type Result struct {
	PromptTokens int
	Tokens       []int32
	Text         string
	Finish       string
	PromptTime   time.Duration // prefill wall time
	DecodeTime   time.Duration // wall time of the generated tokens after the first
	Fingerprint  []byte        // encoded proof of prompt + Tokens, when asked for
}

// PromptTokensPerSecond is the prefill speed.
func (r *Result) PromptTokensPerSecond() float64 {
	return rate(r.PromptTokens, r.PromptTime)
}

// TokensPerSecond is the decode speed (tokens after the first, whose
// logits came from the prefill).
func (r *Result) TokensPerSecond() float64 { return rate(len(r.Tokens)-1, r.DecodeTime) }

func rate(n int, d time.Duration) float64 {
	if n <= 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// generation is the per-sequence state of one generation, shared by
// Session.Generate and the Scheduler: sampling, end-of-generation and stop
// checks, streaming UTF-8 and stop-string hold-back.
type generation struct {
	m       *Model
	p       GenerateParams
	sampler *Sampler
	dec     *tokenizer.StreamDecoder
	st      stopper
	text    strings.Builder
	res     Result
	tDecode time.Time
	done    bool
	fp      *fingerprint.Encoder // nil unless p.Fingerprint
}

func (g *generation) start(m *Model, prompt []int32, p GenerateParams, sm *Sampler) error {
	if len(prompt) == 0 {
		return errors.New("engine: empty prompt")
	}
	if sm == nil {
		var err error
		if sm, err = NewSampler(p.Sampler, m.Config.Vocab); err != nil {
			return err
		}
	} else if err := sm.Reset(p.Sampler); err != nil {
		return err
	}
	for _, t := range prompt {
		sm.Accept(t)
	}
	*g = generation{m: m, p: p, sampler: sm, dec: m.Tok.NewStreamDecoder(), st: stopper{stops: p.Stop}}
	g.res = Result{PromptTokens: len(prompt), Finish: FinishLength}
	return g.startFingerprint(m, len(prompt))
}

// next samples a token from logits. It returns the token to emit (ok false
// when generation ended without one: EOS) and whether generation is over.
// room is false when the cache cannot take another token.
func (g *generation) next(logits []float32, room bool) (tok Token, ok, done bool) {
	id := g.sampler.Sample(logits)
	if !g.p.IgnoreEOS && g.m.Tok.IsEOG(id) {
		g.res.Finish = FinishStop
		g.done = true
		return Token{}, false, true
	}
	g.sampler.Accept(id)
	g.res.Tokens = append(g.res.Tokens, id)
	if len(g.res.Tokens) == 1 {
		g.tDecode = time.Now()
	}
	out, hit := g.st.push(g.dec.Add(id))
	g.text.WriteString(out)
	switch {
	case hit:
		g.res.Finish = FinishStop
		g.done = true
	case g.p.MaxTokens > 0 && len(g.res.Tokens) >= g.p.MaxTokens, !room:
		g.done = true
	}
	return Token{ID: id, Text: out}, true, g.done
}

// finish flushes held text (unless a stop string cut it) and returns the
// result; rest is text not yet emitted.
func (g *generation) finish() (rest string, res *Result) {
	if !g.st.hit {
		r, _ := g.st.push(g.dec.Flush())
		rest = r + g.st.flush()
		g.text.WriteString(rest)
	}
	if !g.tDecode.IsZero() {
		g.res.DecodeTime = time.Since(g.tDecode)
	}
	g.res.Text = g.text.String()
	g.sealFingerprint()
	res = new(Result)
	*res = g.res // a copy: the generation (a scheduler slot's) is reused
	return rest, res
}

// Generate evaluates prompt after whatever the session already holds and
// samples until EOS, a stop string, MaxTokens or a full context. emit (may
// be nil) receives each token as it is produced; an error from emit or a
// cancelled ctx stops generation and is returned with the partial result.
func (s *Session) Generate(ctx context.Context, prompt []int32, p GenerateParams, emit func(Token) error) (*Result, error) {
	if s.pos+len(prompt) >= s.ctx {
		return nil, fmt.Errorf("%w: prompt of %d tokens (+%d cached) leaves no room in a context of %d", ErrContextFull, len(prompt), s.pos, s.ctx)
	}
	if p.Fingerprint && s.pos != 0 {
		return nil, fmt.Errorf("engine: a fingerprinted generation needs an empty session (%d tokens cached; Reset first)", s.pos)
	}
	var g generation
	if err := g.start(s.r.m, prompt, p, nil); err != nil {
		return nil, err
	}
	t0 := time.Now()
	logits, err := s.feed(prompt, g.hidden(), true)
	if err != nil {
		return nil, err
	}
	g.res.PromptTime = time.Since(t0)
	for {
		if err := ctx.Err(); err != nil {
			_, res := g.finish()
			return res, err
		}
		tok, ok, done := g.next(logits, g.room(s.pos, s.ctx))
		if ok && emit != nil {
			if err := emit(tok); err != nil {
				_, res := g.finish()
				return res, err
			}
		}
		if done {
			break
		}
		s.one[0] = tok.ID
		if logits, err = s.feed(s.one[:], g.hidden(), true); err != nil {
			_, res := g.finish()
			return res, err
		}
	}
	if g.fpPending() {
		s.one[0] = g.res.Tokens[len(g.res.Tokens)-1]
		if _, err := s.feed(s.one[:], g.fp, false); err != nil {
			_, res := g.finish()
			return res, err
		}
	}
	rest, res := g.finish()
	if rest != "" && emit != nil {
		if err := emit(Token{ID: -1, Text: rest}); err != nil {
			return res, err
		}
	}
	return res, nil
}

// stopper holds back text that might be the start of a stop string, and
// cuts the output at the first complete stop string.
type stopper struct {
	stops   []string
	pending string
	hit     bool
}

// push adds text; it returns what can be released and whether a stop
// string was found (the stop string and anything after it are dropped).
func (s *stopper) push(t string) (string, bool) {
	if len(s.stops) == 0 {
		return t, false
	}
	s.pending += t
	cut := -1
	for _, st := range s.stops {
		if st == "" {
			continue
		}
		if i := strings.Index(s.pending, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		out := s.pending[:cut]
		s.pending = ""
		s.hit = true
		return out, true
	}
	// keep the longest suffix that is a proper prefix of some stop string
	keep := 0
	for _, st := range s.stops {
		for k := min(len(st)-1, len(s.pending)); k > keep; k-- {
			if strings.HasSuffix(s.pending, st[:k]) {
				keep = k
				break
			}
		}
	}
	out := s.pending[:len(s.pending)-keep]
	s.pending = s.pending[len(s.pending)-keep:]
	return out, false
}

func (s *stopper) flush() string {
	out := s.pending
	s.pending = ""
	return out
}
