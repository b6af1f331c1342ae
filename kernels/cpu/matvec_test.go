package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// computable lists every dtype the kernels compute with, in id order.
func computable() []dtype.Type {
	var ts []dtype.Type
	for t := dtype.Type(0); t < 64; t++ {
		if t.Computable() {
			ts = append(ts, t)
		}
	}
	return ts
}

// testCols returns a few row lengths valid for t: odd ones for plain types,
// one and several blocks for block types.
func testCols(t dtype.Type) []int {
	if bs := t.BlockSize(); bs > 1 {
		return []int{bs, 3 * bs}
	}
	return []int{1, 7, 64, 301}
}

// matrix is a quantized weight matrix and its dequantized values.
type matrix struct {
	t          dtype.Type
	rows, cols int
	rb         int
	w          []byte    // rows·rb bytes
	deq        []float64 // rows·cols, what the reference codec decodes
}

// newMatrix quantizes random values, about N(0,1) with a few outliers.
func newMatrix(tb testing.TB, rng *rand.Rand, t dtype.Type, rows, cols, offset int) *matrix {
	tb.Helper()
	rb, err := t.RowBytes(uint64(cols))
	if err != nil {
		tb.Fatal(err)
	}
	m := &matrix{t: t, rows: rows, cols: cols, rb: int(rb)}
	// offset shifts the data off its allocation's alignment; the bytes
	// around it are 0xff (NaN for every float and half).
	buf := make([]byte, rows*m.rb+offset+8)
	for i := range buf {
		buf[i] = 0xff
	}
	m.w = buf[offset : offset+rows*m.rb : offset+rows*m.rb]
	src := make([]float32, cols)
	row := make([]float32, cols)
	m.deq = make([]float64, rows*cols)
	for r := range rows {
		for c := range src {
			src[c] = float32(rng.NormFloat64())
			if rng.IntN(50) == 0 {
				src[c] *= 8
			}
		}
		wr := m.w[r*m.rb : (r+1)*m.rb]
		if err := dtype.Quantize(t, src, wr); err != nil {
			tb.Fatal(err)
		}
		if err := dtype.Dequantize(t, wr, row); err != nil {
			tb.Fatal(err)
		}
		for c, v := range row {
			m.deq[r*cols+c] = float64(v)
		}
	}
	return m
}

// dot returns row r of m dotted with x in float64, and Σ|w·x|, the scale
// the error is judged against.
func (m *matrix) dot(r int, x []float32) (sum, mag float64) {
	for c, w := range m.deq[r*m.cols : (r+1)*m.cols] {
		p := w * float64(x[c])
		sum += p
		mag += math.Abs(p)
	}
	return sum, mag
}

// guarded returns a slice of n values inside NaN guard bands of g values on
// each side (gonum's guardVector): writes past either end are caught by
// checkGuards, reads show up as NaN results.
func guarded(n, g int) (whole, inner []float32) {
	whole = make([]float32, n+2*g)
	for i := range whole {
		whole[i] = float32(math.NaN())
	}
	return whole, whole[g : g+n : g+n]
}

func checkGuards(t *testing.T, what string, whole []float32, n, g int) {
	t.Helper()
	for i, v := range whole {
		if (i < g || i >= g+n) && !math.IsNaN(float64(v)) {
			t.Errorf("%s: guard value %d overwritten with %g", what, i, v)
			return
		}
	}
}

func randVec(rng *rand.Rand, x []float32) {
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
}

const guard = 5

// relTol is the allowed error, relative to Σ|w·x|, of a mat-vec result.
const relTol = 1e-4

func closeTo(got float32, want, mag float64) bool {
	return math.Abs(float64(got)-want) <= relTol*mag+1e-30
}

func TestMatVec(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pools := []*cpu.Pool{cpu.NewPool(1), cpu.NewPool(3)}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	for _, typ := range computable() {
		for _, cols := range testCols(typ) {
			for _, rows := range []int{1, 2, 17, 130} {
				for _, off := range []int{0, 1} {
					m := newMatrix(t, rng, typ, rows, cols, off)
					xw, x := guarded(cols, guard)
					randVec(rng, x)
					for _, p := range pools {
						name := fmt.Sprintf("%s/%dx%d/off%d/threads%d", typ, rows, cols, off, p.Threads())
						dw, dst := guarded(rows, guard)
						p.MatVec(dst, m.w, typ, rows, cols, x)
						checkGuards(t, name+" dst", dw, rows, guard)
						checkGuards(t, name+" x", xw, cols, guard)
						for r := range rows {
							want, mag := m.dot(r, x)
							if !closeTo(dst[r], want, mag) {
								t.Errorf("%s: dst[%d] = %g, want %g (Σ|w·x| %g)", name, r, dst[r], want, mag)
								break
							}
						}
					}
				}
			}
		}
	}
}

func TestMatVecRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := cpu.NewPool(3)
	defer p.Close()
	for _, typ := range computable() {
		cols := testCols(typ)[1]
		rows := 50
		m := newMatrix(t, rng, typ, rows, cols, 1)
		x := make([]float32, cols)
		randVec(rng, x)
		for _, k := range []int{0, 1, 7, 120} {
			idx := make([]int32, k)
			for i := range idx {
				idx[i] = int32(rng.IntN(rows)) // repeats and any order
			}
			name := fmt.Sprintf("%s/%d of %d rows", typ, k, rows)
			dw, dst := guarded(k, guard)
			p.MatVecRows(dst, m.w, typ, cols, idx, x)
			checkGuards(t, name, dw, k, guard)
			for i, r := range idx {
				want, mag := m.dot(int(r), x)
				if !closeTo(dst[i], want, mag) {
					t.Errorf("%s: dst[%d] (row %d) = %g, want %g", name, i, r, dst[i], want)
					break
				}
			}
		}
	}
}

func TestMatMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	pools := []*cpu.Pool{cpu.NewPool(1), cpu.NewPool(3)}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	for _, typ := range computable() {
		cols := testCols(typ)[1]
		for _, rows := range []int{1, 6, 37} {
			for _, off := range []int{0, 1} {
				m := newMatrix(t, rng, typ, rows, cols, off)
				for n := 1; n <= 17; n++ {
					xw, x := guarded(n*cols, guard)
					randVec(rng, x)
					for _, p := range pools {
						name := fmt.Sprintf("%s/%dx%d/off%d/n%d/threads%d", typ, rows, cols, off, n, p.Threads())
						dw, dst := guarded(n*rows, guard)
						p.MatMul(dst, m.w, typ, rows, cols, x, n)
						checkGuards(t, name+" dst", dw, n*rows, guard)
						checkGuards(t, name+" x", xw, n*cols, guard)
					check:
						for i := range n {
							for r := range rows {
								want, mag := m.dot(r, x[i*cols:(i+1)*cols])
								if got := dst[i*rows+r]; !closeTo(got, want, mag) {
									t.Errorf("%s: dst[%d·%d+%d] = %g, want %g", name, i, rows, r, got, want)
									break check
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestMatMulZeroInputs(t *testing.T) {
	p := cpu.NewPool(2)
	defer p.Close()
	p.MatMul(nil, make([]byte, 4*3*8), dtype.F32, 3, 8, nil, 0)
}

func TestDriversNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	p := cpu.NewPool(2)
	defer p.Close()
	for _, typ := range computable() {
		cols, rows, n := testCols(typ)[1], 300, 5
		m := newMatrix(t, rng, typ, rows, cols, 0)
		x := make([]float32, n*cols)
		randVec(rng, x)
		dst := make([]float32, n*rows)
		idx := []int32{5, 1, 299, 7, 7, 0}
		p.MatMul(dst, m.w, typ, rows, cols, x, n) // grows the scratch
		for name, f := range map[string]func(){
			"MatVec":     func() { p.MatVec(dst[:rows], m.w, typ, rows, cols, x[:cols]) },
			"MatMul":     func() { p.MatMul(dst, m.w, typ, rows, cols, x, n) },
			"MatVecRows": func() { p.MatVecRows(dst[:len(idx)], m.w, typ, cols, idx, x[:cols]) },
		} {
			if a := testing.AllocsPerRun(20, f); a != 0 {
				t.Errorf("%s %s: %v allocations per call", name, typ, a)
			}
		}
	}
}

func TestDriversPanicOnBadShapes(t *testing.T) {
	p := cpu.NewPool(2)
	defer p.Close()
	w := make([]byte, 4*4*8)
	x := make([]float32, 8)
	dst := make([]float32, 4)
	for name, f := range map[string]func(){
		"short weights":    func() { p.MatVec(make([]float32, 5), w, dtype.F32, 5, 8, x) },
		"short x":          func() { p.MatVec(dst, w, dtype.F32, 4, 8, x[:7]) },
		"short dst":        func() { p.MatVec(dst[:3], w, dtype.F32, 4, 8, x) },
		"partial block":    func() { p.MatVec(dst, w, dtype.Q4_0, 4, 8, x) },
		"not computable":   func() { p.MatVec(dst, w, dtype.IQ2_XXS, 4, 256, x) },
		"MatMul short x":   func() { p.MatMul(make([]float32, 8), w, dtype.F32, 4, 8, x, 2) },
		"MatVecRows index": func() { p.MatVecRows(dst[:1], w, dtype.F32, 8, []int32{4}, x) },
		"MatVecRows neg":   func() { p.MatVecRows(dst[:1], w, dtype.F32, 8, []int32{-1}, x) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
