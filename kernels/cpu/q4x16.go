package cpu

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/stokehq/stoke/models/dtype"
)

// Packed Q4_0. The row-layout Q4_0 kernels give each row its own
// accumulators: a block's integer products land in eight dword lanes per
// input, and every lane then takes its own conversion, scale product and
// add. Sixteen rows interleaved block by block (PackQ4x16) put one row in
// each dword lane of a 512-bit register instead, and a block's 32
// products for sixteen rows become eight VPDPBUSD against the input's
// quants broadcast four at a time, with one conversion, one scale
// product and one add per sixteen rows. With eight inputs (the batched
// decode of eight streams) that was 1.2–1.7× the row layout's
// multiply-adds per second on the 2-core development machine (Zen 5,
// AVX-512 VNNI), and with one input 1.0–2.5× (BenchmarkMatMulQ4x16, from
// cache and from memory). The AVX2 kernels do the same with VPMADDUBSW,
// VPMADDWD and two 8-row halves. Where the wide register's lanes would
// otherwise each need their own float steps, one lane per row leaves the
// multiply units to the integer products: the 8-input VNNI kernel issues
// 64 VPDPBUSD per block against 24 float instructions.
//
// Layout: a rows×cols Q4_0 matrix (rows a multiple of 16) is rows/16
// groups of sixteen rows; group g holds the same bytes as rows
// 16g…16g+15 of the row layout, so a matrix packs in place. A group is
// cols/32 block units of 288 bytes, unit b holding block b of its
// sixteen rows:
//
//	[0, 32)             the rows' f16 scales d_r, row r at 2r
//	[32+64k, 96+64k)    for k < 4: the rows' quant bytes 4k…4k+3, row r at 4r
//
// Quant byte j of a block holds element j in its low nibble and element
// j+16 in its high one, as in the row layout.
//
// Arithmetic. With input j quantized to Q8_0 (scale d_y, quants y), the
// result of row r is, over its blocks b in order,
//
//	acc = 0;  acc = acc + float32(s_b)·(d_{r,b}·d_{y,b})
//	s_b = Σ_{e<32} (q_{r,b,e} − 8)·y_{b,e}     (an exact integer)
//
// each · and + one float32 rounding (no fused multiply-add). The
// row-layout kernels sum the same products in another order, so a packed
// matrix gives results a few ulps from the row layout's (the same
// quantization error bound, q8act.go), and every packed path, one input
// or n, AVX-512 VNNI, AVX2 or pure Go, gives dotQ4x16Generic's bits.

// Q4x16Rows is the row granularity of the packed layout.
const Q4x16Rows = 16

// q4x16Unit is the bytes of one block of a group: sixteen Q4_0 blocks.
const q4x16Unit = Q4x16Rows * 18

// Q4x16Packable reports whether a rows×cols Q4_0 matrix can be packed:
// rows a multiple of 16, cols of 32.
func Q4x16Packable(rows, cols int) bool {
	return rows > 0 && cols > 0 && rows%Q4x16Rows == 0 && cols%32 == 0
}

// Q4x16Pays reports whether packing Q4_0 matrices speeds this CPU up:
// where the packed kernels run in assembly (AVX-512 VNNI, or AVX2).
// Elsewhere the row layout's kernels are faster than the packed pure-Go
// twin. With AVX2 alone (STOKE_NOVNNI=1 on the development machine) the
// packed kernels ran eight inputs at 1.55–1.75× the row layout's
// multiply-adds per second and one input at 1.0–1.8×
// (BenchmarkMatMulQ4x16).
func Q4x16Pays() bool { return useAsm && haveAVX2 }

// PackQ4x16 packs the rows×cols Q4_0 matrix w, in the row layout, into
// the packed layout, in place. It panics if the shape is not packable or
// w holds fewer bytes.
func PackQ4x16(w []byte, rows, cols int) { repackX16(dtype.Q4_0, w, rows, cols, true) }

// UnpackQ4x16 undoes PackQ4x16, in place.
func UnpackQ4x16(w []byte, rows, cols int) { repackX16(dtype.Q4_0, w, rows, cols, false) }

