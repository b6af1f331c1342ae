package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
)

// opLens are the vector lengths the element-wise tests use.
var opLens = []int{0, 1, 3, 4, 7, 64, 257}

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * scale)
	}
	return x
}

// within reports whether got is within tol·max(1, |want|) of want.
func within(got float32, want, tol float64) bool {
	return math.Abs(float64(got)-want) <= tol*max(1, math.Abs(want))
}

func TestRMSNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range opLens[1:] {
		for _, eps := range []float32{1e-5, 1e-6} {
			x := randSlice(rng, n, 3)
			w := randSlice(rng, n, 1)
			var ss float64
			for _, v := range x {
				ss += float64(v) * float64(v)
			}
			inv := 1 / math.Sqrt(ss/float64(n)+float64(eps))
			for _, withW := range []bool{true, false} {
				ww := w
				if !withW {
					ww = nil
				}
				dw, dst := guarded(n, guard)
				cpu.RMSNorm(dst, x, ww, eps)
				checkGuards(t, "RMSNorm", dw, n, guard)
				for i := range n {
					want := float64(x[i]) * inv
					if withW {
						want *= float64(w[i])
					}
					if !within(dst[i], want, 1e-6) {
						t.Fatalf("n %d eps %g w %v: dst[%d] = %g, want %g", n, eps, withW, i, dst[i], want)
					}
				}
			}
			// in place
			y := append([]float32(nil), x...)
			cpu.RMSNorm(y, y, w, eps)
			want := make([]float32, n)
			cpu.RMSNorm(want, x, w, eps)
			for i := range y {
				if y[i] != want[i] {
					t.Fatalf("in-place RMSNorm differs at %d", i)
				}
			}
		}
	}
}

func TestLayerNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, n := range opLens[1:] {
		x := randSlice(rng, n, 2)
		for i := range x {
			x[i] += 5 // a mean far from zero
		}
		w, b := randSlice(rng, n, 1), randSlice(rng, n, 1)
		var mean, vr float64
		for _, v := range x {
			mean += float64(v)
		}
		mean /= float64(n)
		for _, v := range x {
			vr += (float64(v) - mean) * (float64(v) - mean)
		}
		vr /= float64(n)
		const eps = 1e-5
		inv := 1 / math.Sqrt(vr+eps)
		for _, c := range []struct{ w, b []float32 }{{w, b}, {nil, b}, {w, nil}, {nil, nil}} {
			dw, dst := guarded(n, guard)
			cpu.LayerNorm(dst, x, c.w, c.b, eps)
			checkGuards(t, "LayerNorm", dw, n, guard)
			for i := range n {
				want := (float64(x[i]) - mean) * inv
				if c.w != nil {
					want *= float64(c.w[i])
				}
				if c.b != nil {
					want += float64(c.b[i])
				}
				if !within(dst[i], want, 1e-5) {
					t.Fatalf("n %d w %v b %v: dst[%d] = %g, want %g", n, c.w != nil, c.b != nil, i, dst[i], want)
				}
			}
		}
	}
}

func TestSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, n := range opLens {
		for _, scale := range []float64{1, 50} { // 50: e^x overflows float32 without the max
			x := randSlice(rng, n, scale)
			if n > 2 {
				x[1] = float32(math.Inf(-1)) // a masked entry
			}
			m := math.Inf(-1)
			for _, v := range x {
				m = math.Max(m, float64(v))
			}
			var sum float64
			for _, v := range x {
				sum += math.Exp(float64(v) - m)
			}
			want := make([]float64, n)
			for i, v := range x {
				want[i] = math.Exp(float64(v)-m) / sum
			}
			cpu.Softmax(x)
			var total float64
			for i := range x {
				if !within(x[i], want[i], 1e-6) {
					t.Fatalf("n %d scale %g: x[%d] = %g, want %g", n, scale, i, x[i], want[i])
				}
				total += float64(x[i])
			}
			if n > 0 && math.Abs(total-1) > 1e-5 {
				t.Errorf("n %d: probabilities sum to %g", n, total)
			}
		}
	}
}

// runcSiLU is llama2.c's run.c: val *= (1.0f / (1.0f + expf(-val))).
func runcSiLU(v float32) float32 {
	e := float32(math.Exp(float64(-v))) // expf, correctly rounded
	return v * (1 / (1 + e))
}

func TestActivations(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	x := randSlice(rng, 1000, 4)
	x = append(x, 0, -0, 20, -20, 100, -100, 1e-8, -1e-8)
	type act struct {
		name string
		f    func([]float32)
		ref  func(float64) float64
		tol  float64
	}
	acts := []act{
		{"SiLU", cpu.SiLU, func(v float64) float64 { return float64(runcSiLU(float32(v))) }, 1e-6},
		{"SiLUexact", cpu.SiLU, func(v float64) float64 { return v / (1 + math.Exp(-v)) }, 1e-6},
		{"GELU", cpu.GELU, func(v float64) float64 {
			return 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
		}, 1e-6},
		{"ReLU", cpu.ReLU, func(v float64) float64 { return math.Max(v, 0) }, 0},
	}
	for _, a := range acts {
		y := append([]float32(nil), x...)
		a.f(y)
		for i, v := range x {
			if want := a.ref(float64(v)); !within(y[i], want, a.tol) {
				t.Errorf("%s(%g) = %g, want %g", a.name, v, y[i], want)
			}
		}
	}
}

func TestSwiGLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, n := range opLens {
		g, u := randSlice(rng, n, 3), randSlice(rng, n, 2)
		dw, dst := guarded(n, guard)
		cpu.SwiGLU(dst, g, u)
		checkGuards(t, "SwiGLU", dw, n, guard)
		for i := range n {
			gv := float64(g[i])
			if want := gv / (1 + math.Exp(-gv)) * float64(u[i]); !within(dst[i], want, 1e-6) {
				t.Fatalf("SwiGLU[%d] = %g, want %g", i, dst[i], want)
			}
		}
	}
}

func TestVectorArithmetic(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(6, 6))
		for _, n := range opLens {
			a, b := randSlice(rng, n, 1), randSlice(rng, n, 1)
			check := func(name string, got []float32, want func(i int) float64) {
				t.Helper()
				for i := range n {
					if w := want(i); !within(got[i], w, 1e-6) {
						t.Fatalf("%s n %d: [%d] = %g, want %g", name, n, i, got[i], w)
					}
				}
			}
			dw, dst := guarded(n, guard)
			cpu.Add(dst, a, b)
			checkGuards(t, "Add", dw, n, guard)
			check("Add", dst, func(i int) float64 { return float64(a[i]) + float64(b[i]) })

			dw, dst = guarded(n, guard)
			cpu.Mul(dst, a, b)
			checkGuards(t, "Mul", dw, n, guard)
			check("Mul", dst, func(i int) float64 { return float64(a[i]) * float64(b[i]) })

			y := append([]float32(nil), a...)
			cpu.Scale(y, -2.5)
			check("Scale", y, func(i int) float64 { return -2.5 * float64(a[i]) })

			y = append(y[:0], a...)
			cpu.AddInPlace(y, b)
			check("AddInPlace", y, func(i int) float64 { return float64(a[i]) + float64(b[i]) })

			y = append(y[:0], a...)
			cpu.Axpy(y, 0.75, b)
			check("Axpy", y, func(i int) float64 { return float64(a[i]) + 0.75*float64(b[i]) })

			var dot, mag float64
			for i := range n {
				dot += float64(a[i]) * float64(b[i])
				mag += math.Abs(float64(a[i]) * float64(b[i]))
			}
			if got := cpu.Dot(a, b); math.Abs(float64(got)-dot) > 1e-6*mag+1e-30 {
				t.Errorf("Dot n %d = %g, want %g", n, got, dot)
			}
		}
	})
}

func TestOpsPanicOnLengthMismatch(t *testing.T) {
	a, b := make([]float32, 4), make([]float32, 5)
	for name, f := range map[string]func(){
		"Add":        func() { cpu.Add(a, a, b) },
		"Mul":        func() { cpu.Mul(a, b, a) },
		"AddInPlace": func() { cpu.AddInPlace(a, b) },
		"Axpy":       func() { cpu.Axpy(a, 1, b) },
		"Dot":        func() { cpu.Dot(a, b) },
		"SwiGLU":     func() { cpu.SwiGLU(a, a, b) },
		"RMSNorm":    func() { cpu.RMSNorm(a, b, nil, 1e-5) },
		"LayerNorm":  func() { cpu.LayerNorm(a, a, b, nil, 1e-5) },
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

func TestOpsNoAllocs(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		x, y, z := make([]float32, 256), make([]float32, 256), make([]float32, 256)
		for i := range x {
			x[i], y[i] = float32(i)/100, float32(i%7)
		}
		a := testing.AllocsPerRun(10, func() {
			cpu.RMSNorm(z, x, y, 1e-5)
			cpu.LayerNorm(z, x, y, y, 1e-5)
			cpu.Softmax(z)
			cpu.SiLU(z)
			cpu.GELU(z)
			cpu.ReLU(z)
			cpu.SwiGLU(z, x, y)
			cpu.Add(z, x, y)
			cpu.Mul(z, x, y)
			cpu.Scale(z, 2)
			cpu.AddInPlace(z, x)
			cpu.Axpy(z, 2, x)
			_ = cpu.Dot(x, y)
		})
		if a != 0 {
			t.Errorf("%v allocations", a)
		}
	})
}

func ExampleSoftmax() {
	x := []float32{1, 2, 3}
	cpu.Softmax(x)
	fmt.Printf("%.4f\n", x)
	// Output: [0.0900 0.2447 0.6652]
}
