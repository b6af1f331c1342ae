package predictor_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/predictor"
)

func nan() float64 { return math.NaN() }

// TestCalibrate: on continuous magnitudes (|N(0,1)|, different scales per
// layer) the thresholds make the target fraction inactive within ±1%, on
// the samples and on fresh draws.
func TestCalibrate(t *testing.T) {
	const ffn, n = 256, 1000
	p := predictor.NewProfile(2, 4, ffn, n, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 4)
	a := make([]float32, ffn)
	scale := []float64{1, 0.01}
	draw := func(l int) {
		for i := range a {
			a[i] = float32(rng.NormFloat64() * scale[l] * (1 + float64(i%7)))
		}
	}
	for range n {
		for l := range 2 {
			draw(l)
			p.Record(l, x, a)
		}
	}
	for _, target := range []float64{0.25, 0.5, 0.9, 0.99} {
		thr := predictor.Calibrate(p, target)
		for l := range 2 {
			var in int
			lay := &p.Layers[l]
			for _, h := range lay.A {
				if dtype.F16ToF32(h) <= thr[l] {
					in++
				}
			}
			got := float64(in) / float64(len(lay.A))
			var fin, ftot int
			for range 200 {
				draw(l)
				for _, v := range a {
					if float32(math.Abs(float64(v))) <= thr[l] {
						fin++
					}
					ftot++
				}
			}
			fresh := float64(fin) / float64(ftot)
			if math.Abs(got-target) > 0.01 || math.Abs(fresh-target) > 0.01 {
				t.Errorf("target %.2f layer %d: threshold %v gives %.4f on the samples, %.4f on fresh draws", target, l, thr[l], got, fresh)
			}
		}
	}
}

// TestCalibrateTies: a ReLU-like layer with 70% exact zeros cannot be made
// 50% sparse; the closest reachable sparsity (70%, threshold ≈ 0) is used,
// and higher targets are hit.
func TestCalibrateTies(t *testing.T) {
	p := predictor.NewProfile(1, 1, 100, 1000, 1)
	rng := rand.New(rand.NewPCG(3, 4))
	a := make([]float32, 100)
	for range 1000 {
		for i := range a {
			a[i] = 0
			if rng.Float64() < 0.3 {
				a[i] = float32(rng.Float64() + 0.01)
			}
		}
		p.Record(0, []float32{0}, a)
	}
	if thr := predictor.Calibrate(p, 0.5)[0]; thr < 0 || thr > 1e-6 {
		t.Errorf("target 0.5: threshold %v, want ≈ 0 (the zeros)", thr)
	}
	if thr := predictor.Calibrate(p, 0.0)[0]; thr != 0 {
		t.Errorf("target 0: threshold %v, want 0", thr)
	}
	thr := predictor.Calibrate(p, 0.85)[0]
	var in int
	for _, h := range p.Layers[0].A {
		if dtype.F16ToF32(h) <= thr {
			in++
		}
	}
	if got := float64(in) / float64(len(p.Layers[0].A)); math.Abs(got-0.85) > 0.01 {
		t.Errorf("target 0.85: %.4f", got)
	}
	if thr := predictor.Calibrate(predictor.NewProfile(1, 1, 1, 0, 1), 0.5)[0]; thr != 0 {
		t.Errorf("no samples: threshold %v", thr)
	}
}
