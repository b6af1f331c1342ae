package cpu

import "github.com/stokehq/stoke/models/dtype"

// sparseCols is the widest column chunk AxpyRows decodes at once (on the
// stack); it is a multiple of every block size (32 and 256).
const sparseCols = 1024

// The row groups of AxpyRows for F32, F16, Q8_0 and Q4_0 rows: at most
// axpyMaxGroups, of at least axpyGroupRows rows each (a multiple of
// axpyGroup). Their number depends only on the number of rows listed, so
// the result does not depend on the pool's threads.
const (
	axpyMaxGroups = 8
	axpyGroupRows = 16
)

// axpyAhead is how many listed rows ahead of the ones they add the
// row-accumulating kernels prefetch: the next pass's rows. (Twice as far
// was no faster on the development machine, and with 8 KiB F16 rows the
// lines in flight would outgrow L1.)
const axpyAhead = axpyGroup

// AxpyRows accumulates a sparse combination of rows:
//
//	dst[c] = Σ_k coef[k] · W[idx[k], c]   for c < cols
//
// W is rows of cols elements of type t (t.RowBytes(cols) bytes each). It is
// the down projection of a sparse FFN stored neuron-major (one row per
// neuron, PowerInfer's ffn_down_t): only the active neurons' rows are read,
// each exactly once, by one worker. dst is overwritten.
//
// F32, F16, Q8_0 and Q4_0 rows (Q8_0 is the engine's neuron-major form of
// quantized downs, Q4_0 the usual type of PowerInfer's ffn_down_t) are
// split by rows: the listed rows, in order, fall into G groups of
// consecutive entries (G ≤ 8, from len(idx) alone), each group's sum goes
// to a partial vector of cols floats, and
//
//	dst = ((P_0 + P_1) + P_2) + … + P_{G−1}
//
// Within a group the rows are added in order, by the row-accumulating
// kernels of axpy.go (four rows a pass, each pass prefetching the rows
// after them). A worker thus streams whole rows, as a dense mat-vec
// does, and the result is the same bits on any number of threads. Rows
// whose coefficient is zero are left out before the split (they add
// nothing, barring an infinite or NaN weight), so a call over every
// neuron of a ReLU layer reads only the active neurons' rows and gives
// the bits of a call that lists only those (the sparse FFN's). Other
// types are split by column chunks aligned to their blocks, each worker
// decoding its chunk of every listed row and adding the rows in order.
//
// A nil pool computes on the calling goroutine.
//
// An AxpyRows value holds the call's state, and the partial vectors, so
// that a call allocates nothing once the value has served a call as
// large; keep one per caller (it is not safe for concurrent calls).
type AxpyRows struct {
	dst        []float32
	w          []byte
	t          dtype.Type
	cols, rb   int
	chunk      int // columns per work item
	chunkBytes int
	per        int // rows per group
	idx        []int32
	coef       []float32
	part       []float32 // the partial sums of groups 1 to G−1
	nzIdx      []int32   // the listed rows with nonzero coefficients, when some are zero
	nzCoef     []float32
}

// Do computes dst as described above, on pool p.
func (a *AxpyRows) Do(p *Pool, dst []float32, w []byte, t dtype.Type, cols int, idx []int32, coef []float32) {
	rb := rowBytes(t, cols)
	checkLen("dst", len(dst), cols)
	checkLen("coef", len(coef), len(idx))
	rows := len(w) / max(rb, 1)
	for _, r := range idx {
		if r < 0 || int(r) >= rows {
			panic("cpu: AxpyRows row index out of range")
		}
	}
	if cols == 0 {
		return
	}
	part, nzIdx, nzCoef := a.part, a.nzIdx, a.nzCoef
	*a = AxpyRows{dst: dst, w: w, t: t, cols: cols, rb: rb, idx: idx, coef: coef, part: part, nzIdx: nzIdx, nzCoef: nzCoef}
	if axpyKernelType(t) {
		a.dropZeros()
		groups, per := axpyGroups(len(a.idx))
		if groups == 0 {
			clear(dst)
			return
		}
		if n := (groups - 1) * cols; cap(a.part) < n {
			a.part = make([]float32, n)
		}
		a.per = per
		parallel(p, groups, (*axpyRowsTask)(a))
		for g := 1; g < groups; g++ {
			axpyF32(dst, 1, a.part[(g-1)*cols:g*cols]) // dst + 1·P_g, exactly dst + P_g
		}
		return
	}
	bs := t.BlockSize()
	chunk := min(cols, max(bs, sparseCols/bs*bs))
	a.chunk = chunk
	a.chunkBytes = chunk / bs * t.TypeSize()
	n := (cols + chunk - 1) / chunk
	parallel(p, n, a)
}

