package engine

import (
	"errors"
	"fmt"
	"math"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/models/dtype"
)

// Options configure a session.
type Options struct {
	Threads int        // worker threads; ≤ 0 means all cores
	Context int        // KV cache length in tokens; ≤ 0 means min(model context, DefaultContext)
	KVType  dtype.Type // F32 (default) or F16
	Batch   int        // prefill chunk in tokens; ≤ 0 means DefaultBatch
	Pool    *cpu.Pool  // optional shared pool; Threads is ignored when set
}

const (
	// DefaultContext caps the KV cache when the caller does not ask: models
	// advertise up to 128k tokens, which would cost gigabytes of cache.
	DefaultContext = 4096
	// DefaultBatch is the prefill chunk: large enough that each weight row
	// is reused across many tokens, small enough to keep scratch modest.
	DefaultBatch = 64
)

// ErrContextFull is returned when tokens would not fit in the KV cache.
var ErrContextFull = errors.New("engine: context is full")

// KVCache is one sequence's key/value cache: per layer, K and V for up to
// Context tokens, [ctx][kvHeads·headDim], in F32 or F16.
type KVCache struct {
	ctx      int
	typ      dtype.Type
	kvd      int
	pos      int
	k32, v32 [][]float32
	k16, v16 [][]uint16
}

// NewKVCache allocates a cache of ctx tokens for m.
func (m *Model) NewKVCache(ctx int, typ dtype.Type) (*KVCache, error) {
	c := &m.Config
	if ctx <= 0 || ctx > arch.MaxContext {
		return nil, fmt.Errorf("engine: context %d is out of range [1, %d]", ctx, arch.MaxContext)
	}
	if typ != dtype.F32 && typ != dtype.F16 {
		return nil, fmt.Errorf("engine: KV cache type %s is not supported (f32, f16)", typ)
	}
	// Each layer's arrays are made on its first store: a layer whose
	// attention runs on a device keeps its cache there and never costs
	// host memory.
	kv := &KVCache{ctx: ctx, typ: typ, kvd: c.KVDim()}
	if typ == dtype.F32 {
		kv.k32, kv.v32 = make([][]float32, c.Layers), make([][]float32, c.Layers)
	} else {
		kv.k16, kv.v16 = make([][]uint16, c.Layers), make([][]uint16, c.Layers)
	}
	return kv, nil
}

// KVBytes is the memory a cache of ctx tokens of type typ takes.
func (m *Model) KVBytes(ctx int, typ dtype.Type) int64 {
	return int64(2*m.Config.Layers*ctx*m.Config.KVDim()) * int64(typ.TypeSize())
}

// Pos is the number of tokens in the cache.
func (kv *KVCache) Pos() int { return kv.pos }

// Context is the cache length in tokens.
func (kv *KVCache) Context() int { return kv.ctx }

// Reset empties the cache (the memory is reused).
func (kv *KVCache) Reset() { kv.pos = 0 }

// Truncate drops cached tokens after the first n, so a new prompt sharing
// a prefix with the previous one reuses the cache.
func (kv *KVCache) Truncate(n int) {
	if n < kv.pos {
		kv.pos = max(n, 0)
	}
}

func (kv *KVCache) layer(l int) (k, v cpu.KV) {
	if kv.typ == dtype.F32 {
		return cpu.KV{F32: kv.k32[l]}, cpu.KV{F32: kv.v32[l]}
	}
	return cpu.KV{F16: kv.k16[l]}, cpu.KV{F16: kv.v16[l]}
}

