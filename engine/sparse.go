package engine

import (
	"fmt"
	"time"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/predictor"
)

// Sparsity configures activation-sparse FFN computation.
//
// A neuron i of layer l is active for a token when |a_i| > ActThreshold[l],
// a_i being its activation (act(gate_i·x) for gated FFNs, act(up_i·x)
// otherwise). For ReLU models the threshold is 0 and skipping inactive
// neurons is exact; for SwiGLU models it is calibrated (predictor.Calibrate)
// and skipping them is an approximation whose cost perplexity measures.
//
// With a Predictor, a decode step computes only the predicted neurons'
// gate, up and down rows. Without one (oracle mode), it computes the whole
// gate (or up) projection and only the active neurons' other rows.
type Sparsity struct {
	ActThreshold []float32            // per layer; nil means all zero (ReLU)
	Predictor    *predictor.Predictor // nil: oracle mode
	// OnResidual feeds the predictor the residual stream entering the FFN
	// block (before ffn_norm), as PowerInfer's predictors expect; Stoke's
	// own predictors are trained on the normalised FFN input.
	OnResidual bool
}

// FilePredictor returns the predictor embedded in a PowerInfer-layout
// file (blk.N.fc1/fc2), ready for Sparsity{Predictor: p, OnResidual: true},
// or nil when the file has none. Its weights are the model's bytes, not a
// copy: it is usable until the model is closed.
func (m *Model) FilePredictor() (*predictor.Predictor, error) {
	var fc1, fc2 []predictor.Tensor
	for l := range m.W.Layers {
		lw := &m.W.Layers[l]
		if lw.FC1 == nil {
			return nil, nil
		}
		fc1 = append(fc1, predictor.Tensor{Type: lw.FC1.Type, Shape: lw.FC1.Shape, Data: lw.FC1.Data})
		fc2 = append(fc2, predictor.Tensor{Type: lw.FC2.Type, Shape: lw.FC2.Shape, Data: lw.FC2.Data})
	}
	return predictor.FromTensors(fc1, fc2, m.Config.SparseThreshold)
}

// sparseState is a runner's sparse-FFN scratch.
type sparseState struct {
	cfg      Sparsity
	idx      []int32   // active neuron ids
	gate, up []float32 // active neurons' projections (or full gate in oracle mode)
	s        []float32 // oracle mode's full activations
	pred     *predictor.Scratch
	axpy     cpu.AxpyRows
	downT    []*arch.Tensor
	active   int64 // neurons computed, for statistics
	possible int64
}

// EnableSparse switches the runner's decode steps (Seq.Decode: one token
// fed on its own) to the sparse FFN, each step computing its own
// predicted neurons also in a pass that decodes several sequences or
// mixes them with prompt chunks, so a sequence decodes the same tokens
// batched as alone. Prompt chunks stay dense, with the same thresholds
// applied. It builds neuron-major down matrices once when the file has
// none.
func (r *Runner) EnableSparse(sp Sparsity) error {
	if r.m.ffnPacked {
		return errPacked
	}
	c := &r.m.Config
	if sp.ActThreshold == nil {
		sp.ActThreshold = make([]float32, c.Layers)
	}
	if len(sp.ActThreshold) != c.Layers {
		return fmt.Errorf("engine: %d activation thresholds for %d layers", len(sp.ActThreshold), c.Layers)
	}
	if p := sp.Predictor; p != nil {
		if len(p.Layers) != c.Layers {
			return fmt.Errorf("engine: predictor has %d layers, model %d", len(p.Layers), c.Layers)
		}
		for l, lp := range p.Layers {
			if lp.Dim != c.Dim || lp.FFN != c.FFN {
				return fmt.Errorf("engine: predictor layer %d is %d→%d, model FFN is %d→%d", l, lp.Dim, lp.FFN, c.Dim, c.FFN)
			}
		}
	}
	downT, err := r.m.neuronMajorDown()
	if err != nil {
		return err
	}
	st := &sparseState{cfg: sp, downT: downT,
		idx: make([]int32, c.FFN), gate: make([]float32, c.FFN), up: make([]float32, c.FFN),
		s: make([]float32, c.FFN)}
	if sp.Predictor != nil {
		// FC2 rank-major: Predict then reads about half of it (the rows
		// whose ReLU input is positive), in long rows. The caller's
		// predictor is unchanged.
		p, err := sp.Predictor.RankMajor()
		if err != nil {
			return err
		}
		st.cfg.Predictor = p
		rank := 0
		for _, lp := range p.Layers {
			rank = max(rank, lp.Rank)
		}
		st.pred = predictor.NewScratch(rank, c.FFN)
	}
	r.sparse = st
	r.actThreshold = sp.ActThreshold
	return nil
}

// DisableSparse restores dense, unthresholded FFNs.
func (r *Runner) DisableSparse() {
	r.sparse = nil
	r.actThreshold = nil
}

// SparseStats reports the share of FFN neurons the sparse steps computed.
func (r *Runner) SparseStats() (active, possible int64) {
	if r.sparse == nil {
		return 0, 0
	}
	return r.sparse.active, r.sparse.possible
}

// NeuronMajorDown returns, per layer, the down projection with one row per
// neuron, as the sparse FFN reads it (see neuronMajorDown): the file's
// ffn_down_t, or one built from ffn_down once and kept. stoke reorder
// writes the built ones into a renumbered file whose quantized ffn_down
// cannot be renumbered.
func (m *Model) NeuronMajorDown() ([]*arch.Tensor, error) { return m.neuronMajorDown() }

