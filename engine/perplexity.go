package engine

import (
	"context"
	"fmt"
	"math"
)

// PerplexityResult is llama.cpp-compatible perplexity over a text.
type PerplexityResult struct {
	PPL    float64 // exp(mean negative log-likelihood)
	StdErr float64 // standard error of the PPL estimate
	Chunks int
	Scored int // tokens scored
}

// Perplexity scores tokens the way llama.cpp's perplexity tool does, so the
// figures are comparable: the text is cut into chunks of nctx tokens, each
// chunk's first token is replaced by bos (when bos ≥ 0) and evaluated from
// an empty cache, and only the second half of each chunk is scored (every
// scored token sees at least nctx/2 tokens of context). progress, if not
// nil, is called after each chunk.
func (s *Session) Perplexity(ctx context.Context, tokens []int32, nctx int, bos int32, progress func(done, total int)) (PerplexityResult, error) {
	if nctx < 4 || nctx > s.ctx {
		return PerplexityResult{}, fmt.Errorf("engine: perplexity context %d must be in [4, %d]", nctx, s.ctx)
	}
	chunks := len(tokens) / nctx
	if chunks == 0 {
		return PerplexityResult{}, fmt.Errorf("engine: %d tokens is less than one chunk of %d", len(tokens), nctx)
	}
	v := s.r.m.Config.Vocab
	buf := make([]int32, nctx)
	var sum, sum2 float64
	n := 0
	first := nctx / 2
	for c := range chunks {
		if err := ctx.Err(); err != nil {
			return PerplexityResult{}, err
		}
		copy(buf, tokens[c*nctx:(c+1)*nctx])
		if bos >= 0 {
			buf[0] = bos
		}
		s.Reset()
		all, err := s.EvalAll(buf)
		if err != nil {
			return PerplexityResult{}, err
		}
		for i := first; i < nctx-1; i++ {
			nll := -logSoftmaxAt(all[i*v:(i+1)*v], buf[i+1])
			sum += nll
			sum2 += nll * nll
			n++
		}
		if progress != nil {
			progress(c+1, chunks)
		}
	}
	mean := sum / float64(n)
	res := PerplexityResult{PPL: math.Exp(mean), Chunks: chunks, Scored: n}
	if n > 1 {
		variance := (sum2/float64(n) - mean*mean) / float64(n-1)
		if variance > 0 {
			res.StdErr = math.Sqrt(variance) * res.PPL
		}
	}
	return res, nil
}

// logSoftmaxAt returns log p(id) under softmax(logits), in float64.
func logSoftmaxAt(logits []float32, id int32) float64 {
	mx := logits[0]
	for _, l := range logits {
		mx = max(mx, l)
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l - mx))
	}
	return float64(logits[id]-mx) - math.Log(sum)
}