// store writes n tokens' keys and values at positions start.. of layer l.
func (kv *KVCache) store(l, start int, k, v []float32, n int) {
	off := start * kv.kvd
	if kv.typ == dtype.F32 {
		if kv.k32[l] == nil {
			kv.k32[l], kv.v32[l] = make([]float32, kv.ctx*kv.kvd), make([]float32, kv.ctx*kv.kvd)
		}
		copy(kv.k32[l][off:off+n*kv.kvd], k)
		copy(kv.v32[l][off:off+n*kv.kvd], v)
		return
	}
	if kv.k16[l] == nil {
		kv.k16[l], kv.v16[l] = make([]uint16, kv.ctx*kv.kvd), make([]uint16, kv.ctx*kv.kvd)
	}
	kd, vd := kv.k16[l][off:off+n*kv.kvd], kv.v16[l][off:off+n*kv.kvd]
	for i := range kd {
		kd[i] = dtype.F32ToF16(k[i])
		vd[i] = dtype.F32ToF16(v[i])
	}
}

// Seq is one sequence's share of a batched forward pass: its cache, the
// tokens to append, and where its logits go.
type Seq struct {
	KV     *KVCache
	Tokens []int32
	// Logits, if non-nil (len vocab), receives the last token's logits.
	Logits []float32
	// All, if non-nil (len(Tokens)·vocab), receives every token's logits.
	All []float32
	// Hidden, if non-nil, receives every token's final-norm output, in
	// order (the fingerprint's input; see fingerprint.go).
	Hidden HiddenRecorder
	// Decode marks a decode step: one token, fed on its own (a sampled
	// token, or a whole one-token input). With the sparse FFN enabled,
	// decode steps compute only their predicted neurons, in any pass;
	// prompt chunks, even of one token, stay dense.
	Decode bool
}

// Runner runs forward passes: it owns the worker pool and the scratch
// buffers, sized for a batch of tokens that may come from many sequences.
// One decode step of a continuous batch reads each weight once for all
// sequences. A Runner is used by one goroutine at a time.
type Runner struct {
	attSeqs []cpu.AttnSeq // forward's attention batch, reused
	tok     tokenTask     // forward's per-token step (tokens.go)
	m       *Model
	pool    *cpu.Pool
	ownPool bool
	batch   int
	rope    *cpu.RoPE

	// scratch, sized for a batch of tokens
	x, xb, xb2 []float32 // [batch][dim]
	q, att     []float32 // [batch][qdim]
	kx, vx     []float32 // [batch][kvdim]
	hb, hb2    []float32 // [batch][ffn]
	out        []float32 // [rows wanted][vocab], grown on demand
	pos        []int     // per token: absolute position
	hidden     []float32 // [dim]: one final-norm row for Seq.Hidden

	// actThreshold, when set, zeroes FFN activations with |a| ≤ τ_layer
	// (the dense twin of the sparse FFN); recorder sees every FFN input
	// and activation (the profiler).
	actThreshold []float32
	recorder     FFNRecorder
	sparse       *sparseState
	allIdx       []int32      // 0..ffn-1, for dense use of a neuron-major down
	decode       []bool       // per token of the pass, whether it is a decode step (markDecodes)
	xc, xo       []float32    // gatherOthers' rows and their results
	axpy         cpu.AxpyRows // state of the neuron-major down product

	dev    *deviceState // offload to a device (nil: all on the host)
	devErr error        // device failures of the current forward pass
}

// FFNRecorder observes each token's FFN input x (after the norm, len dim)
// and activations a (len ffn: act(gate·x) for gated FFNs, act(up·x)
// otherwise) in every layer; the activation profiler implements it.
type FFNRecorder interface {
	Record(layer int, x, a []float32)
}

// SetRecorder installs (or, with nil, removes) an FFN recorder.
func (r *Runner) SetRecorder(rec FFNRecorder) { r.recorder = rec }

// OnResidual returns rec seeing, as each token's x, the residual stream
// entering the FFN block (before its norm) instead of the normalised
// input: what a PowerInfer file's predictor reads (Sparsity.OnResidual),
// so that such a predictor can be scored on the samples rec keeps.
func OnResidual(rec FFNRecorder) FFNRecorder { return residualRecorder{rec} }