// repackX16 packs (pack) or unpacks, in place, the rows×cols matrix w of
// type t (Q4_0 or Q8_0): a block of t is a 2-byte scale and qb quant
// bytes, and a packed unit holds the sixteen rows' scales, then qb/4
// vectors of 64 bytes, vector k holding every row's quant bytes 4k…4k+3.
func repackX16(t dtype.Type, w []byte, rows, cols int, pack bool) {
	mv := []kMove{{0, 2, 0, 2}} // the scale
	for k := range (t.TypeSize() - 2) / 4 {
		mv = append(mv, kMove{2 + 4*k, 4, 32 + 64*k, 4})
	}
	repackK(t, w, rows, cols, mv, pack)
}

// checkQ4x16 panics unless w holds a packable rows×cols Q4_0 matrix, and
// returns its row bytes.
func checkQ4x16(w []byte, rows, cols int) int { return checkPacked(dtype.Q4_0, w, rows, cols) }

// checkPacked is checkQ4x16 for a matrix of type t.
func checkPacked(t dtype.Type, w []byte, rows, cols int) int {
	if !PackableX16(t, rows, cols) {
		panic(fmt.Sprintf("cpu: a %d×%d %s matrix cannot be packed by 16 rows", rows, cols, t))
	}
	rb := rowBytes(t, cols)
	checkWeights(w, rows, rb)
	return rb
}

// PackableX16 reports whether a rows×cols matrix of type t can be packed
// by sixteen rows: t one of Q4_0, Q8_0 (Q4x16Packable), Q4_K, Q5_K and
// Q6_K (Q4Kx16Packable).
func PackableX16(t dtype.Type, rows, cols int) bool {
	switch t {
	case dtype.Q4_0, dtype.Q8_0:
		return Q4x16Packable(rows, cols)
	case dtype.Q4_K, dtype.Q5_K, dtype.Q6_K:
		return Q4Kx16Packable(rows, cols)
	}
	return false
}

// X16Pays reports whether packing matrices of type t by sixteen rows
// speeds this CPU up: Q4x16Pays for Q4_0, Q8x16Pays for Q8_0,
// Q4Kx16Pays for Q4_K (AVX2 or AVX-512 VNNI), q5kx16Asm for Q5_K (the
// same) and q6kx16Asm for Q6_K (AVX-512 VNNI only); false for the other
// types.
func X16Pays(t dtype.Type) bool {
	switch t {
	case dtype.Q4_0:
		return Q4x16Pays()
	case dtype.Q8_0:
		return Q8x16Pays()
	case dtype.Q4_K:
		return Q4Kx16Pays()
	case dtype.Q5_K:
		return q5kx16Asm()
	case dtype.Q6_K:
		return q6kx16Asm()
	}
	return false
}

// PackX16 packs the rows×cols matrix w of type t (PackableX16) in place:
// PackQ4x16, PackQ8x16, PackQ4Kx16, PackQ5Kx16 or PackQ6Kx16.
func PackX16(t dtype.Type, w []byte, rows, cols int) {
	switch t {
	case dtype.Q4_K:
		PackQ4Kx16(w, rows, cols)
	case dtype.Q5_K:
		PackQ5Kx16(w, rows, cols)
	case dtype.Q6_K:
		PackQ6Kx16(w, rows, cols)
	default:
		repackX16(t, w, rows, cols, true)
	}
}

// dotPacked is dotQ4x16, dotQ8x16, dotQ4Kx16, dotQ5Kx16 or dotQ6Kx16 as
// t says.
func dotPacked(t dtype.Type, ni int, w, x []byte, nb, stride int, dst []float32) {
	switch t {
	case dtype.Q8_0:
		dotQ8x16(ni, w, x, nb, stride, dst)
	case dtype.Q4_K:
		dotQ4Kx16(ni, w, x, nb, stride, dst)
	case dtype.Q5_K:
		dotQ5Kx16(ni, w, x, nb, stride, dst)
	case dtype.Q6_K:
		dotQ6Kx16(ni, w, x, nb, stride, dst)
	default:
		dotQ4x16(ni, w, x, nb, stride, dst)
	}
}

// packedIn is the bytes of one input's block in the packed kernels' input
// layout for rows of type t: 40 for Q4_0 and Q8_0 (packedPut), q4kx16In
// for Q4_K and Q5_K, q6kx16In for Q6_K.
func packedIn(t dtype.Type) int {
	switch t {
	case dtype.Q4_K, dtype.Q5_K:
		return q4kx16In
	case dtype.Q6_K:
		return q6kx16In
	}
	return 40
}

