package engine

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/offload"
	"github.com/stokehq/stoke/predictor"
)

// deviceState is a runner's share of a device: the plan's arena, the
// matrices resident there, and the hybrid FFN executor.
type deviceState struct {
	dev     kernels.Backend
	plan    *offload.Plan
	arena   kernels.Buffer
	weights map[*arch.Tensor]kernels.Buffer // matrices the device multiplies
	exec    *offload.Executor
	in, out kernels.Buffer // matmul scratch: inputs and outputs
	inCap   int            // floats
	outCap  int
	logits  kernels.Buffer // output head scratch (nil when the head stays on the host)
	logCap  int

	// device attention: per layer (nil when it runs on the host), the
	// scratch rows it uses, the RoPE, and each KV cache's slot in the
	// plan's per-layer caches
	attn                []*devAttn
	x, xb, q, k, v, att kernels.Buffer
	o                   kernels.Buffer
	rope                *kernels.RoPE
	slots               map[*KVCache]int
	segs                []segment

	// the file's predictor, per layer, where the plan put it (nil: on the
	// host), the hidden-layer scratch, and how many predictions ran here
	pred        []*devPred
	predH       kernels.Buffer
	predictions int64
}

// devPred is one layer's predictor (a PowerInfer file's blk.N.fc1 and
// fc2) resident on the device.
type devPred struct {
	fc1, fc2 *arch.Tensor
	w1, w2   kernels.Buffer
}

// devAttn is one layer's attention on the device.
type devAttn struct {
	norm, normB, qNorm, kNorm kernels.Buffer
	q, k, v, o                *arch.Tensor
	qb, kb, vb, ob            kernels.Buffer
	kc, vc                    kernels.Buffer // Seqs × Context positions each
}

// segment is a run of one sequence's tokens in a device trip.
type segment struct {
	seq, first, n int // seqs index, first token (within the batch), count
	tok           int // first token's index in the sequence's Tokens
}

// EnableOffload puts the plan's share of the model on dev: it allocates
// the plan's arena (plan.TotalBytes, nothing else), uploads the attention
// matrices of the layers the plan marks, the output head when it does,
// and every layer's hot neurons, and from then on runs those parts on the
// device. With no hot neurons in a layer, its FFN stays on the runner's
// own CPU path, dense or sparse.
//
// What runs where: matrices resident on the device multiply there (the
// activations go up, the products come back); norms, RoPE, attention over
// the KV cache and the residual stream stay on the host; a layer's FFN is
// split by the executor, the device computing the active hot neurons while
// the host computes the active cold ones.
func (r *Runner) EnableOffload(dev kernels.Backend, plan *offload.Plan) error {
	m := r.m
	c := &m.Config
	if m.packed > 0 {
		return errPacked
	}
	if len(plan.Layers) != c.Layers {
		return fmt.Errorf("engine: plan for %d layers, model has %d", len(plan.Layers), c.Layers)
	}
	r.DisableOffload()
	arena, err := dev.Alloc(plan.TotalBytes)
	if err != nil {
		return fmt.Errorf("engine: allocating the plan's %d device bytes: %w", plan.TotalBytes, err)
	}
	d := &deviceState{dev: dev, plan: plan, arena: arena, weights: map[*arch.Tensor]kernels.Buffer{}}
	fail := func(err error) error {
		dev.Free(arena)
		return err
	}
	region := func(name string) (kernels.Buffer, error) {
		g, ok := plan.Region(name)
		if !ok {
			return nil, fmt.Errorf("engine: the plan has no region %q", name)
		}
		if g.Offset+g.Bytes > arena.Len() {
			return nil, fmt.Errorf("engine: region %q lies outside the %d-byte arena", name, arena.Len())
		}
		return arena.Slice(g.Offset, g.Bytes), nil
	}
	resident := func(t *arch.Tensor) error {
		if t == nil {
			return nil
		}
		if !dev.Supports(t.Type) {
			return nil // stays on the host; the plan still holds its bytes
		}
		b, err := region(t.Name)
		if err != nil {
			return err
		}
		if int64(len(t.Data)) > b.Len() {
			return fmt.Errorf("engine: %s has %d bytes, its region %d", t.Name, len(t.Data), b.Len())
		}
		dev.Upload(b, t.Data)
		d.weights[t] = b
		return nil
	}
	for l, lp := range plan.Layers {
		if !lp.Attn {
			continue
		}
		lw := &m.W.Layers[l]
		for _, t := range []*arch.Tensor{lw.Q, lw.K, lw.V, lw.O} {
			if err := resident(t); err != nil {
				return fail(err)
			}
		}
	}
	if err := d.setupPredictors(m, resident, region); err != nil {
		return fail(err)
	}
	if plan.Output {
		if err := resident(m.W.Output); err != nil {
			return fail(err)
		}
		if d.logits, err = region("scratch.logits"); err != nil {
			return fail(err)
		}
		d.logCap = int(d.logits.Len() / 4)
	}
	if len(d.weights) > 0 {
		if d.in, err = region("scratch.h1"); err != nil {
			return fail(err)
		}
		if d.out, err = region("scratch.h2"); err != nil {
			return fail(err)
		}
		d.inCap, d.outCap = int(d.in.Len()/4), int(d.out.Len()/4)
	}
	if err := d.setupAttention(m, region); err != nil {
		return fail(err)
	}
	if err := dev.Sync(); err != nil {
		return fail(fmt.Errorf("engine: uploading weights: %w", err))
	}
	ffns, err := m.offloadFFNs()
	if err != nil {
		return fail(err)
	}
	if d.exec, err = offload.NewExecutor(dev, r.pool, plan, ffns, c.Dim, arena); err != nil {
		return fail(err)
	}
	r.dev = d
	return nil
}