type residualRecorder struct{ FFNRecorder }

// SetActThreshold makes dense FFNs zero activations with |a| ≤ tau[layer]:
// the quality of threshold sparsity, measured without a predictor.
// nil restores exact dense computation.
func (r *Runner) SetActThreshold(tau []float32) error {
	if tau != nil && len(tau) != r.m.Config.Layers {
		return fmt.Errorf("engine: %d activation thresholds for %d layers", len(tau), r.m.Config.Layers)
	}
	r.actThreshold = tau
	return nil
}

// NewRunner makes a runner for batches of up to batch tokens (≤ 0 means
// DefaultBatch). pool may be nil: the runner then starts its own with
// threads workers.
func (m *Model) NewRunner(batch, threads int, pool *cpu.Pool) *Runner {
	c := &m.Config
	if batch <= 0 {
		batch = DefaultBatch
	}
	r := &Runner{m: m, batch: batch, pool: pool}
	if r.pool == nil {
		r.pool = cpu.NewPool(threads)
		r.ownPool = true
	}
	if !c.NoRoPE {
		r.rope = cpu.NewRoPE(cpu.RoPE{
			Dims: c.RoPEDims, HeadDim: c.HeadDim, Base: c.RoPEBase, Scale: c.RoPEScale,
			NeoX: c.RoPE == arch.RoPENeoX, FreqFactors: m.freqFactors,
		})
	}
	for i := range m.W.Layers {
		if m.W.Layers[i].Down == nil && r.allIdx == nil {
			// a file with only the neuron-major down (PowerInfer's): the
			// dense path sums every neuron's row
			r.allIdx = make([]int32, c.FFN)
			for j := range r.allIdx {
				r.allIdx[j] = int32(j)
			}
		}
	}
	r.x = make([]float32, batch*c.Dim)
	r.xb = make([]float32, batch*c.Dim)
	r.xb2 = make([]float32, batch*c.Dim)
	r.q = make([]float32, batch*c.QDim())
	r.att = make([]float32, batch*c.QDim())
	r.kx = make([]float32, batch*c.KVDim())
	r.vx = make([]float32, batch*c.KVDim())
	r.hb = make([]float32, batch*c.FFN)
	r.hb2 = make([]float32, batch*c.FFN)
	r.pos = make([]int, batch)
	return r
}

// Close stops the runner's pool if it owns one.
func (r *Runner) Close() {
	r.DisableOffload()
	if r.ownPool {
		r.pool.Close()
	}
}

// Batch is the most tokens one Forward call takes.
func (r *Runner) Batch() int { return r.batch }

// Pool is the runner's worker pool.
func (r *Runner) Pool() *cpu.Pool { return r.pool }

// Forward appends each sequence's tokens to its cache and computes the
// logits asked for. The total token count must not exceed Batch(); each
// sequence must fit its cache and appear at most once.
func (r *Runner) Forward(seqs []Seq) error {
	n := 0
	v := int32(r.m.Config.Vocab)
	for i := range seqs {
		sq := &seqs[i]
		if len(sq.Tokens) == 0 {
			return errors.New("engine: a sequence has no tokens to evaluate")
		}
		if sq.KV.pos+len(sq.Tokens) > sq.KV.ctx {
			return fmt.Errorf("%w: %d cached + %d new tokens > context %d", ErrContextFull, sq.KV.pos, len(sq.Tokens), sq.KV.ctx)
		}
		for _, t := range sq.Tokens {
			if t < 0 || t >= v {
				return fmt.Errorf("engine: token id %d is out of range [0, %d)", t, v)
			}
		}
		if sq.Logits != nil && len(sq.Logits) != int(v) || sq.All != nil && len(sq.All) != len(sq.Tokens)*int(v) {
			return errors.New("engine: logits buffer has the wrong length")
		}
		n += len(sq.Tokens)
	}
	if n > r.batch {
		return fmt.Errorf("engine: batch of %d tokens exceeds the runner's %d", n, r.batch)
	}
	if n == 0 {
		return errors.New("engine: no tokens to evaluate")
	}
	r.forward(seqs, n)
	if err := r.devErr; err != nil {
		r.devErr = nil
		return err
	}
	return nil
}