// neuronMajorDown returns, per layer, the down projection with one row per
// neuron ([ffn][dim]). PowerInfer files store it (ffn_down_t); otherwise it
// is built once from ffn_down: transposed exactly for float types, and
// requantized to Q8_0 for quantized ones (blocks run along a row, so a
// quantized matrix cannot be transposed without re-encoding; Q8_0 keeps
// the added error well under the original quantization's).
func (m *Model) neuronMajorDown() ([]*arch.Tensor, error) {
	m.downTOnce.Do(func() {
		c := &m.Config
		out := make([]*arch.Tensor, c.Layers)
		col := make([]float32, c.Dim)
		for l := range m.W.Layers {
			lw := &m.W.Layers[l]
			if lw.DownT != nil {
				out[l] = lw.DownT
				continue
			}
			d := lw.Down // [ffn cols][dim rows]
			typ := d.Type
			switch typ {
			case dtype.F32, dtype.F16, dtype.BF16:
			default:
				typ = dtype.Q8_0
			}
			if c.Dim%typ.BlockSize() != 0 {
				typ = dtype.F16
			}
			rb, err := typ.RowBytes(uint64(c.Dim))
			if err != nil {
				m.downTErr = err
				return
			}
			full := make([]float32, c.Dim*c.FFN) // W[r][i], r < dim
			drb := d.RowBytes()
			for r := range c.Dim {
				cpu.DequantizeRow(d.Type, d.Data[r*drb:(r+1)*drb], full[r*c.FFN:(r+1)*c.FFN])
			}
			data := make([]byte, c.FFN*int(rb))
			for i := range c.FFN {
				for r := range c.Dim {
					col[r] = full[r*c.FFN+i]
				}
				if err := dtype.Quantize(typ, col, data[i*int(rb):(i+1)*int(rb)]); err != nil {
					m.downTErr = err
					return
				}
			}
			out[l] = &arch.Tensor{Name: fmt.Sprintf("blk.%d.ffn_down_t(built)", l), Type: typ,
				Shape: []uint64{uint64(c.Dim), uint64(c.FFN)}, Data: data}
		}
		m.downT = out
	})
	return m.downT, m.downTErr
}

// sparseFFN computes the FFN of one token (x = normalised input, resid =
// the residual before the norm, both len dim) into out, touching only the
// active neurons.
func (r *Runner) sparseFFN(l int, resid, x, out []float32) {
	m := r.m
	c := &m.Config
	st := r.sparse
	lw := &m.W.Layers[l]
	lv := &m.layers[l]
	tau := st.cfg.ActThreshold[l]
	// the projection whose activation decides (gate for gated FFNs)
	sel, selB := lw.Up, lv.upB
	if c.Gated {
		sel, selB = lw.Gate, lv.gateB
	}
	var idx []int32
	if p := st.cfg.Predictor; p != nil {
		in := x
		if st.cfg.OnResidual {
			in = resid
		}
		idx = r.predict(l, in)
		r.pool.MatVecRows(st.gate[:len(idx)], sel.Data, sel.Type, c.Dim, idx, x)
		if selB != nil {
			for k, i := range idx {
				st.gate[k] += selB[i]
			}
		}
		activate(st.gate[:len(idx)], c.Act)
	} else {
		// oracle: the full selecting projection, then keep the active
		full := st.s
		r.pool.MatVec(full, sel.Data, sel.Type, c.FFN, c.Dim, x)
		if selB != nil {
			cpu.AddInPlace(full, selB)
		}
		activate(full, c.Act)
		idx = st.idx[:0]
		for i, a := range full {
			if !silent(a, tau) {
				idx = append(idx, int32(i))
			}
		}
		for k, i := range idx {
			st.gate[k] = full[i]
		}
	}
	n := len(idx)
	a := st.gate[:n]
	// neurons the predictor chose but the threshold rejects contribute 0,
	// exactly as in the dense path (for dReLU the threshold applies to
	// the product, below)
	if !c.DReLU {
		threshold(a, tau)
	}
	st.active += int64(n)
	st.possible += int64(c.FFN)
	if c.Gated {
		// up and down rows only for the neurons whose gate is not 0
		n = cpu.KeepNonzero(idx, a)
		a, idx = a[:n], idx[:n]
		up := st.up[:n]
		r.pool.MatVecRows(up, lw.Up.Data, lw.Up.Type, c.Dim, idx, x)
		if lv.upB != nil {
			for k, i := range idx {
				up[k] += lv.upB[i]
			}
		}
		if c.DReLU {
			activate(up, c.Act)
		}
		cpu.Mul(a, a, up)
	}
	if c.DReLU {
		threshold(a, tau)
	}
	if n == 0 {
		clear(out)
	} else {
		dt := st.downT[l]
		st.axpy.Do(r.pool, out, dt.Data, dt.Type, c.Dim, idx, a)
	}
	if lv.downB != nil {
		cpu.AddInPlace(out, lv.downB)
	}
}

// TimeDenseFFN measures the dense FFN of layer l for one token (gate, up
// and down mat-vecs, the part the sparse FFN replaces), averaged over reps:
// the denominator of a predictor's time share.
func (r *Runner) TimeDenseFFN(l int, x []float32, reps int) time.Duration {
	c := &r.m.Config
	lw := &r.m.W.Layers[l]
	h, h2, out := r.hb[:c.FFN], r.hb2[:c.FFN], r.xb2[:c.Dim]
	t0 := time.Now()
	for range reps {
		r.hostMatmul(h2, lw.Up, x, 1)
		if c.Gated {
			r.hostMatmul(h, lw.Gate, x, 1)
		}
		if lw.Down != nil {
			r.hostMatmul(out, lw.Down, h, 1)
		} else {
			r.axpy.Do(r.pool, out, lw.DownT.Data, lw.DownT.Type, c.Dim, r.allIdx, h)
		}
	}
	return time.Since(t0) / time.Duration(max(reps, 1))
}