// setupPredictors uploads the predictors the plan puts on the device
// (a layer's fc1 and fc2 both, in types the device multiplies, or
// neither) and takes the scratch their hidden layer uses.
func (d *deviceState) setupPredictors(m *Model, resident func(*arch.Tensor) error, region func(string) (kernels.Buffer, error)) error {
	d.pred = make([]*devPred, len(m.W.Layers))
	placed := false
	for l, lp := range d.plan.Layers {
		lw := &m.W.Layers[l]
		if !lp.Predictor || lw.FC1 == nil || lw.FC2 == nil || !d.dev.Supports(lw.FC1.Type) || !d.dev.Supports(lw.FC2.Type) {
			continue
		}
		if err := resident(lw.FC1); err != nil {
			return err
		}
		if err := resident(lw.FC2); err != nil {
			return err
		}
		d.pred[l] = &devPred{fc1: lw.FC1, fc2: lw.FC2, w1: d.weights[lw.FC1], w2: d.weights[lw.FC2]}
		placed = true
	}
	if !placed {
		d.pred = nil
		return nil
	}
	var err error
	d.predH, err = region("scratch.pred")
	return err
}

// DisableOffload frees the device arena and runs everything on the host.
func (r *Runner) DisableOffload() {
	if r.dev == nil {
		return
	}
	r.dev.dev.Free(r.dev.arena)
	r.dev = nil
}

// OffloadStats returns the hybrid FFN counters (zero without offload).
func (r *Runner) OffloadStats() offload.Stats {
	if r.dev == nil {
		return offload.Stats{}
	}
	return r.dev.exec.Stats()
}

// offloadFFNs describes every layer's FFN for the executor, over the
// neuron-major down the sparse path uses.
func (m *Model) offloadFFNs() ([]offload.FFN, error) {
	c := &m.Config
	downT, err := m.neuronMajorDown()
	if err != nil {
		return nil, err
	}
	mat := func(t *arch.Tensor) offload.Matrix {
		if t == nil {
			return offload.Matrix{}
		}
		return offload.Matrix{Type: t.Type, Data: t.Data, Rows: t.Rows(), Cols: t.Cols()}
	}
	out := make([]offload.FFN, c.Layers)
	for l := range out {
		lw := &m.W.Layers[l]
		lv := &m.layers[l]
		f := offload.FFN{Up: mat(lw.Up), DownT: mat(downT[l]), UpB: lv.upB, DReLU: c.DReLU, Act: kernelAct(c.Act)}
		if c.Gated {
			f.Gate, f.GateB = mat(lw.Gate), lv.gateB
		}
		out[l] = f
	}
	return out, nil
}