// Session is a single sequence with its own runner: the simple API for
// one prompt at a time (CLI, tests, perplexity).
type Session struct {
	*KVCache
	r      *Runner
	seq    [1]Seq
	logits []float32
	all    []float32
	one    [1]int32
}

// NewSession allocates a session's cache and runner.
func (m *Model) NewSession(o Options) (*Session, error) {
	ctx := o.Context
	if ctx <= 0 {
		ctx = min(m.Config.Context, DefaultContext)
	}
	kvt := o.KVType
	if kvt == 0 {
		kvt = dtype.F32
	}
	kv, err := m.NewKVCache(ctx, kvt)
	if err != nil {
		return nil, err
	}
	r := m.NewRunner(o.Batch, o.Threads, o.Pool)
	return &Session{KVCache: kv, r: r, logits: make([]float32, m.Config.Vocab)}, nil
}

// Close releases the session's pool if it owns one.
func (s *Session) Close() { s.r.Close() }

// Runner is the session's runner (for sparsity and profiling settings).
func (s *Session) Runner() *Runner { return s.r }

// Model returns the session's model.
func (s *Session) Model() *Model { return s.r.m }

// Eval feeds tokens at the current position and returns the logits of the
// last one. The returned slice is owned by the session and overwritten by
// the next call.
func (s *Session) Eval(tokens []int32) ([]float32, error) {
	if s.pos+len(tokens) > s.ctx {
		return nil, fmt.Errorf("%w: %d cached + %d new tokens > context %d", ErrContextFull, s.pos, len(tokens), s.ctx)
	}
	if len(tokens) == 0 {
		return nil, errors.New("engine: no tokens to evaluate")
	}
	decode := len(tokens) == 1
	for len(tokens) > 0 {
		n := min(len(tokens), s.r.batch)
		s.seq[0] = Seq{KV: s.KVCache, Tokens: tokens[:n], Decode: decode}
		if n == len(tokens) {
			s.seq[0].Logits = s.logits
		}
		if err := s.r.Forward(s.seq[:]); err != nil {
			return nil, err
		}
		tokens = tokens[n:]
	}
	return s.logits, nil
}

// EvalAll feeds tokens and returns the logits of every one of them, row i
// being the distribution of the token after tokens[i] ([len(tokens)][vocab]).
// Used by perplexity and by verifiers that re-run a claimed output.
func (s *Session) EvalAll(tokens []int32) ([]float32, error) {
	if s.pos+len(tokens) > s.ctx {
		return nil, fmt.Errorf("%w: %d cached + %d new tokens > context %d", ErrContextFull, s.pos, len(tokens), s.ctx)
	}
	v := s.r.m.Config.Vocab
	if cap(s.all) < len(tokens)*v {
		s.all = make([]float32, len(tokens)*v)
	}
	out := s.all[:len(tokens)*v]
	for i := 0; i < len(tokens); {
		n := min(len(tokens)-i, s.r.batch)
		s.seq[0] = Seq{KV: s.KVCache, Tokens: tokens[i : i+n], All: out[i*v : (i+n)*v], Decode: len(tokens) == 1}
		if err := s.r.Forward(s.seq[:]); err != nil {
			return nil, err
		}
		i += n
	}
	if len(tokens) > 0 {
		copy(s.logits, out[(len(tokens)-1)*v:])
	}
	return out, nil
}

// matmul computes dst[i] = W·x[i] for n rows, using the mat-vec kernel for
// a single token so decode streams each weight row exactly once.
func (r *Runner) matmul(dst []float32, w *arch.Tensor, x []float32, n int) {
	if r.deviceMatmul(dst, w, x, n) {
		return
	}
	r.hostMatmul(dst, w, x, n)
}

