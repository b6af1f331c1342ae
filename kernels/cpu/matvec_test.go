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

// q8Slack is the bound on |x − x̂| per unit of the block scale d =
// max|x_block|/127 for Q8_0 activations: half a quantization step plus the
// f16 rounding of d (relative 2⁻¹¹) times the largest quant, 127. Q8_K
// keeps d in float32: half a step and a few ulps.
const (
	q8Slack  = 0.5 + 127.0/2048
	q8KSlack = 0.5 + 1e-5
)

// actInput returns what the drivers multiply weights of type t with: x̂,
// x quantized to ActivationType(t) and decoded again (x itself for the
// float types), and per element the bound on |x − x̂| that q8act.go
// derives, computed from x alone.
func actInput(tb testing.TB, t dtype.Type, x []float32) (xhat []float32, bound []float64) {
	tb.Helper()
	at := cpu.ActivationType(t)
	bound = make([]float64, len(x))
	if at == dtype.F32 {
		return x, bound
	}
	rb, err := at.RowBytes(uint64(len(x)))
	if err != nil {
		tb.Fatal(err)
	}
	q := make([]byte, rb)
	slack := q8Slack
	if at == dtype.Q8_0 {
		cpu.QuantizeQ8_0(x, q)
	} else {
		cpu.QuantizeQ8_K(x, q)
		slack = q8KSlack
	}
	xhat = make([]float32, len(x))
	if err := dtype.Dequantize(at, q, xhat); err != nil {
		tb.Fatal(err)
	}
	bs := at.BlockSize()
	for b := 0; b < len(x); b += bs {
		var amax float64
		for _, v := range x[b : b+bs] {
			amax = max(amax, math.Abs(float64(v)))
		}
		for j := b; j < b+bs; j++ {
			bound[j] = slack * amax / 127
		}
	}
	return xhat, bound
}

// checkRow checks one driver result got for row r of m and input x: it
// must match the float64 dot with x̂ to float rounding (relTol), and the
// dot with x itself within the quantization bound Σ|w_c|·bound_c.
func (m *matrix) checkRow(r int, x, xhat []float32, bound []float64, got float32) error {
	want, mag := m.dot(r, xhat)
	if !closeTo(got, want, mag) {
		return fmt.Errorf("= %g, want %g (Σ|w·x̂| %g)", got, want, mag)
	}
	exact, emag := m.dot(r, x)
	var qerr float64
	for c, w := range m.deq[r*m.cols : (r+1)*m.cols] {
		qerr += math.Abs(w) * bound[c]
	}
	if d := math.Abs(float64(got) - exact); d > qerr+relTol*emag+1e-30 {
		return fmt.Errorf("= %g, exact Σw·x = %g: error %g beyond the quantization bound %g", got, exact, d, qerr)
	}
	return nil
}

func TestMatVec(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
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
						xhat, bound := actInput(t, typ, x)
						for _, p := range pools {
							name := fmt.Sprintf("%s/%dx%d/off%d/threads%d", typ, rows, cols, off, p.Threads())
							dw, dst := guarded(rows, guard)
							p.MatVec(dst, m.w, typ, rows, cols, x)
							checkGuards(t, name+" dst", dw, rows, guard)
							checkGuards(t, name+" x", xw, cols, guard)
							for r := range rows {
								if err := m.checkRow(r, x, xhat, bound, dst[r]); err != nil {
									t.Errorf("%s: dst[%d] %v", name, r, err)
									break
								}
							}
						}
					}
				}
			}
		}
	})
}

func TestMatVecRows(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		p := cpu.NewPool(3)
		defer p.Close()
		for _, typ := range computable() {
			cols := testCols(typ)[1]
			rows := 50
			m := newMatrix(t, rng, typ, rows, cols, 1)
			x := make([]float32, cols)
			randVec(rng, x)
			xhat, bound := actInput(t, typ, x)
			full := make([]float32, rows)
			p.MatVec(full, m.w, typ, rows, cols, x)
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
					if err := m.checkRow(int(r), x, xhat, bound, dst[i]); err != nil {
						t.Errorf("%s: dst[%d] (row %d) %v", name, i, r, err)
						break
					}
					if math.Float32bits(dst[i]) != math.Float32bits(full[r]) {
						t.Errorf("%s: dst[%d] (row %d) = %g, MatVec gives %g (must be the same bits)", name, i, r, dst[i], full[r])
						break
					}
				}
			}
		}
	})
}

func TestMatMul(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
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
						type input struct {
							xhat  []float32
							bound []float64
							mv    []float32 // MatVec's result
						}
						in := make([]input, n)
						for i := range in {
							xi := x[i*cols : (i+1)*cols]
							in[i].xhat, in[i].bound = actInput(t, typ, xi)
							in[i].mv = make([]float32, rows)
							pools[0].MatVec(in[i].mv, m.w, typ, rows, cols, xi)
						}
						for _, p := range pools {
							name := fmt.Sprintf("%s/%dx%d/off%d/n%d/threads%d", typ, rows, cols, off, n, p.Threads())
							dw, dst := guarded(n*rows, guard)
							p.MatMul(dst, m.w, typ, rows, cols, x, n)
							checkGuards(t, name+" dst", dw, n*rows, guard)
							checkGuards(t, name+" x", xw, n*cols, guard)
						check:
							for i := range n {
								for r := range rows {
									got := dst[i*rows+r]
									if err := m.checkRow(r, x[i*cols:(i+1)*cols], in[i].xhat, in[i].bound, got); err != nil {
										t.Errorf("%s: dst[%d·%d+%d] %v", name, i, rows, r, err)
										break check
									}
									if math.Float32bits(got) != math.Float32bits(in[i].mv[r]) {
										t.Errorf("%s: dst[%d·%d+%d] = %g, MatVec gives %g (must be the same bits)", name, i, rows, r, got, in[i].mv[r])
										break check
									}
								}
							}
						}
					}
				}
			}
		}
	})
}

func TestMatMulZeroInputs(t *testing.T) {
	p := cpu.NewPool(2)
	defer p.Close()
	p.MatMul(nil, make([]byte, 4*3*8), dtype.F32, 3, 8, nil, 0)
}

func TestDriversNoAllocs(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
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
	})
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