// parallel runs task over [0, n) on p, or whole on the calling goroutine
// when p is nil.
func parallel(p *Pool, n int, task Task) {
	if p == nil {
		task.Run(0, n)
		return
	}
	p.Parallel(n, 1, task)
}

// dropZeros leaves out of a.idx and a.coef the rows whose coefficient is
// zero (copying the others, in order, into a's buffers when there are
// any).
func (a *AxpyRows) dropZeros() {
	first := -1
	for k, c := range a.coef {
		if c == 0 {
			first = k
			break
		}
	}
	if first < 0 {
		return
	}
	if cap(a.nzIdx) < len(a.idx) {
		a.nzIdx, a.nzCoef = make([]int32, len(a.idx)), make([]float32, len(a.idx))
	}
	idx, coef := a.nzIdx[:first], a.nzCoef[:first]
	copy(idx, a.idx)
	copy(coef, a.coef)
	for k := first + 1; k < len(a.coef); k++ {
		if c := a.coef[k]; c != 0 {
			idx, coef = append(idx, a.idx[k]), append(coef, c)
		}
	}
	a.idx, a.coef = idx, coef
}

// axpyGroups splits n listed rows into groups: it returns their number
// and the rows per group (a multiple of axpyGroup; the last group may
// have fewer).
func axpyGroups(n int) (groups, per int) {
	if n == 0 {
		return 0, 0
	}
	groups = min(axpyMaxGroups, max(1, n/axpyGroupRows))
	per = (n + groups - 1) / groups
	per = (per + axpyGroup - 1) / axpyGroup * axpyGroup
	return (n + per - 1) / per, per
}

// axpyRowsTask runs AxpyRows' row groups: group g sums its rows into dst
// (g = 0) or its partial vector.
type axpyRowsTask AxpyRows

func (a *axpyRowsTask) Run(lo, hi int) {
	for g := lo; g < hi; g++ {
		out := a.dst
		if g > 0 {
			out = a.part[(g-1)*a.cols : g*a.cols]
		}
		clear(out)
		k0, k1 := g*a.per, min((g+1)*a.per, len(a.idx))
		addRows(a.t, out, a.w, a.rb, a.idx[k0:k1], a.coef[k0:k1])
	}
}

// addRows adds coef[k]·(the row at w[idx[k]·rb:]) to out for every k,
// axpyGroup rows a pass; each pass prefetches the rows axpyAhead on.
func addRows(t dtype.Type, out []float32, w []byte, rb int, idx []int32, coef []float32) {
	last := len(idx) - 1
	var offs [2 * axpyGroup]int
	for k := 0; k <= last; k += axpyGroup {
		g := min(axpyGroup, last+1-k)
		for j := range g {
			offs[j] = int(idx[k+j]) * rb
			offs[g+j] = int(idx[min(k+axpyAhead+j, last)]) * rb
		}
		axpyRows(t, out, coef[k:k+g], w, offs[:2*g])
	}
}

// Run implements Task over column chunks, for the types without
// row-accumulating kernels: each listed row's chunk is decoded and added.
func (a *AxpyRows) Run(lo, hi int) {
	var buf [sparseCols]float32
	for ch := lo; ch < hi; ch++ {
		c0 := ch * a.chunk
		c1 := min(c0+a.chunk, a.cols)
		out := a.dst[c0:c1]
		clear(out)
		n := c1 - c0
		b0 := ch * a.chunkBytes
		b1 := b0 + n/a.t.BlockSize()*a.t.TypeSize()
		tmp := buf[:n]
		for k, r := range a.idx {
			row := a.w[int(r)*a.rb : (int(r)+1)*a.rb]
			DequantizeRow(a.t, row[b0:b1], tmp)
			Axpy(out, a.coef[k], tmp)
		}
	}
}

// KeepNonzero compacts, in place and in order, the pairs (idx[k], a[k])
// whose a[k] is not zero to the front of idx and a, and returns how many
// there are. A sparse FFN calls it on the activated gates of the neurons
// its predictor chose: a neuron whose gate is 0 adds 0·up = 0 (barring an
// infinite or NaN up), so its up and down rows need not be read, and the
// predictor's false positives, which it makes to keep recall high, cost a
// gate row each rather than three rows.
func KeepNonzero(idx []int32, a []float32) int {
	checkLen("KeepNonzero a", len(a), len(idx))
	k := 0
	for j, v := range a {
		if v != 0 {
			idx[k], a[k] = idx[j], v
			k++
		}
	}
	return k
}