// matmulShared computes da = A·x, db = B·x and, when C is not nil,
// dc = C·x for the n inputs x: a layer's Q, K and V, or its up and gate.
// Packed matrices take one MatMulPackedSet (the inputs quantized once,
// one pass of the pool); others one matmul each.
func (r *Runner) matmulShared(x []float32, n int, a *arch.Tensor, da []float32, b *arch.Tensor, db []float32, c *arch.Tensor, dc []float32) {
	if a.Packed && b.Packed && b.Type == a.Type && (c == nil || c.Packed && c.Type == a.Type) {
		var ps [3]cpu.Q4x16Product
		ps[0] = cpu.Q4x16Product{Dst: da[:n*a.Rows()], W: a.Data, Rows: a.Rows()}
		ps[1] = cpu.Q4x16Product{Dst: db[:n*b.Rows()], W: b.Data, Rows: b.Rows()}
		k := 2
		if c != nil {
			ps[2] = cpu.Q4x16Product{Dst: dc[:n*c.Rows()], W: c.Data, Rows: c.Rows()}
			k = 3
		}
		if a.Cols() == b.Cols() && (c == nil || c.Cols() == a.Cols()) {
			r.pool.MatMulPackedSet(a.Type, ps[:k], a.Cols(), x[:n*a.Cols()], n)
			return
		}
	}
	r.matmul(da, a, x, n)
	r.matmul(db, b, x, n)
	if c != nil {
		r.matmul(dc, c, x, n)
	}
}

// hostMatmul is matmul on the CPU: the packed drivers for a packed
// matrix, else MatVec for one token and MatMul for more.
func (r *Runner) hostMatmul(dst []float32, w *arch.Tensor, x []float32, n int) {
	rows, cols := w.Rows(), w.Cols()
	if w.Packed {
		ps := [1]cpu.Q4x16Product{{Dst: dst[:n*rows], W: w.Data, Rows: rows}}
		r.pool.MatMulPackedSet(w.Type, ps[:], cols, x[:n*cols], n)
		return
	}
	if n == 1 {
		r.pool.MatVec(dst[:rows], w.Data, w.Type, rows, cols, x[:cols])
		return
	}
	r.pool.MatMul(dst[:n*rows], w.Data, w.Type, rows, cols, x[:n*cols], n)
}

func addBias(x, b []float32, n, width int) {
	if b == nil {
		return
	}
	for i := range n {
		cpu.AddInPlace(x[i*width:(i+1)*width], b)
	}
}

// denseFFN computes layer l's FFN of n tokens (xb: their normalised
// inputs, rows of dim; x: their residuals, which only a recorder reads)
// into out, every neuron (with the activation thresholds, when set), the
// products over all n tokens at once.
func (r *Runner) denseFFN(l, n int, x, xb, out []float32) {
	m := r.m
	c := &m.Config
	lw := &m.W.Layers[l]
	lv := &m.layers[l]
	dim, ffn := c.Dim, c.FFN
	hb, hb2, xb2 := r.hb[:n*ffn], r.hb2[:n*ffn], out[:n*dim]
	if c.Gated {
		r.matmulShared(xb, n, lw.Up, hb2, lw.Gate, hb, nil, nil)
	} else {
		r.matmul(hb2, lw.Up, xb, n)
	}
	addBias(hb2, lv.upB, n, ffn)
	// hb becomes the activation a the profiler and thresholds see:
	// act(gate), act(gate)⊙act(up) for dReLU, act(up) when not gated;
	// with neither looking, the gated product follows at once
	if c.Gated {
		addBias(hb, lv.gateB, n, ffn)
	}
	mulNow := c.Gated && !c.DReLU && r.recorder == nil && r.actThreshold == nil
	r.tok = tokenTask{r: r, step: stepFFNAct, hb: hb, hb2: hb2, mul: mulNow}
	r.eachToken(n)
	if r.recorder != nil {
		in := xb
		if _, ok := r.recorder.(residualRecorder); ok {
			in = x // the residual, which the norm read
		}
		for i := range n {
			r.recorder.Record(l, in[i*dim:(i+1)*dim], hb[i*ffn:(i+1)*ffn])
		}
	}
	if r.actThreshold != nil {
		threshold(hb, r.actThreshold[l])
	}
	if c.Gated && !c.DReLU && !mulNow {
		cpu.Mul(hb, hb, hb2)
	}
	if lw.Down != nil {
		r.matmul(xb2, lw.Down, hb, n)
	} else {
		dt := lw.DownT
		for i := range n {
			r.axpy.Do(r.pool, xb2[i*dim:(i+1)*dim], dt.Data, dt.Type, dim, r.allIdx, hb[i*ffn:(i+1)*ffn])
		}
	}
	addBias(xb2, lv.downB, n, dim)
}