// packedCorr is the multiple of Σy a packed kernel's lane starts from:
// −8 for Q4_0's unsigned nibbles (q−8), −128 for Q8_0's quants biased to
// unsigned (q+128).
func packedCorr(t dtype.Type) int32 {
	if t == dtype.Q8_0 {
		return -128
	}
	return -8
}

// q4x16Kernel is the packed kernel (its input count: 8, 4, 2 or 1) that
// takes the next inputs when left remain: the largest that fits, except
// that seven go to the eight-input kernel with one spare input (zero, its
// results dropped) rather than to three kernels. A kernel's time grows
// nearly in proportion to its inputs, so a spare input pays only there:
// seven inputs took 0.93–0.97 of the time of 4 + 2 + 1, where five and
// six padded to eight took 1.17–1.27 of 4 + 1 and 4 + 2 (a 5632×2048
// matrix in cache, 2 threads, on the development machine).
var q4x16Kernel = [maxMulti + 1]int{0, 1, 2, 2, 4, 4, 4, 8, 8}

// q4x16Put writes input j of ni, the nb Q8_0 blocks q, into x, the packed
// kernels' layout of the ni inputs: per block, the inputs' 32 quants one
// after another, then each input's −8·Σy as a little-endian int32, then
// its scale d_y as a float32 (40 bytes per input and block).
func q4x16Put(x []byte, ni, j int, q []byte, nb int) { packedPut(x, ni, j, q, nb, -8) }

// packedPut is q4x16Put with c·Σy in place of −8·Σy: −8 for packed Q4_0,
// −128 for packed Q8_0 (q8x16.go).
func packedPut(x []byte, ni, j int, q []byte, nb int, c int32) {
	unit := 40 * ni
	x, q = x[:nb*unit], q[:34*nb]
	for b := range nb {
		u := x[b*unit : (b+1)*unit]
		blk := (*[34]byte)(q[34*b:])
		ys := (*[32]byte)(blk[2:])
		copy(u[32*j:32*j+32], ys[:])
		s := int32(0)
		for _, y := range ys {
			s += int32(int8(y))
		}
		binary.LittleEndian.PutUint32(u[32*ni+4*j:], uint32(c*s))
		binary.LittleEndian.PutUint32(u[36*ni+4*j:], math.Float32bits(f16at(blk[:])))
	}
}

// dotQ4x16Generic sets dst[j·stride + r], for the ni inputs j of x
// (q4x16Put's layout, nb blocks) and the sixteen rows r of the packed
// group w, to the packed arithmetic's result (see above).
func dotQ4x16Generic(ni int, w, x []byte, nb, stride int, dst []float32) {
	dotX16Generic(dtype.Q4_0, ni, w, x, nb, stride, dst)
}

// dotX16Generic is dotQ4x16Generic for packed rows of type t, Q4_0 or
// Q8_0 (dotQ8x16Generic). It forms each block's integer from the signed
// quants (q−8 for Q4_0), so the layout's c·Σy, which the assembly's
// unsigned operands need, is not read.
func dotX16Generic(t dtype.Type, ni int, w, x []byte, nb, stride int, dst []float32) {
	unit := Q4x16Rows * t.TypeSize()
	w, x = w[:nb*unit], x[:nb*40*ni]
	var acc [maxMulti][Q4x16Rows]float32
	var q [Q4x16Rows][32]int32
	for b := range nb {
		u := w[b*unit : (b+1)*unit]
		for r := range Q4x16Rows {
			if t == dtype.Q8_0 {
				for k := range 8 {
					for i, c := range u[32+64*k+4*r : 32+64*k+4*r+4] {
						q[r][4*k+i] = int32(int8(c))
					}
				}
				continue
			}
			for k := range 4 {
				for i, c := range u[32+64*k+4*r : 32+64*k+4*r+4] {
					q[r][4*k+i], q[r][16+4*k+i] = int32(c&15)-8, int32(c>>4)-8
				}
			}
		}
		xu := x[b*40*ni : (b+1)*40*ni]
		for j := range ni {
			y := xu[32*j : 32*j+32]
			dy := math.Float32frombits(binary.LittleEndian.Uint32(xu[36*ni+4*j:]))
			a := &acc[j]
			for r := range Q4x16Rows {
				s := int32(0)
				for e, v := range y {
					s += q[r][e] * int32(int8(v))
				}
				d := f16at(u[2*r:]) * dy
				t := float32(float32(s) * d)
				a[r] = float32(a[r] + t)
			}
		}
	}
	for j := range ni {
		copy(dst[j*stride:j*stride+Q4x16Rows], acc[j][:])
	}
}

