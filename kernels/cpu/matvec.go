package cpu

import (
	"fmt"

	"github.com/stokehq/stoke/models/dtype"
)

// Weight matrices are laid out as GGUF stores a 2-D tensor of shape
// [ne0 = cols, ne1 = rows]: rows after one another, each row cols elements
// of type t in t.RowBytes(cols) contiguous bytes (whole blocks for the
// quantized types). W[r,c] is element c of row r, dequantized.
//
// The drivers below panic when the shapes they are given do not agree with
// the slices (a programmer error: callers validate shapes when they load a
// model). dst must not overlap x or w.

// chunkBytes is the amount of weights one claimed chunk of MatMul covers:
// a tile that stays in L1/L2 while it is dotted with every input, large
// enough that the atomic claim and call overhead vanish next to the work.
const chunkBytes = 32 << 10

// Mat-vec chunks (MatVec, MatVecRows) are longer: each thread streams its
// chunk from memory, and the hardware prefetchers need long runs. On the
// 2-core development machine two threads reached 27 GB/s with 32 KiB
// chunks and 42–45 GB/s (of 49 measured read bandwidth) with 512 KiB–1 MiB
// ones. A call aims at about mvChunksPerThread chunks per thread, so that
// dynamic claiming still evens out uneven threads, between chunkBytes and
// mvChunkMax.
const (
	mvChunkMax        = 1 << 20
	mvChunksPerThread = 4
)

// mvChunkRows is the chunk size, in rows of rb bytes, for a mat-vec over
// rows rows on threads threads.
func mvChunkRows(rb, rows, threads int) int {
	target := rows * rb / max(threads*mvChunksPerThread, 1)
	return max(1, min(max(target, chunkBytes), mvChunkMax)/max(rb, 1))
}

// rowBytes returns the bytes of one row of cols elements of type t.
func rowBytes(t dtype.Type, cols int) int {
	if !t.Computable() {
		panic(fmt.Sprintf("cpu: cannot compute with %s weights", t))
	}
	if cols < 0 {
		panic(fmt.Sprintf("cpu: negative column count %d", cols))
	}
	rb, err := t.RowBytes(uint64(cols))
	if err != nil {
		panic("cpu: " + err.Error())
	}
	return int(rb)
}

// rowsPerChunk is the MatMul tile, in rows of rb bytes.
func rowsPerChunk(rb int) int {
	return max(1, chunkBytes/max(rb, 1))
}

func checkWeights(w []byte, rows, rb int) {
	if rows < 0 || len(w)/max(rb, 1) < rows {
		panic(fmt.Sprintf("cpu: %d weight bytes hold fewer than %d rows of %d bytes", len(w), rows, rb))
	}
}

func checkLen(what string, got, want int) {
	if got != want {
		panic(fmt.Sprintf("cpu: %s has length %d, want %d", what, got, want))
	}
}

// How the drivers compute. For weights whose ActivationType is Q8_0 or
// Q8_K, x is quantized once per call (QuantizeQ8_0 / QuantizeQ8_K, into
// the pool's scratch) and every row is dotted with it by the integer row
// kernel (DotRowQ8); for F32, F16, BF16 and Q8_K weights x is used as is
// (DotRow). MatVec, MatVecRows and MatMul use the same quantization and
// the same row kernels (MatMul's multi-input kernels, multi.go, repeat
// the row kernel's operations for each of their inputs), so a row's
// result is the same bits whichever driver computes it and however many
// threads share the work. With quantized activations a result differs
// from Σ_c W[r,c]·x[c] by the quantization error that q8act.go bounds
// (≤ Σ_blocks Σ|w|·0.563·d_x for Q8_0 activations, Σ|w|·|d_x|/2 for Q8_K),
// as in llama.cpp.

// MatVec computes dst[r] = Σ_c W[r,c]·x[c] for r < rows, W being the rows×cols
// matrix of type t in w (see the layout above; len(w) ≥ rows·RowBytes(cols)).
// len(dst) must be rows and len(x) cols. Rows are split over the pool's
// threads in chunks of 32 KiB to 1 MiB of weights (mvChunkRows).
func (p *Pool) MatVec(dst []float32, w []byte, t dtype.Type, rows, cols int, x []float32) {
	rb := rowBytes(t, cols)
	checkWeights(w, rows, rb)
	checkLen("MatVec dst", len(dst), rows)
	checkLen("MatVec x", len(x), cols)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mv = matVecTask{dst: dst, w: w, t: t, rb: rb, x: x}
	p.mv.act = p.prepare(t, x, cols, 1)
	p.run(rows, mvChunkRows(rb, rows, p.threads), &p.mv, nil)
	p.mv = matVecTask{}
}