// mixedFFN computes layer l's FFN for a pass that mixes decode steps
// (r.decode) with other tokens: the dense FFN for the others, gathered
// into rows of their own so that no decode step is computed twice, and
// for each decode step its own neurons, through the hybrid executor
// (hybrid) or the sparse FFN, as it would alone.
func (r *Runner) mixedFFN(l, n int, x, xb, out []float32, hybrid bool) {
	dim := r.m.Config.Dim
	lv := &r.m.layers[l]
	dec := r.decode[:n]
	if k := r.gatherOthers(xb, dec); k > 0 {
		r.denseFFN(l, k, nil, r.xc[:k*dim], r.xo[:k*dim])
		r.scatterOthers(out, dec)
	}
	for i, d := range dec {
		xi, xbi, oi := x[i*dim:(i+1)*dim], xb[i*dim:(i+1)*dim], out[i*dim:(i+1)*dim]
		switch {
		case !d:
		case hybrid:
			r.deviceFFN(l, xi, xbi, oi, 1, r.decode[i:i+1])
			if lv.downB != nil {
				cpu.AddInPlace(oi, lv.downB)
			}
		default:
			r.sparseFFN(l, xi, xbi, oi)
		}
	}
}

// gatherOthers copies the rows of xb (rows of dim) that are not decode
// steps (dec[i] false) into r.xc, in order, and returns how many there
// are: the tokens of a mixed pass that compute every neuron, for one
// product over them alone.
func (r *Runner) gatherOthers(xb []float32, dec []bool) int {
	dim := r.m.Config.Dim
	k := 0
	for i, d := range dec {
		if !d {
			if len(r.xc) < r.batch*dim { // on the first such pass
				r.xc, r.xo = make([]float32, r.batch*dim), make([]float32, r.batch*dim)
			}
			copy(r.xc[k*dim:(k+1)*dim], xb[i*dim:(i+1)*dim])
			k++
		}
	}
	return k
}

// scatterOthers copies r.xo's rows, the results for gatherOthers' rows,
// back to those rows of out.
func (r *Runner) scatterOthers(out []float32, dec []bool) {
	dim := r.m.Config.Dim
	k := 0
	for i, d := range dec {
		if !d {
			copy(out[i*dim:(i+1)*dim], r.xo[k*dim:(k+1)*dim])
			k++
		}
	}
}

// markDecodes sets r.decode[i], for the n tokens of seqs (their
// concatenation), to whether token i is a decode step (Seq.Decode), which
// the sparse FFN or the hybrid executor computes on its own, and returns
// how many are.
func (r *Runner) markDecodes(seqs []Seq, n int) int {
	if len(r.decode) < n {
		r.decode = make([]bool, max(n, r.batch))
	}
	k, i := 0, 0
	for _, sq := range seqs {
		dec := sq.Decode && len(sq.Tokens) == 1
		if dec {
			k++
		}
		for range sq.Tokens {
			r.decode[i] = dec
			i++
		}
	}
	return k
}

