package engine

import (
	"github.com/stokehq/stoke/kernels/cpu"
)

// Per-token steps. Between its matrix products, forward runs elementwise
// steps over each token on its own: norms, the residual add, the query
// and key head norms and RoPE, the FFN's activation. For a batch they
// run on the pool's threads, one token per chunk; done in the calling
// goroutine they left the other threads spinning for 12% of an 8-stream
// decode step on the 2-core development machine (pprof of
// BenchmarkSchedulerStreams). Each token's arithmetic is the serial
// code's, so the bits are the same on any thread count.

// tokenStep is one of forward's per-token steps.
type tokenStep int

const (
	stepNorm      tokenStep = iota // xb = norm(x)
	stepResidNorm                  // x += xb2, then xb = norm(x)
	stepQK                         // the head norms and RoPE of q and k
	stepFFNAct                     // hb = act(gate) (⊙ act(up) for dReLU; act(up) ungated), then ⊙ up when mul
)

// tokenTask is a per-token step over forward's buffers, as a cpu.Task.
type tokenTask struct {
	r          *Runner
	step       tokenStep
	normW      []float32 // stepNorm, stepResidNorm: the norm's weight and bias
	normB      []float32
	lv         *layerVecs // stepQK
	mul        bool       // stepFFNAct: then hb ⊙= hb2 (gated, not dReLU)
	x, xb, xb2 []float32
	q, k       []float32
	hb, hb2    []float32
}

func (t *tokenTask) Run(lo, hi int) {
	c := &t.r.m.Config
	d, qd, kvd, ffn := c.Dim, c.QDim(), c.KVDim(), c.FFN
	for i := lo; i < hi; i++ {
		switch t.step {
		case stepResidNorm:
			cpu.AddInPlace(t.x[i*d:(i+1)*d], t.xb2[i*d:(i+1)*d])
			fallthrough
		case stepNorm:
			t.r.norm(t.xb[i*d:(i+1)*d], t.x[i*d:(i+1)*d], t.normW, t.normB, 1)
		case stepQK:
			qi, ki := t.q[i*qd:(i+1)*qd], t.k[i*kvd:(i+1)*kvd]
			if c.QKNorm {
				for h := range c.Heads {
					hq := qi[h*c.HeadDim : (h+1)*c.HeadDim]
					cpu.RMSNorm(hq, hq, t.lv.qNorm, c.NormEps)
				}
				for h := range c.KVHeads {
					hk := ki[h*c.HeadDim : (h+1)*c.HeadDim]
					cpu.RMSNorm(hk, hk, t.lv.kNorm, c.NormEps)
				}
			}
			if r := t.r.rope; r != nil {
				r.Apply(qi, c.Heads, t.r.pos[i])
				r.Apply(ki, c.KVHeads, t.r.pos[i])
			}
		case stepFFNAct:
			h, h2 := t.hb[i*ffn:(i+1)*ffn], t.hb2[i*ffn:(i+1)*ffn]
			switch {
			case !c.Gated:
				copy(h, h2)
				activate(h, c.Act)
			case c.DReLU:
				activate(h, c.Act)
				activate(h2, c.Act)
				cpu.Mul(h, h, h2)
			default:
				activate(h, c.Act)
			}
			if t.mul {
				cpu.Mul(h, h, h2)
			}
		}
	}
}

// eachToken runs r.tok's step over n tokens: on the pool for a batch, in
// this goroutine for one token (where a pass of the pool costs more than
// it saves).
func (r *Runner) eachToken(n int) {
	if n > 1 && r.pool.Threads() > 1 {
		r.pool.Parallel(n, 1, &r.tok)
	} else {
		r.tok.Run(0, n)
	}
	r.tok = tokenTask{r: r}
}

// normTokens sets xb = norm(x) per token (after x += xb2 when resid).
func (r *Runner) normTokens(n int, resid bool, x, xb, xb2, w, b []float32) {
	r.tok = tokenTask{r: r, step: stepNorm, x: x, xb: xb, normW: w, normB: b}
	if resid {
		r.tok.step, r.tok.xb2 = stepResidNorm, xb2
	}
	r.eachToken(n)
}
