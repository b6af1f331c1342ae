package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
)

// ropeRef rotates x (nHeads heads of r.HeadDim) in float64, straight from
// the formula in RoPE's doc comment.
func ropeRef(r cpu.RoPE, x []float32, nHeads, pos int) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	scale := r.Scale
	if scale == 0 {
		scale = 1
	}
	half := r.Dims / 2
	for h := range nHeads {
		y := out[h*r.HeadDim : (h+1)*r.HeadDim]
		for i := range half {
			f := 1.0
			if r.FreqFactors != nil {
				f = float64(r.FreqFactors[i])
			}
			theta := float64(pos) * scale / (math.Pow(r.Base, float64(2*i)/float64(r.Dims)) * f)
			a, b := 2*i, 2*i+1
			if r.NeoX {
				a, b = i, i+half
			}
			y[a], y[b] = y[a]*math.Cos(theta)-y[b]*math.Sin(theta), y[a]*math.Sin(theta)+y[b]*math.Cos(theta)
		}
	}
	return out
}

func TestRoPE(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 7))
	factors := make([]float32, 32)
	for i := range factors {
		factors[i] = 1 + float32(i)/4
	}
	cfgs := []cpu.RoPE{
		{Dims: 64, HeadDim: 64, Base: 10000},
		{Dims: 64, HeadDim: 64, Base: 10000, NeoX: true},
		{Dims: 32, HeadDim: 128, Base: 1e6, NeoX: true}, // partial rotary
		{Dims: 32, HeadDim: 80, Base: 10000},            // partial, normal
		{Dims: 128, HeadDim: 128, Base: 500000, Scale: 0.25},
		{Dims: 64, HeadDim: 64, Base: 500000, FreqFactors: factors},
		{Dims: 64, HeadDim: 64, Base: 10000, NeoX: true, FreqFactors: factors, Scale: 0.5},
		{Dims: 2, HeadDim: 2, Base: 10000},
		{Dims: 0, HeadDim: 8, Base: 10000}, // no rotation at all
	}
	for _, cfg := range cfgs {
		r := cpu.NewRoPE(cfg)
		for _, nHeads := range []int{1, 3} {
			for _, pos := range []int{0, 1, 17, 4095, 100000} {
				name := fmt.Sprintf("dims %d/%d neox %v scale %g ff %v heads %d pos %d",
					cfg.Dims, cfg.HeadDim, cfg.NeoX, cfg.Scale, cfg.FreqFactors != nil, nHeads, pos)
				x := randSlice(rng, nHeads*cfg.HeadDim, 1)
				want := ropeRef(cfg, x, nHeads, pos)
				r.Apply(x, nHeads, pos)
				for i := range x {
					if math.Abs(float64(x[i])-want[i]) > 1e-6 {
						t.Fatalf("%s: x[%d] = %g, want %g", name, i, x[i], want[i])
					}
				}
			}
		}
	}
}

// The rotation preserves each pair's norm and position 0 is the identity.
func TestRoPEIdentityAtZero(t *testing.T) {
	r := cpu.NewRoPE(cpu.RoPE{Dims: 16, HeadDim: 16, Base: 10000})
	x := randSlice(rand.New(rand.NewPCG(2, 7)), 32, 1)
	y := append([]float32(nil), x...)
	r.Apply(y, 2, 0)
	for i := range x {
		if x[i] != y[i] {
			t.Fatalf("pos 0 changed x[%d]: %g → %g", i, x[i], y[i])
		}
	}
}

func TestRoPEDoesNotKeepCallersFactors(t *testing.T) {
	f := []float32{1, 1}
	cfg := cpu.RoPE{Dims: 4, HeadDim: 4, Base: 10000, FreqFactors: f}
	r := cpu.NewRoPE(cfg)
	f[0] = 100
	x := []float32{1, 0, 1, 0}
	r.Apply(x, 1, 1)
	if want := float32(math.Cos(1)); math.Abs(float64(x[0]-want)) > 1e-7 {
		t.Errorf("x[0] = %g, want %g", x[0], want)
	}
}

func TestRoPEPanicsOnBadConfig(t *testing.T) {
	for _, cfg := range []cpu.RoPE{
		{Dims: 3, HeadDim: 4, Base: 10000},
		{Dims: 8, HeadDim: 4, Base: 10000},
		{Dims: 4, HeadDim: 4, Base: 0},
		{Dims: 4, HeadDim: 4, Base: 10000, Scale: -1},
		{Dims: 4, HeadDim: 4, Base: 10000, FreqFactors: []float32{1}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%+v: no panic", cfg)
				}
			}()
			cpu.NewRoPE(cfg)
		}()
	}
}

func TestRoPENoAllocs(t *testing.T) {
	r := cpu.NewRoPE(cpu.RoPE{Dims: 64, HeadDim: 128, Base: 10000, NeoX: true})
	x := make([]float32, 8*128)
	if a := testing.AllocsPerRun(10, func() { r.Apply(x, 8, 123) }); a != 0 {
		t.Errorf("%v allocations", a)
	}
}