// forward runs n tokens, the concatenation of seqs' tokens, through the
// model. Matrix products run once over all n tokens; RoPE, the cache and
// attention are per sequence.
func (r *Runner) forward(seqs []Seq, n int) {
	m := r.m
	c := &m.Config
	w := m.W
	dim, qd, kvd := c.Dim, c.QDim(), c.KVDim()

	x := r.x[:n*dim]
	e := w.TokenEmbd
	rb := e.RowBytes()
	i := 0
	for _, sq := range seqs {
		for j, t := range sq.Tokens {
			xi := x[i*dim : (i+1)*dim]
			cpu.DequantizeRow(e.Type, e.Data[int(t)*rb:(int(t)+1)*rb], xi)
			r.pos[i] = sq.KV.pos + j
			if c.PosEmbd {
				// learned absolute position (bounds checked at bind time:
				// the cache never exceeds the table)
				pe := w.PosEmbd
				prb := pe.RowBytes()
				row := r.pos[i] + c.PosOffset
				tmp := r.xb2[:dim]
				cpu.DequantizeRow(pe.Type, pe.Data[row*prb:(row+1)*prb], tmp)
				cpu.AddInPlace(xi, tmp)
			}
			i++
		}
	}
	decodes := 0 // decode steps (r.decode): the sparse FFN's, the executor's
	if (r.sparse != nil || r.dev != nil) && r.recorder == nil {
		decodes = r.markDecodes(seqs, n)
	}
	xb, xb2 := r.xb[:n*dim], r.xb2[:n*dim]
	q, att := r.q[:n*qd], r.att[:n*qd]
	kx, vx := r.kx[:n*kvd], r.vx[:n*kvd]
	scale := float32(1 / math.Sqrt(float64(c.HeadDim)))

	for l := range c.Layers {
		lw := &w.Layers[l]
		lv := &m.layers[l]

		// attention
		if !r.deviceAttention(l, seqs, x, xb2, n) {
			r.normTokens(n, false, x, xb, nil, lv.attnNorm, lv.attnNormB)
			r.matmulShared(xb, n, lw.Q, q, lw.K, kx, lw.V, vx)
			addBias(q, lv.qb, n, qd)
			addBias(kx, lv.kb, n, kvd)
			addBias(vx, lv.vb, n, kvd)
			if c.QKNorm || r.rope != nil {
				r.tok = tokenTask{r: r, step: stepQK, lv: lv, q: q, k: kx}
				r.eachToken(n)
			}
			off := 0
			r.attSeqs = r.attSeqs[:0]
			for _, sq := range seqs {
				k := len(sq.Tokens)
				sq.KV.store(l, sq.KV.pos, kx[off*kvd:(off+k)*kvd], vx[off*kvd:(off+k)*kvd], k)
				kc, vc := sq.KV.layer(l)
				r.attSeqs = append(r.attSeqs, cpu.AttnSeq{Out: att[off*qd : (off+k)*qd], Q: q[off*qd : (off+k)*qd], NTok: k, Start: sq.KV.pos, K: kc, V: vc})
				off += k
			}
			// every sequence's heads in one pass of the pool
			r.pool.AttentionBatch(r.attSeqs, c.Heads, c.KVHeads, c.HeadDim, scale)
			clear(r.attSeqs) // drop the caches' references
			r.matmul(xb2, lw.O, att, n)
			addBias(xb2, lv.ob, n, dim)
		}

		// feed-forward, after the residual add
		r.normTokens(n, true, x, xb, xb2, lv.ffnNorm, lv.ffnNormB)
		var dec []bool // the decode steps, when there are any
		if decodes > 0 {
			dec = r.decode[:n]
		}
		hybrid := r.dev != nil && r.dev.exec.HasHot(l) && r.recorder == nil
		if hybrid && (decodes == n || r.promptsOnDevice(l)) && r.deviceFFN(l, x, xb, xb2, n, dec) {
			addBias(xb2, lv.downB, n, dim)
			cpu.AddInPlace(x, xb2)
			continue
		}
		if decodes == n && r.sparse != nil {
			// every token is a decode step: each its own sparse FFN, the
			// rows tokens share read from cache after the first
			for i := range n {
				r.sparseFFN(l, x[i*dim:(i+1)*dim], xb[i*dim:(i+1)*dim], xb2[i*dim:(i+1)*dim])
			}
			cpu.AddInPlace(x, xb2)
			continue
		}
		if decodes > 0 && (hybrid || r.sparse != nil) {
			r.mixedFFN(l, n, x, xb, xb2, hybrid)
		} else {
			r.denseFFN(l, n, x, xb, xb2)
		}
		cpu.AddInPlace(x, xb2)
	}
	for _, sq := range seqs {
		sq.KV.pos += len(sq.Tokens)
	}

	// Output head, only for the rows whose logits are wanted: gather them
	// into xb (normalised) and run one product, so a batch of sequences
	// reads the (large) output matrix once.
	rows := 0
	off := 0
	for _, sq := range seqs {
		k := len(sq.Tokens)
		if sq.Hidden != nil {
			r.recordHidden(sq.Hidden, x[off*dim:(off+k)*dim], k)
		}
		switch {
		case sq.All != nil:
			r.norm(xb[rows*dim:(rows+k)*dim], x[off*dim:(off+k)*dim], m.outNorm, m.outNormB, k)
			rows += k
		case sq.Logits != nil:
			r.norm(xb[rows*dim:(rows+1)*dim], x[(off+k-1)*dim:(off+k)*dim], m.outNorm, m.outNormB, 1)
			rows++
		}
		off += k
	}
	if rows == 0 {
		return
	}
	vocab := c.Vocab
	if cap(r.out) < rows*vocab {
		r.out = make([]float32, rows*vocab)
	}
	out := r.out[:rows*vocab]
	r.matmul(out, w.Output, xb, rows)
	rows = 0
	for _, sq := range seqs {
		switch {
		case sq.All != nil:
			k := len(sq.Tokens)
			copy(sq.All, out[rows*vocab:(rows+k)*vocab])
			if sq.Logits != nil {
				copy(sq.Logits, out[(rows+k-1)*vocab:(rows+k)*vocab])
			}
			rows += k
		case sq.Logits != nil:
			copy(sq.Logits, out[rows*vocab:(rows+1)*vocab])
			rows++
		}
	}
}

func (r *Runner) norm(dst, x, w, b []float32, n int) {
	c := &r.m.Config
	d := c.Dim
	for i := range n {
		if c.Norm == arch.LayerNorm {
			cpu.LayerNorm(dst[i*d:(i+1)*d], x[i*d:(i+1)*d], w, b, c.NormEps)
		} else {
			cpu.RMSNorm(dst[i*d:(i+1)*d], x[i*d:(i+1)*d], w, c.NormEps)
		}
	}
}

func activate(x []float32, a arch.Act) {
	switch a {
	case arch.SiLU:
		cpu.SiLU(x)
	case arch.GELU:
		cpu.GELU(x)
	case arch.ReLU:
		cpu.ReLU(x)
	}
}

// threshold zeroes activations with |a| ≤ tau: the dense-path twin of the
// sparse FFN's skip.
func threshold(a []float32, tau float32) {
	for i, v := range a {
		if silent(v, tau) {
			a[i] = 0
		}
	}
}

// silent reports whether an activation counts as inactive: |v| ≤ tau. The
// dense threshold and the sparse oracle share it so they select the same
// neurons.
func silent(v, tau float32) bool { return v <= tau && v >= -tau }