func kernelAct(a arch.Act) kernels.Act {
	switch a {
	case arch.SiLU:
		return kernels.ActSiLU
	case arch.GELU:
		return kernels.ActGELU
	case arch.ReLU:
		return kernels.ActReLU
	}
	return kernels.ActNone
}

// deviceMatmul computes dst = W·x for n rows on the device if W is
// resident there; it reports false when it is not.
func (r *Runner) deviceMatmul(dst []float32, w *arch.Tensor, x []float32, n int) bool {
	d := r.dev
	if d == nil {
		return false
	}
	b, ok := d.weights[w]
	if !ok {
		return false
	}
	rows, cols := w.Rows(), w.Cols()
	out, outCap := d.out, d.outCap
	if w == r.m.W.Output && d.logits != nil {
		out, outCap = d.logits, d.logCap
	}
	// as many rows per trip as the scratch holds
	step := min(n, d.inCap/cols, outCap/rows)
	if step < 1 {
		return false
	}
	for i := 0; i < n; i += step {
		k := min(step, n-i)
		d.dev.Upload(d.in, f32Bytes(x[i*cols:(i+k)*cols]))
		d.dev.MatMul(out, b, w.Type, rows, cols, d.in, k)
		d.dev.Download(f32Bytes(dst[i*rows:(i+k)*rows]), out)
		if err := d.dev.Sync(); err != nil {
			r.devErr = errors.Join(r.devErr, fmt.Errorf("engine: %s on the device: %w", w.Name, err))
			return true
		}
	}
	return true
}

// promptsOnDevice reports whether the tokens of a pass that compute
// every neuron of layer l (prompt tokens, and every token when there is
// no predictor) go through the hybrid executor, all of them together
// (Executor.RunAll), rather than through the CPU's dense FFN: when the
// host holds under promptColdShare of the layer's neurons. The executor's
// host half reads its cold rows once per token, where the dense FFN reads
// every row once for the pass and computes the tokens together with the
// multi-input kernels. Token by token through the executor, a 64-token
// prompt on the 1B model with a plan that left most neurons on the host
// prefilled at half the CPU's dense rate. (A pass of decode steps alone
// always takes the executor, which puts the device's neurons to use.) The
// choice depends only on the plan, not on the pass, so a token's result
// is the same whichever tokens share its pass.
func (r *Runner) promptsOnDevice(l int) bool {
	return float64(r.dev.exec.Cold(l)) < promptColdShare*float64(r.m.Config.FFN)
}

// promptColdShare: see promptsOnDevice. Per token the executor's host
// half reads its cold rows, cold·B bytes of a layer of B; the CPU's dense
// FFN of a long prompt is bound by its arithmetic, on the development
// machine about a fifth of a token's read of the layer.
const promptColdShare = 0.2

// deviceFFN runs layer l's FFN for n tokens through the hybrid executor
// (xb normalised input, resid the residual before the norm, out the block
// output before the down bias): for each decode step (dec[i]; dec nil
// for none), with the sparse FFN on, only its own predicted neurons, as
// the step would compute alone; for the other tokens every neuron, all of
// them in one RunAll (whose results are Run's bits on the CPU backend).
// It reports false when the layer has no neurons on the device.
func (r *Runner) deviceFFN(l int, resid, xb, out []float32, n int, dec []bool) bool {
	d := r.dev
	if d == nil || !d.exec.HasHot(l) || r.recorder != nil {
		return false
	}
	c := &r.m.Config
	dim := c.Dim
	th := offload.Threshold{}
	if r.actThreshold != nil {
		th = offload.Threshold{On: true, Tau: r.actThreshold[l]}
	}
	// the tokens that run every neuron (prompt tokens; every token
	// without a predictor) together: the device reads its rows once for
	// several of them (RunAll)
	st := r.sparse
	predicts := st != nil && st.cfg.Predictor != nil && dec != nil
	if !predicts {
		if err := d.exec.RunAll(l, xb[:n*dim], n, th, out[:n*dim]); err != nil {
			r.devErr = errors.Join(r.devErr, err)
		}
		return true
	}
	if k := r.gatherOthers(xb, dec[:n]); k > 0 {
		if err := d.exec.RunAll(l, r.xc[:k*dim], k, th, r.xo[:k*dim]); err != nil {
			r.devErr = errors.Join(r.devErr, err)
		}
		r.scatterOthers(out, dec)
	}
	// each decode step its own predicted neurons
	for i := range n {
		if !dec[i] {
			continue
		}
		in := xb[i*dim : (i+1)*dim]
		if st.cfg.OnResidual {
			in = resid[i*dim : (i+1)*dim]
		}
		active := r.predict(l, in)
		st.active += int64(len(active))
		st.possible += int64(c.FFN)
		if err := d.exec.Run(l, xb[i*dim:(i+1)*dim], active, th, out[i*dim:(i+1)*dim]); err != nil {
			r.devErr = errors.Join(r.devErr, err)
		}
	}
	return true
}