// actInput is the x of a driver call in the form the row kernels take:
// f32 as given (f == nil), or n inputs quantized into QVecs for the
// integer kernel f.
type actInput struct {
	f  qdotFunc
	qv []QVec
}

// prepare returns x, n inputs of cols values, ready for rows of type t:
// quantized into the pool's QVecs when t has an integer kernel. p.mu is
// held.
func (p *Pool) prepare(t dtype.Type, x []float32, cols, n int) actInput {
	if ActivationType(t) == dtype.F32 {
		return actInput{}
	}
	if len(p.qv) < n {
		p.qv = append(p.qv, make([]QVec, n-len(p.qv))...)
	}
	qv := p.qv[:n]
	if n == 1 {
		qv[0].Quantize(t, x)
	} else { // one input per chunk, on all threads
		p.prep = prepTask{t: t, x: x, cols: cols, qv: qv}
		p.run(n, 1, &p.prep, nil)
		p.prep = prepTask{}
	}
	return actInput{f: qdotFor(t), qv: qv}
}

// prepTask quantizes inputs [lo, hi) of a driver call.
type prepTask struct {
	t    dtype.Type
	x    []float32
	cols int
	qv   []QVec
}

func (q *prepTask) Run(lo, hi int) {
	for i := lo; i < hi; i++ {
		q.qv[i].Quantize(q.t, q.x[i*q.cols:(i+1)*q.cols])
	}
}

// dot returns row · input i.
func (a *actInput) dot(t dtype.Type, row []byte, x []float32, i int) float32 {
	if a.f != nil {
		return a.f(row, &a.qv[i])
	}
	return DotRow(t, row, x)
}

type matVecTask struct {
	dst []float32
	w   []byte
	t   dtype.Type
	rb  int
	x   []float32
	act actInput
}

func (m *matVecTask) Run(lo, hi int) {
	if m.act.f == nil {
		DotRows(m.t, m.dst[lo:hi], m.w[lo*m.rb:hi*m.rb], m.rb, m.x)
		return
	}
	f, v, rb := m.act.f, &m.act.qv[0], m.rb
	for r := lo; r < hi; r++ {
		m.dst[r] = f(m.w[r*rb:(r+1)*rb], v)
	}
}

// MatVecRows computes dst[k] = Σ_c W[idx[k],c]·x[c] for k < len(idx): the
// mat-vec restricted to the listed rows of W (cols elements of type t per
// row), for sparse layers that compute only the active neurons. len(dst)
// must be len(idx) and len(x) cols; an index outside w panics. A row's
// result is the same bits as MatVec gives for it.
func (p *Pool) MatVecRows(dst []float32, w []byte, t dtype.Type, cols int, idx []int32, x []float32) {
	rb := rowBytes(t, cols)
	checkLen("MatVecRows dst", len(dst), len(idx))
	checkLen("MatVecRows x", len(x), cols)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mvr = matVecRowsTask{dst: dst, w: w, t: t, rb: rb, idx: idx, x: x}
	p.mvr.act = p.prepare(t, x, cols, 1)
	p.run(len(idx), mvChunkRows(rb, len(idx), p.threads), &p.mvr, nil)
	p.mvr = matVecRowsTask{}
}

type matVecRowsTask struct {
	dst []float32
	w   []byte
	t   dtype.Type
	rb  int
	idx []int32
	x   []float32
	act actInput
}

// gatherAhead is how many rows ahead of the one it computes MatVecRows
// prefetches: far enough that a row has arrived when its turn comes (the
// rows are scattered, so the hardware prefetchers do not fetch them),
// near enough not to flood the cache's miss queues.
const gatherAhead = 2

// gatherSparse: MatVecRows takes Q4_0 rows four at a time and F32, F16
// and BF16 rows two at a time when it lists at most one row in
// gatherSparse of the matrix. Sparse rows are islands in memory, and
// keeping several rows' loads in flight together pays (on the 2-core
// development machine, 5–25% of a 7B F16 gate took 20–25% less time; Q4_0
// gained 0–10% when the machine was idle, 15–40% when it was shared);
// denser rows come close to one stream that the hardware prefetchers
// follow, where one row at a time was up to 10% faster at 50%.
// gatherAlways: the AVX-512 VNNI four-row Q4_0 kernel
// (dotQ4_0Q8_0r4VNNI) pays at any density: a 7B Q4_0 layer's gate and up
// over 50% of the rows took 0.57–0.61 ms with it against 0.71–0.84 row
// by row (TestSparseFFNTable, alternating, on the development machine),
// and, with cold caches as in a decode (coldCaches), 0.68–1.02 ms against
// 1.07–1.18.
const (
	gatherSparse = 3
	gatherAlways = 1
)

