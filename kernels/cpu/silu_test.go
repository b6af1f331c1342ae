package cpu_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
)

// TestSiLUImpls checks that the assembly SiLU gives the pure-Go twin's
// bits, over random values of every magnitude, the clamps' edges and the
// special values, at every length mod 16 (the vector loop and the tail),
// and that it is within 3 ulp of x/(1 + e^{−x}) in float64.
func TestSiLUImpls(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var x []float32
	for range 20000 {
		x = append(x, float32(rng.NormFloat64()*math.Pow(10, rng.Float64()*4-2)))
	}
	for v := float32(-100); v <= 100; v += 0.01 {
		x = append(x, v)
	}
	x = append(x, 0, float32(math.Copysign(0, -1)), 87, -87, 88, -88, 87.5, -87.5, 89, -89,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-30, -1e-30,
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32)
	for _, n := range []int{len(x), 1, 7, 8, 9, 15, 16, 17, 33} {
		xs := x[:n]
		asm, gen := bothImpls(func() []float32 {
			y := append([]float32(nil), xs...)
			cpu.SiLU(y)
			return y
		})
		for i, v := range xs {
			if math.Float32bits(asm[i]) != math.Float32bits(gen[i]) {
				t.Fatalf("n=%d: SiLU(%g): asm %g (%#x), generic %g (%#x)", n, v, asm[i], math.Float32bits(asm[i]), gen[i], math.Float32bits(gen[i]))
			}
		}
	}
	y := append([]float32(nil), x...)
	cpu.SiLU(y)
	worst := 0.0
	for i, v := range x {
		f := float64(v)
		want := f / (1 + math.Exp(-f))
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(want) < 1e-30 {
			continue
		}
		ulp := float64(math.Nextafter32(float32(math.Abs(want)), float32(math.Inf(1)))) - math.Abs(float64(float32(want)))
		if e := math.Abs(float64(y[i])-want) / ulp; e > worst {
			worst = e
		}
		if e := math.Abs(float64(y[i])-want) / ulp; e > 3 {
			t.Errorf("SiLU(%g) = %g, want %g (%.1f ulp)", v, y[i], want, e)
		}
	}
	t.Logf("worst error %.2f ulp", worst)
}

// TestExpSub checks softmax's exponentials: the assembly gives the Go
// form's bits at every length mod 8, and e^{x−m} to within 2 ulp where
// it is a normal float (x − m ≥ −87).
func TestExpSub(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	var x []float32
	for range 20000 {
		x = append(x, float32(rng.Float64()*100-95))
	}
	x = append(x, 5, -87, -88, -90, float32(math.Inf(-1)), float32(math.NaN()), 0)
	const m = 5
	for _, n := range []int{len(x), 1, 7, 8, 9, 17} {
		xs := x[:n]
		a := append([]float32(nil), xs...)
		g := append([]float32(nil), xs...)
		cpu.ExpSub(a, m)
		cpu.ExpSubGo(g, m)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(g[i]) {
				t.Fatalf("n=%d: exp(%g − %g): %g, Go %g", n, xs[i], float32(m), a[i], g[i])
			}
		}
	}
	y := append([]float32(nil), x...)
	cpu.ExpSub(y, m)
	for i, v := range x {
		d := v - m
		if !(d >= -87) {
			continue
		}
		want := math.Exp(float64(d))
		ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1)))) - float64(float32(want))
		if e := math.Abs(float64(y[i])-want) / ulp; e > 2 {
			t.Errorf("exp(%g) = %g, want %g (%.1f ulp)", d, y[i], want, e)
		}
	}
}
