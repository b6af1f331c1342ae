package cpu_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// randQ4_0 returns a rows×cols Q4_0 matrix of random quants whose scales
// are random in ±[0.001, 0.021), with a few zero and a few negative.
func randQ4_0(rng *rand.Rand, rows, cols int) []byte {
	w := make([]byte, rows*cols/32*18)
	for i := range w {
		w[i] = byte(rng.Uint32())
	}
	for b := 0; b < len(w); b += 18 {
		d := float32(rng.Float64()*0.02 + 0.001)
		switch rng.IntN(16) {
		case 0:
			d = 0
		case 1, 2:
			d = -d
		}
		binary.LittleEndian.PutUint16(w[b:], dtype.F32ToF16(d))
	}
	return w
}

func TestPackQ4x16RoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, shape := range [][2]int{{16, 32}, {32, 64}, {48, 2048}} {
		rows, cols := shape[0], shape[1]
		w := randQ4_0(rng, rows, cols)
		orig := bytes.Clone(w)
		cpu.PackQ4x16(w, rows, cols)
		if bytes.Equal(w, orig) {
			t.Fatalf("%v: packing changed nothing", shape)
		}
		// Spot-check the layout: row r's block b in group g.
		rb, nb := cols/32*18, cols/32
		for range 20 {
			r, b := rng.IntN(rows), rng.IntN(nb)
			src := orig[r*rb+18*b : r*rb+18*b+18]
			u := w[(r/16*nb+b)*288 : (r/16*nb+b+1)*288]
			lane := r % 16
			if u[2*lane] != src[0] || u[2*lane+1] != src[1] {
				t.Fatalf("%v: row %d block %d: scale not at %d", shape, r, b, 2*lane)
			}
			for k := range 4 {
				if !bytes.Equal(u[32+64*k+4*lane:36+64*k+4*lane], src[2+4*k:6+4*k]) {
					t.Fatalf("%v: row %d block %d: quants %d–%d misplaced", shape, r, b, 4*k, 4*k+3)
				}
			}
		}
		cpu.UnpackQ4x16(w, rows, cols)
		if !bytes.Equal(w, orig) {
			t.Fatalf("%v: unpack(pack(w)) != w", shape)
		}
	}
}

func TestQ4x16Packable(t *testing.T) {
	for _, c := range []struct {
		rows, cols int
		ok         bool
	}{{16, 32, true}, {4096, 11008, true}, {8, 32, false}, {24, 32, false}, {16, 48, false}, {0, 32, false}} {
		if got := cpu.Q4x16Packable(c.rows, c.cols); got != c.ok {
			t.Errorf("Q4x16Packable(%d, %d) = %v, want %v", c.rows, c.cols, got, c.ok)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("PackQ4x16 of 24 rows did not panic")
		}
	}()
	cpu.PackQ4x16(make([]byte, 24*18), 24, 32)
}

// q4x16Exact returns, for every row of the row-layout Q4_0 matrix w and
// input v, the packed arithmetic in float64 (no rounding but the inputs'
// quantization) and Σ_b |term_b|, the scale of its rounding error.
func q4x16Exact(w []byte, rows, cols int, v *cpu.QVec) (exact, scale []float64) {
	blocks := v.Blocks()
	nb, rb := cols/32, cols/32*18
	for r := range rows {
		var e, s float64
		for b := range nb {
			wb := w[r*rb+18*b : r*rb+18*b+18]
			yb := blocks[34*b : 34*b+34]
			sum := 0
			for i := range 16 {
				sum += (int(wb[2+i]&15) - 8) * int(int8(yb[2+i]))
				sum += (int(wb[2+i]>>4) - 8) * int(int8(yb[18+i]))
			}
			term := float64(sum) * float64(dtype.F16ToF32(binary.LittleEndian.Uint16(wb))) * float64(dtype.F16ToF32(binary.LittleEndian.Uint16(yb)))
			e += term
			s += math.Abs(term)
		}
		exact, scale = append(exact, e), append(scale, s)
	}
	return
}

// TestMatMulQ4x16 checks the packed drivers against the packed arithmetic
// done exactly, and that every way of computing a row gives the same
// bits: n inputs at once or one at a time, assembly (every instruction
// set the CPU has: impls) or pure Go, any thread count.
func TestMatMulQ4x16(t *testing.T) { eachImpl(t, testMatMulQ4x16) }