// predict returns layer l's predicted active neurons for input in: on
// the device when the plan put the file's predictor there and the
// runner's predictor is that one (the same weights, not a sidecar's or a
// re-encoded copy), else on the host.
func (r *Runner) predict(l int, in []float32) []int32 {
	st := r.sparse
	lp := &st.cfg.Predictor.Layers[l]
	if d := r.dev; d != nil && d.pred != nil && d.pred[l] != nil && d.pred[l].computes(lp) {
		if idx, ok := r.devicePredict(d.pred[l], lp, in); ok {
			return idx
		}
	}
	return lp.Predict(r.pool, in, st.pred)
}

// computes reports whether lp is the predictor dp holds: its stored
// weights are dp's tensors' bytes, and it has no biases (a file's
// predictor has none).
func (dp *devPred) computes(lp *predictor.LayerPredictor) bool {
	same := func(a, b []byte) bool { return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0] }
	return lp.B1 == nil && lp.B2 == nil && lp.Type == dp.fc1.Type && lp.Type == dp.fc2.Type &&
		same(lp.W1, dp.fc1.Data) && same(lp.W2, dp.fc2.Data)
}

// devicePredict computes lp's scores on the device (x up, fc1, ReLU,
// fc2, the scores down) and selects the active neurons on the host; it
// reports false, for the host to predict, when the scratch is too small
// or the device fails.
func (r *Runner) devicePredict(dp *devPred, lp *predictor.LayerPredictor, in []float32) ([]int32, bool) {
	d, sc := r.dev, r.sparse.pred
	if lp.Dim > d.inCap || lp.FFN > d.outCap || int64(lp.Rank)*4 > d.predH.Len() || lp.FFN > len(sc.S) {
		return nil, false
	}
	s := sc.S[:lp.FFN]
	d.dev.Upload(d.in, f32Bytes(in))
	d.dev.MatMul(d.predH, dp.w1, dp.fc1.Type, lp.Rank, lp.Dim, d.in, 1)
	d.dev.Activate(d.predH, lp.Rank, kernels.ActReLU)
	d.dev.MatMul(d.out, dp.w2, dp.fc2.Type, lp.FFN, lp.Rank, d.predH, 1)
	d.dev.Download(f32Bytes(s), d.out)
	if err := d.dev.Sync(); err != nil {
		r.devErr = errors.Join(r.devErr, fmt.Errorf("engine: %s on the device: %w", dp.fc1.Name, err))
		return nil, false
	}
	d.predictions++
	return lp.Select(s, sc.Idx), true
}

// DevicePredictions reports how many layer predictions ran on the device.
func (r *Runner) DevicePredictions() int64 {
	if r.dev == nil {
		return 0
	}
	return r.dev.predictions
}

func f32Bytes(x []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
}

