// Package bench measures Stoke the way benchmarkers measure inference
// engines: prompt processing (pp) and text generation (tg) tokens/s, as
// llama.cpp's llama-bench reports them, so the two can be run on the same
// file and thread count and compared as a ratio.
package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/stokehq/stoke/engine"
)

// Options choose one throughput measurement.
type Options struct {
	Threads   int
	PromptLen int // pp: tokens prefilled in one batch (0 skips pp)
	GenLen    int // tg: tokens decoded one at a time (0 skips tg)
	Repeat    int // measured repetitions after one warm-up (default 3)
	// NoMmap tells llama-bench that the model is read into memory rather
	// than mapped (-mmp 0), as Stoke's --no-mmap loads it; the caller
	// loads Stoke's model.
	NoMmap bool
	// Sparse, when set, runs the tg test with the sparse FFN
	// (engine.Runner.EnableSparse; prefill stays dense, as in generation).
	Sparse *engine.Sparsity
}

// Result is one measurement: median and spread over the repetitions.
type Result struct {
	Test      string    `json:"test"` // "pp128", "tg64"
	Threads   int       `json:"threads"`
	Tokens    int       `json:"tokens"`
	TokPerSec float64   `json:"tokens_per_s"` // median
	StdDev    float64   `json:"stddev"`
	Samples   []float64 `json:"samples"`
	// ActivePercent is, for a sparse tg test, the share of FFN neurons the
	// decode steps computed.
	ActivePercent float64 `json:"active_percent,omitempty"`
}

// Throughput runs llama-bench's two tests on m: pp (a PromptLen-token
// prompt in one batched pass from an empty cache) and tg (GenLen decode
// steps, one token each, after a one-token prompt).
func Throughput(m *engine.Model, o Options) ([]Result, error) {
	s, err := m.NewSession(engine.Options{Threads: o.Threads, Context: o.Context(), Batch: max(o.PromptLen, 1)})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if o.Sparse != nil {
		if err := s.Runner().EnableSparse(*o.Sparse); err != nil {
			return nil, err
		}
	}
	res, err := throughput(context.Background(), s, o, nil)
	if a, p := s.Runner().SparseStats(); err == nil && p > 0 {
		for i := range res {
			if strings.HasPrefix(res[i].Test, "tg") {
				res[i].ActivePercent = 100 * float64(a) / float64(p)
			}
		}
	}
	return res, err
}

// Context is the KV positions a measurement needs: the prompt, or the
// one-token prompt and the generated tokens, plus one.
func (o Options) Context() int { return max(o.PromptLen, o.GenLen+1) + 1 }

// throughput runs the pp and tg tests on s until ctx is done; aroundTG, when set, is called
// with false just before the tg test (warm-up included) and with true
// right after it, so a caller can read counters over the decode steps.
func throughput(ctx context.Context, s *engine.Session, o Options, aroundTG func(done bool)) ([]Result, error) {
	if o.Repeat <= 0 {
		o.Repeat = 3
	}
	m := s.Model()
	o.Threads = s.Runner().Pool().Threads()
	// Token ids as llama-bench uses them: arbitrary but valid ids.
	tok := func(i int) int32 { return int32((i*7919 + 13) % m.Config.Vocab) }
	var out []Result
	if o.PromptLen > 0 {
		prompt := make([]int32, o.PromptLen)
		for i := range prompt {
			prompt[i] = tok(i)
		}
		r, err := measure(ctx, o.Repeat, func() (int, error) {
			s.Reset()
			_, err := s.Eval(prompt)
			return len(prompt), err
		})
		if err != nil {
			return nil, err
		}
		r.Test, r.Threads = fmt.Sprintf("pp%d", o.PromptLen), o.Threads
		out = append(out, r)
	}
	if o.GenLen > 0 {
		if aroundTG != nil {
			aroundTG(false)
		}
		one := make([]int32, 1)
		r, err := measure(ctx, o.Repeat, func() (int, error) {
			s.Reset()
			for i := range o.GenLen {
				one[0] = tok(i)
				if _, err := s.Eval(one); err != nil {
					return 0, err
				}
			}
			return o.GenLen, nil
		})
		if err != nil {
			return nil, err
		}
		if aroundTG != nil {
			aroundTG(true)
		}
		r.Test, r.Threads = fmt.Sprintf("tg%d", o.GenLen), o.Threads
		out = append(out, r)
	}
	return out, nil
}

// measure runs f once to warm up, then repeat times, and summarises. It
// stops with ctx's error before any run once ctx is done.
func measure(ctx context.Context, repeat int, f func() (int, error)) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if _, err := f(); err != nil {
		return Result{}, err
	}
	var r Result
	for range repeat {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		t0 := time.Now()
		n, err := f()
		if err != nil {
			return Result{}, err
		}
		r.Tokens = n
		r.Samples = append(r.Samples, float64(n)/time.Since(t0).Seconds())
	}
	r.TokPerSec, r.StdDev = medianStd(r.Samples)
	return r, nil
}

func medianStd(x []float64) (median, std float64) {
	s := slices.Clone(x)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0, 0
	}
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	var mean float64
	for _, v := range s {
		mean += v
	}
	mean /= float64(n)
	for _, v := range s {
		std += (v - mean) * (v - mean)
	}
	if n > 1 {
		std = math.Sqrt(std / float64(n-1))
	}
	return median, std
}
