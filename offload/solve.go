package offload

import (
	"cmp"
	"container/heap"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Options are what Solve plans for.
type Options struct {
	Mode Mode
	// Budget is the device bytes the arena may take (the card's free
	// memory less Reserve): a plan has TotalBytes ≤ Budget or is refused.
	Budget int64
	// Reserve is what the caller keeps free besides the arena (CUDA
	// context, margin). Solve only reports it in Plan.Reserve.
	Reserve int64
	// Context is the KV positions per sequence (≥ 1 unless Mode is
	// ModeCPU); Seqs the sequences with a KV cache (0 means 1); Batch the
	// tokens per step the scratch is sized for (0 means 1).
	Context, Seqs, Batch int
	// Layers is, for ModeLayerSplit, how many layers (first ones first) go
	// to the device; −1 places as many as fit. Other modes ignore it.
	Layers int
	// CPUBandwidth and DeviceBandwidth (bytes/s) feed the bandwidth model
	// that balances the hybrid placement: among neurons of equal value per
	// byte, the layer whose CPU half is slowest relative to its device half
	// gets the next one. Zero disables balancing (lower layers first).
	CPUBandwidth, DeviceBandwidth float64
}

// normalize applies the defaults and checks o against d's limits.
func (o Options) normalize(d *Desc) (Options, error) {
	if o.Mode > ModeHybrid {
		return o, fmt.Errorf("offload: unknown mode %d", o.Mode)
	}
	if o.Budget < 0 || o.Reserve < 0 {
		return o, fmt.Errorf("offload: budget %d and reserve %d must not be negative", o.Budget, o.Reserve)
	}
	if o.Seqs == 0 {
		o.Seqs = 1
	}
	if o.Batch == 0 {
		o.Batch = 1
	}
	for _, bw := range []float64{o.CPUBandwidth, o.DeviceBandwidth} {
		if !(bw >= 0) || math.IsInf(bw, 0) {
			return o, fmt.Errorf("offload: bandwidth %v must be finite and ≥ 0", bw)
		}
	}
	if o.Mode == ModeCPU {
		return o, nil
	}
	if o.Context < 1 || o.Seqs < 1 || int64(o.Context)*int64(o.Seqs) > MaxPositions {
		return o, fmt.Errorf("offload: context %d × %d sequences is outside [1, %d] positions", o.Context, o.Seqs, MaxPositions)
	}
	if o.Batch < 1 || o.Batch > MaxBatch {
		return o, fmt.Errorf("offload: batch %d is outside [1, %d]", o.Batch, MaxBatch)
	}
	if o.Mode == ModeLayerSplit && (o.Layers < -1 || o.Layers > len(d.Layers)) {
		return o, fmt.Errorf("offload: layer-split of %d layers; the model has %d (−1: as many as fit)", o.Layers, len(d.Layers))
	}
	return o, nil
}

// Solve places d on the device under o.Budget and lays the placement out
// as one arena. Every region (tensor, KV cache, packed hot rows, scratch)
// starts at a multiple of Align; TotalBytes is the arena's size, and a
// plan whose TotalBytes would exceed the budget is refused with an error
// that says what the budget does fit. The result depends only on d and o.
//
// ModeCPU gives an empty plan. ModeLayerSplit places whole layers
// (attention, FFN-fixed tensors, every neuron, KV cache) first layers
// first, as llama.cpp's -ngl does, and the output head only when every
// layer is on the device.
//
// ModeHybrid places in two phases.
//
// Phase 1, per layer, first layers first: attention tensors with the
// layer's KV cache, the FFN-fixed tensors and the predictor; then the
// output head. Each of these bytes is read for every token, while a
// neuron's bytes are read only when it fires (frequency f ≤ 1), so under
// the bandwidth model a device byte spent here saves at least as much CPU
// traffic as one spent on neurons. When not every layer fits, the first k
// do and layers k… stay on the CPU whole (their neurons too); when not
// even layer 0 fits, phase 2 fills the budget less the scratch with hot
// neurons of every layer, and a budget below the scratch gives an empty
// plan: a hybrid plan is never refused.
//
// Phase 2 fills the rest, S bytes, with hot neurons of layers 0…k−1: a
// 0/1 knapsack whose items are neurons (l, i) of value f_{l,i} (expected
// activations served from the device, the hit rate's numerator) and
// weight w_l = NeuronBytes of layer l. Neurons are taken in descending
// order of f/w (within a layer w is constant, so that is descending f;
// across layers the layer whose next neuron has the larger f/w goes
// first), each one if its exact aligned cost still fits; a layer whose
// next neuron does not fit is closed, since its later neurons cost as
// much. The greedy is optimal up to the last item:
//
//   - Without alignment, the fractional relaxation is solved exactly by
//     the f/w-ordered prefix plus a fraction of the first item c that
//     does not fit (exchange argument: weight on a lower-ratio item can be
//     moved to a higher-ratio one that is not full without losing value).
//     The greedy holds that whole prefix, so
//     OPT ≤ OPT_frac < V(prefix) + v_c ≤ V(greedy) + v_c.
//   - When every layer's neurons have one size w (a model with one weight
//     type) and rows need no padding, any feasible set has at most ⌊S/w⌋
//     neurons and the greedy takes the ⌊S/w⌋ most frequent: it is
//     exactly optimal.
//   - Alignment: h hot neurons of a layer take Σ_p alignUp(h·row_p),
//     between h·w and h·w + P·(Align−1) for its P packed regions, so an
//     aligned solution is feasible unaligned and the greedy holds the
//     unaligned prefix for capacity S − Σ_l P_l·(Align−1); the loss bound
//     grows by at most that padding's worth of neurons (a few per layer).
//
// After the first neuron that does not fit the greedy keeps going down the
// order, so the last space goes to the best neurons that still fit:
// smaller ones of other layers, or ones that fit in a region's padding.
// TestPlanGreedyOptimal checks all three claims against exhaustive search.
//
// Balance: the bandwidth model (Options.CPUBandwidth, DeviceBandwidth)
// breaks ties in f/w: the next neuron goes to the layer whose CPU half
// (cold active bytes / CPU bandwidth) most exceeds its device half
// (attention and hot active bytes / device bandwidth). Frequencies from
// counts tie often (unknown ones always do), so this spreads equal-value
// neurons to even out the halves instead of filling low layers first. It
// never trades hit rate for balance: a device half slower than the CPU
// half means the layer's cold active bytes are below
// (CPU/device bandwidth) of its device bytes, which is where the fixed
// cost of running a CPU half at all dominates what is left.
//
// Unknown frequencies (LayerDesc.Freq nil) count every neuron of the
// layer as firing at the mean rate of the layers that have frequencies
// (1 when none do): uniform ranking, and dense traffic in the roofline
// when nothing is known.
func Solve(d *Desc, o Options) (*Plan, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	o, err := o.normalize(d)
	if err != nil {
		return nil, err
	}
	p := &Plan{Mode: o.Mode, Layers: make([]LayerPlan, len(d.Layers)),
		Context: o.Context, Seqs: o.Seqs, Batch: o.Batch, Reserve: o.Reserve}
	hot := make([]int, len(d.Layers)) // hot neurons per layer (ModeLayerSplit: all of a device layer)
	var order [][]int32               // per layer, neurons by descending frequency
	switch o.Mode {
	case ModeHybrid:
		order, err = solveHybrid(d, o, p, hot)
	case ModeLayerSplit:
		err = solveLayerSplit(d, o, p, hot)
	}
	if err != nil {
		return nil, err
	}
	finish(d, p, hot, order)
	if p.TotalBytes > o.Budget {
		return nil, fmt.Errorf("offload: internal error: plan takes %d bytes of a %d budget", p.TotalBytes, o.Budget)
	}
	return p, nil
}

// baseBytes is layer l's phase-1 footprint in hybrid mode at positions
// KV positions: attention, FFN-fixed and predictor tensors and KV cache.
func baseBytes(d *Desc, l, positions int) int64 {
	ld := &d.Layers[l]
	return tensorsBytes(ld.Attn) + tensorsBytes(ld.FFNFixed) + tensorsBytes(ld.Predictor) + kvBytes(d, positions)
}

// wholeBytes is layer l's footprint in layer-split mode: attention,
// FFN-fixed tensors, every neuron and the KV cache.
func wholeBytes(d *Desc, l, positions int) int64 {
	ld := &d.Layers[l]
	return tensorsBytes(ld.Attn) + tensorsBytes(ld.FFNFixed) + hotBytes(ld, d.FFN) + kvBytes(d, positions)
}

// prefix returns how many layers, first ones first, fit in space with
// each taking cost(l), and the bytes they take.
func prefix(n int, space int64, cost func(l int) int64) (int, int64) {
	var used int64
	for l := range n {
		c := cost(l)
		if used+c > space {
			return l, used
		}
		used += c
	}
	return n, used
}

func solveHybrid(d *Desc, o Options, p *Plan, hot []int) ([][]int32, error) {
	pos := o.Context * o.Seqs
	scratch := scratchBytes(d, o.Batch, false)
	k, used := prefix(len(d.Layers), o.Budget-scratch, func(l int) int64 { return baseBytes(d, l, pos) })
	used += scratch
	if k == 0 && len(d.Layers) > 0 {
		// Not even layer 0's attention fits: the device still serves hot
		// neurons of every layer (the FFN is most of a model's bytes);
		// with no room even for the scratch, nothing goes there.
		if scratch > o.Budget {
			return nil, nil
		}
		if h := headBytes(d, o.Batch); used+h <= o.Budget {
			p.Output = true // read for every token, like attention
			used += h
		}
		return fillHot(d, o, len(d.Layers), o.Budget-used, hot), nil
	}
	for l := range k {
		p.Layers[l].Attn = true
		p.Layers[l].Predictor = len(d.Layers[l].Predictor) > 0
	}
	if h := headBytes(d, o.Batch); used+h <= o.Budget {
		p.Output = true
		used += h
	}
	return fillHot(d, o, k, o.Budget-used, hot), nil
}

func solveLayerSplit(d *Desc, o Options, p *Plan, hot []int) error {
	pos := o.Context * o.Seqs
	nl := len(d.Layers)
	scratch := scratchBytes(d, o.Batch, false)
	cost := func(l int) int64 { return wholeBytes(d, l, pos) }
	n := o.Layers
	if n == 0 && nl > 0 {
		return nil // -ngl 0: nothing on the device, not even scratch
	}
	want := n
	if n < 0 {
		want = nl
	}
	k, used := prefix(want, o.Budget-scratch, cost)
	used += scratch
	if n < 0 && k == 0 {
		return nil // as many as fit: none does, the CPU runs everything
	}
	if used > o.Budget || (n >= 0 && k < n) || (k == 0 && nl > 0) {
		return refusal(d, o, "weights+KV", scratch, want,
			func(l, positions int) int64 { return wholeBytes(d, l, positions) })
	}
	for l := range k {
		p.Layers[l].Attn = true
		hot[l] = d.FFN
	}
	if k == nl && used+headBytes(d, o.Batch) <= o.Budget {
		p.Output = true
	}
	return nil
}

// refusal explains a budget that does not hold what a plan needs: want
// layers costing cost(l, positions) each plus fixed bytes of scratch. It
// says how many layers the budget fits at the asked context, and at which
// context it fits all of them (or one, when it fits none).
func refusal(d *Desc, o Options, what string, fixed int64, want int, cost func(l, positions int) int64) error {
	pos := o.Context * o.Seqs
	need := fixed
	for l := range want {
		need += cost(l, pos)
	}
	fits, _ := prefix(want, o.Budget-fixed, func(l int) int64 { return cost(l, pos) })
	if fixed > o.Budget {
		fits = 0
	}
	// largestContext returns the largest context below o.Context at which
	// n layers fit, 0 when none does (the cost grows with the context).
	largestContext := func(n int) int {
		ok := func(ctx int) bool {
			k, _ := prefix(n, o.Budget-fixed, func(l int) int64 { return cost(l, ctx*o.Seqs) })
			return fixed <= o.Budget && k == n
		}
		lo, hi := 0, o.Context-1 // ok(lo) or lo == 0; find the largest ok ctx in [1, hi]
		for lo < hi {
			mid := lo + (hi-lo+1)/2
			if ok(mid) {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		if lo >= 1 && ok(lo) {
			return lo
		}
		return 0
	}
	var b strings.Builder
	fmt.Fprintf(&b, "offload: %s plan needs %s for the %s of %d layers at context %d × %d seq (scratch %s included); a %s budget fits ",
		o.Mode, FormatBytes(need), what, want, o.Context, o.Seqs, FormatBytes(fixed), FormatBytes(o.Budget))
	if fits > 0 {
		fmt.Fprintf(&b, "%d layers' %s", fits, what)
	} else {
		fmt.Fprintf(&b, "no layer's %s", what)
	}
	if want > 0 {
		if c := largestContext(want); c > 0 {
			fmt.Fprintf(&b, ", or all %d at context %d", want, c)
		} else if fits == 0 && want > 1 {
			if c := largestContext(1); c > 0 {
				fmt.Fprintf(&b, ", or one layer at context %d", c)
			}
		}
	}
	if fixed > o.Budget {
		fmt.Fprintf(&b, " (the scratch alone needs %s)", FormatBytes(fixed))
	}
	b.WriteString("; a CPU-only plan needs no device memory")
	return fmt.Errorf("%s", b.String())
}

// freqs returns each layer's effective frequencies: Freq, or for a layer
// without one the mean rate of the layers that have them (1 when none do).
func freqs(d *Desc) [][]float64 {
	var sum float64
	var n int
	for i := range d.Layers {
		for _, f := range d.Layers[i].Freq {
			sum += f
			n++
		}
	}
	u := 1.0
	if n > 0 && sum > 0 {
		u = sum / float64(n)
	}
	out := make([][]float64, len(d.Layers))
	var uniform []float64 // shared by the layers without frequencies
	for i := range d.Layers {
		if f := d.Layers[i].Freq; f != nil {
			out[i] = f
			continue
		}
		if uniform == nil {
			uniform = make([]float64, d.FFN)
			for j := range uniform {
				uniform[j] = u
			}
		}
		out[i] = uniform
	}
	return out
}

// byFrequency returns neuron ids by descending frequency, ties by id.
func byFrequency(f []float64) []int32 {
	ids := make([]int32, len(f))
	for i := range ids {
		ids[i] = int32(i)
	}
	slices.SortStableFunc(ids, func(a, b int32) int { return cmp.Compare(f[b], f[a]) })
	return ids
}

// layerFill is one layer's state in the hot-neuron greedy.
type layerFill struct {
	l     int
	ld    *LayerDesc
	f     []float64
	order []int32
	h     int     // neurons taken
	cost  int64   // hotBytes(ld, h)
	imb   float64 // CPU half − device half, seconds per token (balance only)
}

// ratio is the next neuron's frequency per byte.
func (q *layerFill) ratio() float64 {
	f := q.f[q.order[q.h]]
	if nb := q.ld.NeuronBytes(); nb > 0 {
		return f / float64(nb)
	}
	return math.Inf(1)
}

type fillQueue struct {
	q       []*layerFill
	balance bool
}

func (h *fillQueue) Len() int { return len(h.q) }
func (h *fillQueue) Less(i, j int) bool {
	a, b := h.q[i], h.q[j]
	if ra, rb := a.ratio(), b.ratio(); ra != rb {
		return ra > rb
	}
	if h.balance && a.imb != b.imb {
		return a.imb > b.imb
	}
	return a.l < b.l
}
func (h *fillQueue) Swap(i, j int) { h.q[i], h.q[j] = h.q[j], h.q[i] }
func (h *fillQueue) Push(x any)    { h.q = append(h.q, x.(*layerFill)) }
func (h *fillQueue) Pop() any {
	x := h.q[len(h.q)-1]
	h.q = h.q[:len(h.q)-1]
	return x
}

// fillHot runs phase 2 of the hybrid placement over layers 0…k−1 with
// space bytes, setting hot[l], and returns the per-layer neuron order
// (hot neurons of layer l are order[l][:hot[l]]).
func fillHot(d *Desc, o Options, k int, space int64, hot []int) [][]int32 {
	fs := freqs(d)
	order := make([][]int32, len(d.Layers))
	cpuBW, devBW := o.CPUBandwidth, o.DeviceBandwidth
	h := &fillQueue{balance: cpuBW > 0 && devBW > 0}
	var fills []*layerFill
	for l := range k {
		ld := &d.Layers[l]
		order[l] = byFrequency(fs[l])
		if d.FFN == 0 {
			continue
		}
		q := &layerFill{l: l, ld: ld, f: fs[l], order: order[l]}
		if h.balance {
			var act float64
			for _, f := range fs[l] {
				act += f
			}
			nb := float64(ld.NeuronBytes())
			q.imb = act*nb/cpuBW - float64(rawBytes(ld.Attn)+rawBytes(ld.FFNFixed)+rawBytes(ld.Predictor))/devBW
		}
		h.q = append(h.q, q)
		fills = append(fills, q)
	}
	heap.Init(h)
	for h.Len() > 0 {
		q := h.q[0]
		c := hotBytes(q.ld, q.h+1) - q.cost
		if c > space {
			heap.Pop(h) // its later neurons cost as much: the layer is closed
			continue
		}
		space -= c
		q.cost += c
		if h.balance {
			x := q.f[q.order[q.h]] * float64(q.ld.NeuronBytes())
			q.imb -= x/cpuBW + x/devBW
		}
		q.h++
		if q.h == len(q.order) {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
	}
	for _, q := range fills {
		hot[q.l] = q.h
	}
	return order
}

func rawBytes(ts []Tensor) int64 {
	var n int64
	for _, t := range ts {
		n += t.Bytes
	}
	return n
}