// gatherDensity is the gatherSparse that applies to rows of type t.
func gatherDensity(t dtype.Type) int {
	if t == dtype.Q4_0 && useAsm && useVNNI {
		return gatherAlways
	}
	return gatherSparse
}

// Run computes the listed rows [lo, hi). Sparse enough rows of the types
// with a multi-row kernel (gatherGroupFor) go in groups to it, which keeps
// their loads in flight together and prefetches the next group; other
// rows one at a time, each row's kernel prefetching the row gatherAhead
// places on. The first rows are prefetched up front. Every row's result
// is the row kernel's bits.
func (m *matVecRowsTask) Run(lo, hi int) {
	rb, idx, w := m.rb, m.idx, m.w
	g := 0
	if len(idx)*gatherDensity(m.t) <= len(w)/max(rb, 1) {
		g = gatherGroupFor(m.t, &m.act)
	}
	for k := lo; k < min(lo+max(g, gatherAhead), hi); k++ {
		r := int(idx[k])
		prefetch(w[r*rb : r*rb+rb])
	}
	k := lo
	if g > 0 {
		var offs [2 * gatherGroupMax]int
		for ; k+g <= hi; k += g {
			for j := range g {
				offs[j] = int(idx[k+j]) * rb
				offs[g+j] = int(idx[min(k+g+j, hi-1)]) * rb
			}
			dotRowsGroup(m.t, &m.act, m.dst[k:k+g], w, offs[:2*g], m.x)
		}
	}
	for ; k < hi; k++ {
		r, nx := int(idx[k]), int(idx[min(k+gatherAhead, hi-1)])
		m.dst[k] = dotPrefetch(m.t, &m.act, w[r*rb:r*rb+rb], w[nx*rb:nx*rb+rb], m.x)
	}
}

// MatMul computes dst[i·rows + r] = Σ_c W[r,c]·x[i·cols + c] for i < n and
// r < rows: n mat-vecs with the same matrix (a prefill batch), reading the
// weights once. len(dst) must be n·rows and len(x) n·cols.
//
// Each input is quantized once (as MatVec does). Each worker takes a chunk
// of about chunkBytes of weight rows, a tile that stays in cache, and dots
// every row of it with all n inputs: the weights stream from memory once
// per call, not once per input. The inputs go in groups (of two to eight,
// see multi.go) to the multi-input kernels, which decode each weight block
// once for the whole group, and one at a time, by the row kernel, where no
// group is left or the type has no multi-input kernel. Groups of eight
// Q4_0 inputs whose rows span more than 64 blocks go in tiles (q4tile.go),
// which keep a slice of their activations in L1 for a tile of rows.
// Either way dst[i·rows + r] is bit for bit what MatVec gives for input i:
// the multi-input kernels compute each input's result with the row
// kernel's operations in the row kernel's order.
func (p *Pool) MatMul(dst []float32, w []byte, t dtype.Type, rows, cols int, x []float32, n int) {
	rb := rowBytes(t, cols)
	checkWeights(w, rows, rb)
	if n < 0 {
		panic(fmt.Sprintf("cpu: MatMul of %d inputs", n))
	}
	checkLen("MatMul dst", len(dst), n*rows)
	checkLen("MatMul x", len(x), n*cols)
	p.mu.Lock()
	defer p.mu.Unlock()
	if n == 0 {
		return
	}
	p.mm = matMulTask{dst: dst, w: w, t: t, rb: rb, rows: rows, cols: cols, x: x, n: n}
	p.mm.act = p.prepare(t, x, cols, n)
	p.mm.groups = p.group(t, n)
	passes := n // the groups' passes, then one per input left
	for _, g := range p.mm.groups {
		passes -= g.n - 1
	}
	p.run(rows, matMulChunk(t, rb, cols, n, passes, rows, p.threads), &p.mm, nil)
	p.mm = matMulTask{}
}