// MatMulQ4x16 computes dst[i·rows + r] = Σ_c W[r,c]·x[i·cols + c] for the
// n inputs i and rows r of the Q4_0 matrix W packed by PackQ4x16 in w.
// The inputs are quantized to Q8_0 as for MatVec (straight into the
// packed kernels' layout, by blocks on all threads); n = 1 is the
// mat-vec. Each group of sixteen rows, read once, takes every input;
// the groups are split over the pool's threads in long runs for one
// input (mvChunkRows: the rows stream from memory), in shorter ones for
// more, whose compute-bound chunks would otherwise leave a thread idle at
// the end.
func (p *Pool) MatMulQ4x16(dst []float32, w []byte, rows, cols int, x []float32, n int) {
	p.MatMulQ4x16Set([]Q4x16Product{{Dst: dst, W: w, Rows: rows}}, cols, x, n)
}

// Q4x16Product is one matrix of MatMulQ4x16Set (or MatMulQ8x16Set): the
// packed weights W of Rows rows and the products' destination, as in
// MatMulQ4x16.
type Q4x16Product struct {
	Dst  []float32
	W    []byte
	Rows int
}

// q4x16MaxSet is the most matrices MatMulQ4x16Set takes: a layer's Q, K
// and V.
const q4x16MaxSet = 3

// MatMulQ4x16Set is MatMulQ4x16 for up to three matrices of cols columns
// that take the same n inputs (a layer's Q, K and V; gate and up): the
// inputs are quantized once and one pass of the pool covers every
// matrix's groups of rows. Each product is the bits MatMulQ4x16 gives.
func (p *Pool) MatMulQ4x16Set(ps []Q4x16Product, cols int, x []float32, n int) {
	p.MatMulPackedSet(dtype.Q4_0, ps, cols, x, n)
}

// MatMulPackedSet is MatMulQ4x16Set for matrices of type t packed by
// sixteen rows: Q4_0 (PackQ4x16), Q8_0 (PackQ8x16), Q4_K (PackQ4Kx16),
// Q5_K (PackQ5Kx16) or Q6_K (PackQ6Kx16; the k-quants' inputs are
// quantized to Q8_K, as for MatVec).
func (p *Pool) MatMulPackedSet(t dtype.Type, ps []Q4x16Product, cols int, x []float32, n int) {
	if !PackableX16(t, 16, 256) {
		panic(fmt.Sprintf("cpu: no packed layout for %s", t))
	}
	if len(ps) < 1 || len(ps) > q4x16MaxSet {
		panic(fmt.Sprintf("cpu: MatMulQ4x16Set of %d matrices", len(ps)))
	}
	if n < 0 {
		panic(fmt.Sprintf("cpu: MatMulQ4x16 of %d inputs", n))
	}
	var rb int
	for _, m := range ps {
		rb = checkPacked(t, m.W, m.Rows, cols)
		checkLen("MatMulQ4x16 dst", len(m.Dst), n*m.Rows)
	}
	checkLen("MatMulQ4x16 x", len(x), n*cols)
	if n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	nb, in := cols/t.BlockSize(), packedIn(t)
	tk := &p.pk
	*tk = q4x16Task{t: t, rb: rb, nb: nb, groups: tk.groups[:0], x: x, cols: cols}
	copy(tk.ps[:], ps)
	tk.nps = len(ps)
	total := 0
	for k, m := range ps {
		total += m.Rows / Q4x16Rows
		tk.ends[k] = total
	}
	for i := 0; i < n; {
		kn := q4x16Kernel[min(n-i, maxMulti)]
		ni := min(kn, n-i)
		k := len(tk.groups)
		if k == len(p.pkx) {
			p.pkx = append(p.pkx, nil)
		}
		p.pkx[k] = growBytes(p.pkx[k], nb*in*kn)
		if ni < kn {
			clear(p.pkx[k]) // the spare inputs: zero quants, sums and scales
		}
		tk.groups = append(tk.groups, q4x16Group{i0: i, n: ni, k: kn, x: p.pkx[k]})
		i += ni
	}
	for len(p.pkq) < p.threads {
		p.pkq = append(p.pkq, nil)
	}
	tk.q = p.pkq
	if n == 1 {
		tk.RunWorker(0, 0, nb)
	} else { // by blocks: the workers write apart, not into shared lines
		p.run(nb, max(nb/(2*p.threads), 4), nil, tk)
	}
	chunk := max(mvChunkRows(rb, total*Q4x16Rows, p.threads)/Q4x16Rows, 1)
	if n > 1 {
		chunk = max(total/(q4x16ChunksPerThread*p.threads), 1)
	}
	p.run(total, chunk, tk, nil)
	*tk = q4x16Task{groups: tk.groups[:0]}
}