// setupAttention uploads the norms and biases of the layers whose
// attention the plan puts on the device and binds their KV regions. A
// layer whose matrices the device cannot multiply, or that the plan gave
// no KV cache, keeps its attention on the host (its resident matrices
// still multiply on the device).
func (d *deviceState) setupAttention(m *Model, region func(string) (kernels.Buffer, error)) error {
	c := &m.Config
	p := d.plan
	d.attn = make([]*devAttn, c.Layers)
	d.slots = map[*KVCache]int{}
	if !c.NoRoPE {
		d.rope = &kernels.RoPE{Dims: c.RoPEDims, HeadDim: c.HeadDim, Base: c.RoPEBase, Scale: c.RoPEScale,
			NeoX: c.RoPE == arch.RoPENeoX, FreqFactors: m.freqFactors}
	}
	vecs := func(t *arch.Tensor, v []float32) (kernels.Buffer, error) {
		if t == nil || v == nil {
			return nil, nil
		}
		b, err := region(t.Name)
		if err != nil {
			return nil, err
		}
		if b.Len() < int64(4*len(v)) {
			return nil, fmt.Errorf("engine: %s needs %d bytes on the device, its region %d", t.Name, 4*len(v), b.Len())
		}
		d.dev.Upload(b, f32Bytes(v))
		return b, nil
	}
	placed := false
	for l, lp := range p.Layers {
		if !lp.Attn || p.Context <= 0 || p.Seqs <= 0 {
			continue
		}
		lw := &m.W.Layers[l]
		lv := &m.layers[l]
		ok := true
		for _, t := range []*arch.Tensor{lw.Q, lw.K, lw.V, lw.O} {
			if _, res := d.weights[t]; !res {
				ok = false
			}
		}
		kc, err1 := region(offload.KVName(l, "k"))
		vc, err2 := region(offload.KVName(l, "v"))
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		a := &devAttn{q: lw.Q, k: lw.K, v: lw.V, o: lw.O, kc: kc, vc: vc}
		var err error
		set := func(dst *kernels.Buffer, t *arch.Tensor, v []float32) {
			if err == nil {
				*dst, err = vecs(t, v)
			}
		}
		set(&a.norm, lw.AttnNorm, lv.attnNorm)
		set(&a.normB, lw.AttnNormB, lv.attnNormB)
		set(&a.qNorm, lw.QNorm, lv.qNorm)
		set(&a.kNorm, lw.KNorm, lv.kNorm)
		set(&a.qb, lw.QB, lv.qb)
		set(&a.kb, lw.KB, lv.kb)
		set(&a.vb, lw.VB, lv.vb)
		set(&a.ob, lw.OB, lv.ob)
		if err != nil {
			return err
		}
		d.attn[l] = a
		placed = true
	}
	if !placed {
		return nil
	}
	var err error
	get := func(name string) kernels.Buffer {
		b, e := region(name)
		if e != nil && err == nil {
			err = e
		}
		return b
	}
	d.x, d.xb, d.q, d.k, d.v, d.att, d.o = get("scratch.x"), get("scratch.xb"), get("scratch.q"), get("scratch.k"), get("scratch.v"), get("scratch.att"), get("scratch.out")
	return err
}

// slot returns kv's slot in the device caches, assigning the next free
// one the first time a cache is seen.
func (d *deviceState) slot(kv *KVCache) (int, error) {
	if s, ok := d.slots[kv]; ok {
		return s, nil
	}
	if kv.ctx > d.plan.Context {
		return 0, fmt.Errorf("engine: a KV cache of %d positions exceeds the offload plan's context of %d", kv.ctx, d.plan.Context)
	}
	if len(d.slots) >= d.plan.Seqs {
		return 0, fmt.Errorf("engine: the offload plan holds KV caches for %d sequences; a %dth is in use", d.plan.Seqs, len(d.slots)+1)
	}
	s := len(d.slots)
	d.slots[kv] = s
	return s, nil
}

