package cpu

import (
	"fmt"
	"unsafe"

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

// chunkBytes is the amount of weights one claimed chunk covers: large
// enough that the atomic claim and call overhead vanish next to streaming
// the bytes, small enough (a few chunks per thread even for small matrices)
// that dynamic balancing evens out uneven threads.
const chunkBytes = 32 << 10

// mmRows is how many weight rows MatMul dots with each input at once.
const mmRows = 4

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

// rowsPerChunk is the chunk size, in rows of rb bytes, for the drivers.
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

// MatVec computes dst[r] = Σ_c W[r,c]·x[c] for r < rows, W being the rows×cols
// matrix of type t in w (see the layout above; len(w) ≥ rows·RowBytes(cols)).
// len(dst) must be rows and len(x) cols. Rows are split over the pool's
// threads in chunks of about chunkBytes of weights, each computed by DotRows.
func (p *Pool) MatVec(dst []float32, w []byte, t dtype.Type, rows, cols int, x []float32) {
	rb := rowBytes(t, cols)
	checkWeights(w, rows, rb)
	checkLen("MatVec dst", len(dst), rows)
	checkLen("MatVec x", len(x), cols)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mv = matVecTask{dst: dst, w: w, t: t, rb: rb, x: x}
	p.run(rows, rowsPerChunk(rb), &p.mv, nil)
	p.mv = matVecTask{}
}

type matVecTask struct {
	dst []float32
	w   []byte
	t   dtype.Type
	rb  int
	x   []float32
}

func (m *matVecTask) Run(lo, hi int) {
	DotRows(m.t, m.dst[lo:hi], m.w[lo*m.rb:hi*m.rb], m.rb, m.x)
}

// MatVecRows computes dst[k] = Σ_c W[idx[k],c]·x[c] for k < len(idx): the
// mat-vec restricted to the listed rows of W (cols elements of type t per
// row), for sparse layers that compute only the active neurons. len(dst)
// must be len(idx) and len(x) cols; an index outside w panics.
func (p *Pool) MatVecRows(dst []float32, w []byte, t dtype.Type, cols int, idx []int32, x []float32) {
	rb := rowBytes(t, cols)
	checkLen("MatVecRows dst", len(dst), len(idx))
	checkLen("MatVecRows x", len(x), cols)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mvr = matVecRowsTask{dst: dst, w: w, t: t, rb: rb, idx: idx, x: x}
	p.run(len(idx), rowsPerChunk(rb), &p.mvr, nil)
	p.mvr = matVecRowsTask{}
}

type matVecRowsTask struct {
	dst []float32
	w   []byte
	t   dtype.Type
	rb  int
	idx []int32
	x   []float32
}

func (m *matVecRowsTask) Run(lo, hi int) {
	rb := m.rb
	for k := lo; k < hi; k++ {
		r := int(m.idx[k])
		m.dst[k] = DotRow(m.t, m.w[r*rb:r*rb+rb], m.x)
	}
}

// MatMul computes dst[i·rows + r] = Σ_c W[r,c]·x[i·cols + c] for i < n and
// r < rows: n mat-vecs with the same matrix (a prefill batch), reading the
// weights once. len(dst) must be n·rows and len(x) n·cols.
//
// Each worker takes a chunk of rows and, mmRows rows at a time, decodes the
// rows once into its own scratch (F32 rows are used in place) and dots them
// with all n inputs. The results equal n MatVec calls up to float32
// rounding, which may differ since quantized types are dotted after
// dequantization here.
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
	p.growScratch(mmRows * cols)
	p.mm = matMulTask{dst: dst, w: w, t: t, rb: rb, rows: rows, cols: cols, x: x, n: n, scr: p.scr}
	grain := (rowsPerChunk(rb) + mmRows - 1) / mmRows * mmRows
	p.run(rows, grain, nil, &p.mm)
	p.mm = matMulTask{}
}

// growScratch makes every worker's scratch at least n floats. p.mu is held.
func (p *Pool) growScratch(n int) {
	for i, s := range p.scr {
		if cap(s) < n {
			p.scr[i] = make([]float32, n)
		}
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
	scr        [][]float32
}

func (m *matMulTask) RunWorker(id, lo, hi int) {
	cols, rows := m.cols, m.rows
	scr := m.scr[id][:mmRows*cols]
	var wr [mmRows][]float32
	for r0 := lo; r0 < hi; r0 += mmRows {
		g := min(mmRows, hi-r0)
		for j := range g {
			wr[j] = m.row(r0+j, scr[j*cols:(j+1)*cols:(j+1)*cols])
		}
		for i := range m.n {
			xi := m.x[i*cols : (i+1)*cols : (i+1)*cols]
			d := m.dst[i*rows+r0 : i*rows+r0+g]
			if g == mmRows {
				d[0], d[1], d[2], d[3] = dot4(wr[0], wr[1], wr[2], wr[3], xi)
				continue
			}
			for j := range g {
				d[j] = Dot(wr[j], xi)
			}
		}
	}
}

// row returns row r of W as float32: in place for aligned F32 weights,
// otherwise decoded into buf.
func (m *matMulTask) row(r int, buf []float32) []float32 {
	b := m.w[r*m.rb : (r+1)*m.rb]
	if m.t == dtype.F32 && littleEndian && m.cols > 0 && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), m.cols)
	}
	DequantizeRow(m.t, b, buf)
	return buf
}

// littleEndian reports whether float32 values in memory have GGUF's byte
// order, so F32 weights can be read in place.
var littleEndian = func() bool {
	x := uint32(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// dot4 returns the dots of a, b, c and d with x, all of len(x) elements.
func dot4(a, b, c, d, x []float32) (float32, float32, float32, float32) {
	a, b, c, d = a[:len(x)], b[:len(x)], c[:len(x)], d[:len(x)]
	var s0, s1, s2, s3 float32
	for i, v := range x {
		s0 += a[i] * v
		s1 += b[i] * v
		s2 += c[i] * v
		s3 += d[i] * v
	}
	return s0, s1, s2, s3
}