func testMatMulQ4x16(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p1, p3 := cpu.NewPool(1), cpu.NewPool(3)
	defer p1.Close()
	defer p3.Close()
	for _, shape := range [][2]int{{16, 32}, {48, 96}, {64, 2048}, {160, 5632}} {
		rows, cols := shape[0], shape[1]
		w := randQ4_0(rng, rows, cols)
		packed := bytes.Clone(w)
		cpu.PackQ4x16(packed, rows, cols)
		for _, n := range []int{1, 2, 3, 7, 8, 13, 17, 19, 27} {
			t.Run(fmt.Sprintf("%dx%d/n=%d", rows, cols, n), func(t *testing.T) {
				x := randSlice(rng, n*cols, 1)
				got := make([]float32, n*rows)
				p3.MatMulQ4x16(got, packed, rows, cols, x, n)
				for i := range n {
					var v cpu.QVec
					v.Quantize(dtype.Q4_0, x[i*cols:(i+1)*cols])
					exact, scale := q4x16Exact(w, rows, cols, &v)
					one := make([]float32, rows)
					p1.MatMulQ4x16(one, packed, rows, cols, x[i*cols:(i+1)*cols], 1)
					for r := range rows {
						g := got[i*rows+r]
						if math.Float32bits(g) != math.Float32bits(one[r]) {
							t.Fatalf("input %d row %d: %v with %d inputs, %v alone", i, r, g, n, one[r])
						}
						if d := math.Abs(float64(g) - exact[r]); d > 1e-6*scale[r]+1e-30 {
							t.Fatalf("input %d row %d: %v, exact %v (scale %v)", i, r, g, exact[r], scale[r])
						}
					}
				}
				restore := cpu.SetGeneric(true)
				gen := make([]float32, n*rows)
				p3.MatMulQ4x16(gen, packed, rows, cols, x, n)
				restore()
				for k := range gen {
					if math.Float32bits(gen[k]) != math.Float32bits(got[k]) {
						t.Fatalf("result %d: pure Go %v, assembly %v", k, gen[k], got[k])
					}
				}
			})
		}
	}
}

// TestQ4x16GenericKernel checks the pure-Go packed kernel by itself
// against the exact arithmetic, stride included (the one test of it that
// does not go through the driver).
func TestQ4x16GenericKernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const rows, cols, stride = 16, 128, 20
	w := randQ4_0(rng, rows, cols)
	packed := bytes.Clone(w)
	cpu.PackQ4x16(packed, rows, cols)
	vs := make([]*cpu.QVec, 4)
	for j := range vs {
		vs[j] = new(cpu.QVec)
		vs[j].Quantize(dtype.Q4_0, randSlice(rng, cols, 1))
	}
	dst := make([]float32, 3*stride+16)
	cpu.Q4x16Generic(4, packed, cpu.Q4x16Inputs(vs), cols/32, stride, dst)
	for j, v := range vs {
		exact, scale := q4x16Exact(w, rows, cols, v)
		for r := range rows {
			if d := math.Abs(float64(dst[j*stride+r]) - exact[r]); d > 1e-6*scale[r]+1e-30 {
				t.Fatalf("input %d row %d: %v, exact %v", j, r, dst[j*stride+r], exact[r])
			}
		}
	}
}

// TestMatMulQ4x16Set: three matrices of different heights that share
// their inputs give, in one MatMulQ4x16Set, the bits of three
// MatMulQ4x16 calls; and a set beyond three matrices panics.
func TestMatMulQ4x16Set(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	p := cpu.NewPool(2)
	defer p.Close()
	const cols = 256
	heights := []int{64, 16, 48}
	var ps []cpu.Q4x16Product
	for _, rows := range heights {
		w := randQ4_0(rng, rows, cols)
		cpu.PackQ4x16(w, rows, cols)
		ps = append(ps, cpu.Q4x16Product{W: w, Rows: rows})
	}
	for _, n := range []int{1, 5, 8, 11} {
		x := randSlice(rng, n*cols, 1)
		for k := range ps {
			ps[k].Dst = make([]float32, n*heights[k])
		}
		p.MatMulQ4x16Set(ps, cols, x, n)
		for k, m := range ps {
			want := make([]float32, n*m.Rows)
			p.MatMulQ4x16(want, m.W, m.Rows, cols, x, n)
			for i := range want {
				if math.Float32bits(want[i]) != math.Float32bits(m.Dst[i]) {
					t.Fatalf("n=%d matrix %d result %d: %v in the set, %v alone", n, k, i, m.Dst[i], want[i])
				}
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("MatMulQ4x16Set of four matrices did not panic")
		}
	}()
	p.MatMulQ4x16Set(append(ps, ps[0]), cols, randSlice(rng, cols, 1), 1)
}