// deviceAttention runs layer l's attention block for the batch on the
// device when the plan put it there: the residual rows go up, the block's
// output (before the residual add) comes back into out. Tokens travel in
// trips of at most the plan's batch; each trip is one upload, the ops,
// one download and one sync.
func (r *Runner) deviceAttention(l int, seqs []Seq, x, out []float32, n int) bool {
	d := r.dev
	if d == nil || d.attn[l] == nil {
		return false
	}
	a := d.attn[l]
	c := &r.m.Config
	dim, qd, kvd := c.Dim, c.QDim(), c.KVDim()
	scale := float32(1 / math.Sqrt(float64(c.HeadDim)))
	batch := max(d.plan.Batch, 1)
	dev := d.dev
	// cut the batch into trips of ≤ batch tokens, by sequence segments
	first := 0
	for si := range seqs {
		sq := &seqs[si]
		for t := 0; t < len(sq.Tokens); {
			k := min(len(sq.Tokens)-t, batch)
			d.segs = append(d.segs, segment{seq: si, first: first, n: k, tok: t})
			first += k
			t += k
		}
	}
	f4 := func(n int) int64 { return 4 * int64(n) }
	for s0 := 0; s0 < len(d.segs); {
		// a trip: consecutive segments totalling ≤ batch tokens
		s1, rows := s0, 0
		for s1 < len(d.segs) && rows+d.segs[s1].n <= batch {
			rows += d.segs[s1].n
			s1++
		}
		t0 := d.segs[s0].first
		dev.Upload(d.x, f32Bytes(x[t0*dim:(t0+rows)*dim]))
		dev.Norm(d.xb, d.x, a.norm, a.normB, dim, rows, c.NormEps, c.Norm == arch.LayerNorm)
		dev.MatMul(d.q, d.weights[a.q], a.q.Type, qd, dim, d.xb, rows)
		dev.MatMul(d.k, d.weights[a.k], a.k.Type, kvd, dim, d.xb, rows)
		dev.MatMul(d.v, d.weights[a.v], a.v.Type, kvd, dim, d.xb, rows)
		if a.qb != nil {
			dev.AddBias(d.q, a.qb, qd, rows)
		}
		if a.kb != nil {
			dev.AddBias(d.k, a.kb, kvd, rows)
		}
		if a.vb != nil {
			dev.AddBias(d.v, a.vb, kvd, rows)
		}
		if a.qNorm != nil {
			dev.Norm(d.q, d.q, a.qNorm, nil, c.HeadDim, rows*c.Heads, c.NormEps, false)
			dev.Norm(d.k, d.k, a.kNorm, nil, c.HeadDim, rows*c.KVHeads, c.NormEps, false)
		}
		for _, sg := range d.segs[s0:s1] {
			kv := seqs[sg.seq].KV
			slot, err := d.slot(kv)
			if err != nil {
				r.devErr = errors.Join(r.devErr, err)
				d.segs = d.segs[:0]
				clear(out[:n*dim])
				return true
			}
			o := sg.first - t0
			pos := kv.pos + sg.tok
			qs := d.q.Slice(f4(o*qd), f4(sg.n*qd))
			ks := d.k.Slice(f4(o*kvd), f4(sg.n*kvd))
			vs := d.v.Slice(f4(o*kvd), f4(sg.n*kvd))
			if d.rope != nil {
				dev.Rope(qs, d.rope, c.Heads, sg.n, pos)
				dev.Rope(ks, d.rope, c.KVHeads, sg.n, pos)
			}
			vb := int64(kv.typ.TypeSize())
			per := int64(d.plan.Context) * int64(kvd) * vb
			if int64(slot+1)*per > a.kc.Len() || int64(slot+1)*per > a.vc.Len() {
				r.devErr = errors.Join(r.devErr, fmt.Errorf("engine: layer %d's device KV cache holds %d bytes, slot %d of a %s cache needs %d", l, a.kc.Len(), slot, kv.typ, int64(slot+1)*per))
				d.segs = d.segs[:0]
				clear(out[:n*dim])
				return true
			}
			kc, vc := a.kc.Slice(int64(slot)*per, per), a.vc.Slice(int64(slot)*per, per)
			dev.StoreKV(kc, kv.typ, kvd, pos, ks, sg.n)
			dev.StoreKV(vc, kv.typ, kvd, pos, vs, sg.n)
			dev.Attention(d.att.Slice(f4(o*qd), f4(sg.n*qd)), qs, sg.n, pos, kc, vc, kv.typ, c.Heads, c.KVHeads, c.HeadDim, scale)
		}
		dev.MatMul(d.o, d.weights[a.o], a.o.Type, dim, qd, d.att, rows)
		if a.ob != nil {
			dev.AddBias(d.o, a.ob, dim, rows)
		}
		dev.Download(f32Bytes(out[t0*dim:(t0+rows)*dim]), d.o)
		if err := dev.Sync(); err != nil {
			r.devErr = errors.Join(r.devErr, fmt.Errorf("engine: layer %d attention on the device: %w", l, err))
		}
		s0 = s1
	}
	d.segs = d.segs[:0]
	return true
}