// q4x16ChunksPerThread is how many chunks per thread MatMulQ4x16 cuts
// the groups of rows into for more than one input.
const q4x16ChunksPerThread = 8

// q4x16Task is MatMulQ4x16's work: groups of rows [lo, hi) against every
// group of inputs (Run), after the inputs are quantized into the groups'
// layout (prep).
type q4x16Task struct {
	t      dtype.Type // Q4_0, Q8_0, Q4_K, Q5_K or Q6_K
	ps     [q4x16MaxSet]Q4x16Product
	nps    int
	ends   [q4x16MaxSet]int // groups of rows of ps[:k+1]
	rb     int
	nb     int
	groups []q4x16Group
	x      []float32 // the inputs, for prep
	cols   int
	q      [][]byte // per worker: one input's Q8_0 blocks
}

// q4x16Group is a group of inputs of MatMulQ4x16: inputs [i0, i0+n), laid
// out by q4x16Put (or q4kx16Put) in x for the kernel of k ≥ n inputs
// (the rest spare).
type q4x16Group struct {
	i0, n, k int
	x        []byte
}

func (t *q4x16Task) Run(lo, hi int) {
	span := Q4x16Rows * t.rb
	k, start := 0, 0
	for g := lo; g < hi; g++ {
		for g >= t.ends[k] {
			start = t.ends[k]
			k++
		}
		m := &t.ps[k]
		r := g - start
		w := m.W[r*span : (r+1)*span]
		for _, in := range t.groups {
			if in.n == in.k {
				dotPacked(t.t, in.n, w, in.x, t.nb, m.Rows, m.Dst[in.i0*m.Rows+r*Q4x16Rows:])
				continue
			}
			// spare inputs: the kernel's results go here, the real ones on
			var tmp [maxMulti * Q4x16Rows]float32
			dotPacked(t.t, in.k, w, in.x, t.nb, Q4x16Rows, tmp[:])
			for j := range in.n {
				copy(m.Dst[(in.i0+j)*m.Rows+r*Q4x16Rows:][:Q4x16Rows], tmp[j*Q4x16Rows:])
			}
		}
	}
}

// RunWorker quantizes blocks [lo, hi) of every input into their groups'
// layout, in worker w's scratch: the preparation MatMulQ4x16 runs before
// Run.
func (t *q4x16Task) RunWorker(w, lo, hi int) {
	nb := hi - lo
	if t.t == dtype.Q4_K || t.t == dtype.Q5_K || t.t == dtype.Q6_K {
		t.q[w] = growBytes(t.q[w], 292*nb)
		q := t.q[w]
		in, put := q4kx16In, q4kx16Put // Q4_K and Q5_K
		if t.t == dtype.Q6_K {
			in, put = q6kx16In, q6kx16Put
		}
		for _, g := range t.groups {
			for j := range g.n {
				i := g.i0 + j
				quantizeQ8_K(t.x[i*t.cols+256*lo:i*t.cols+256*hi], q, nb)
				put(g.x[lo*in*g.k:], g.k, j, q, nb)
			}
		}
		return
	}
	t.q[w] = growBytes(t.q[w], 34*nb)
	q := t.q[w]
	for _, g := range t.groups {
		for j := range g.n {
			i := g.i0 + j
			quantizeQ8_0(t.x[i*t.cols+32*lo:i*t.cols+32*hi], q, nb)
			packedPut(g.x[lo*40*g.k:], g.k, j, q, nb, packedCorr(t.t))
		}
	}
}