// group splits the n inputs of a MatMul with weights of type t, prepared
// by prepare, into groups for the multi-input kernels: it returns the
// groups, largest first, covering inputs 0 to Σ sizes − 1; the inputs
// after them go one at a time. p.mu is held.
func (p *Pool) group(t dtype.Type, n int) []qBatch {
	var sizes []int
	switch {
	case !useMulti:
	case ActivationType(t) == dtype.F32:
		if hasFloatMulti(t) {
			sizes = floatMultiSizes[:]
		}
	default:
		sizes = multiSizesFor(t)
	}
	p.qb = p.qb[:0]
	i := 0
	for _, s := range sizes {
		for ; n-i >= s; i += s {
			if len(p.qb) < cap(p.qb) {
				p.qb = p.qb[:len(p.qb)+1]
			} else {
				p.qb = append(p.qb, qBatch{})
			}
			b := &p.qb[len(p.qb)-1]
			if ActivationType(t) == dtype.F32 {
				b.t, b.n, b.nb = t, s, 0
				continue
			}
			var vs [maxMulti]*QVec
			for j := range s {
				vs[j] = &p.mm.act.qv[i+j]
			}
			b.assign(t, vs[:s])
		}
	}
	if len(p.qb) > 0 && ActivationType(t) != dtype.F32 {
		p.run(len(p.qb), 1, (*batchTask)(&p.qb), nil) // the assembly's layouts, on all threads
	}
	return p.qb
}

// batchTask builds the batches [lo, hi).
type batchTask []qBatch

func (b *batchTask) Run(lo, hi int) {
	for k := lo; k < hi; k++ {
		(*b)[k].build()
	}
}

// growScratch makes every worker's scratch at least n floats. p.mu is held.
func (p *Pool) growScratch(n int) {
	for i, s := range p.scr {
		if cap(s) < n {
			p.scr[i] = make([]float32, n)
		}
	}
}

// matMulAhead is how many rows ahead of the row it computes MatMul's
// multi-input row loop prefetches, on its first group's pass (the others
// find the chunk in cache). Several inputs make the multi-input kernels
// compute-bound, reading the weights at a fraction of the memory's
// bandwidth, yet they stalled on memory: a 5632×2048 Q4_0 product with
// two to eight inputs ran 25–45% slower from DRAM than from cache on the
// 2-core development machine (BenchmarkMatMulDRAM), as the hardware
// prefetchers stop at each 4 KiB page and seldom run ahead of so slow a
// stream. Prefetching each row two rows ahead took back 10–25%. The VNNI
// Q4_0 kernels prefetch the rows ahead themselves, a few lines an
// iteration (multiPrefetches), which did better still.
const matMulAhead = 2

// prefetchRow prefetches row r of the weights, if there is one.
func (m *matMulTask) prefetchRow(r int) {
	if r < m.rows {
		prefetch(m.w[r*m.rb : (r+1)*m.rb])
	}
}

type matMulTask struct {
	dst        []float32
	w          []byte
	t          dtype.Type
	rb         int
	rows, cols int
	x          []float32
	n          int
	act        actInput
	groups     []qBatch // the first inputs, in groups for the multi-input kernels
}

func (m *matMulTask) Run(lo, hi int) {
	rb, rows, cols := m.rb, m.rows, m.cols
	tile := m.w[lo*rb : hi*rb]
	i := 0 // first input of the group
	var out [2 * maxMulti]float32
	for k := range m.groups {
		g := &m.groups[k]
		if q4Tiled(m.t, g) {
			m.q4Tiles(g, i, lo, hi)
			i += g.n
			continue
		}
		for r := lo; r < hi; r++ {
			row := tile[(r-lo)*rb : (r-lo+1)*rb]
			if r+1 < hi && m.act.f != nil && qdotMulti2(m.t, out[:], tile[(r-lo)*rb:(r-lo+2)*rb], rb, g) {
				for j, v := range out[:g.n] { // two rows at once (vnni_amd64.go)
					m.dst[(i+j)*rows+r] = v
					m.dst[(i+j)*rows+r+1] = out[maxMulti+j]
				}
				r++ // the kernel prefetched the next pair
				continue
			}
			if k == 0 && !multiPrefetches(m.t, g) {
				m.prefetchRow(r + matMulAhead)
			}
			if m.act.f != nil {
				qdotMulti(m.t, out[:], row, g)
			} else {
				floatMulti(m.t, out[:], row, m.x[i*cols:(i+g.n)*cols], cols, g.n)
			}
			for j, v := range out[:g.n] {
				m.dst[(i+j)*rows+r] = v
			}
		}
		i += g.n
	}
	for ; i < m.n; i++ {
		xi := m.x[i*cols : (i+1)*cols]
		d := m.dst[i*rows+lo : i*rows+hi]
		for r := range d {
			d[r] = m.act.dot(m.t, tile[r*rb:(r+1)*rb], xi, i)
		}
	}
}
