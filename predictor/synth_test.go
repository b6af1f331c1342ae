package predictor_test

import (
	"math"
	"math/rand/v2"

	"github.com/stokehq/stoke/predictor"
)

// planted is a one-layer activation model with a known answer: x ~ N(0, I)
// and pre-activation z_i = w_i·x + b_i, where the unit vectors w_i lie in a
// random subspace of the given rank and the biases give a power law: every
// 20th neuron (5%) is hot, z_i > 0 for ~90% of tokens, the rest cold, z_i > 0
// for 1–5% (~3%).
type planted struct {
	dim, ffn int
	w        [][]float64
	b, rate  []float64
	kind     string // "relu": a = max(z, 0); "silu": a = silu(z); "random": labels drawn independently of x
}

func newPlanted(dim, ffn, rank int, seed uint64, kind string) *planted {
	rng := rand.New(rand.NewPCG(seed, 17))
	basis := make([][]float64, rank)
	for k := range basis {
		basis[k] = make([]float64, dim)
		for c := range basis[k] {
			basis[k][c] = rng.NormFloat64()
		}
	}
	pl := &planted{dim: dim, ffn: ffn, w: make([][]float64, ffn), b: make([]float64, ffn), rate: make([]float64, ffn), kind: kind}
	for i := range pl.w {
		w := make([]float64, dim)
		for k := range rank {
			ck := rng.NormFloat64()
			for c := range dim {
				w[c] += ck * basis[k][c]
			}
		}
		var norm float64
		for _, v := range w {
			norm += v * v
		}
		for c := range w {
			w[c] /= math.Sqrt(norm)
		}
		pl.w[i] = w
		if i%20 == 0 {
			pl.rate[i] = 0.9
		} else {
			pl.rate[i] = 0.01 + 0.04*rng.Float64()
		}
		pl.b[i] = normQuantile(pl.rate[i])
	}
	return pl
}

// sample draws one token into x and a.
func (pl *planted) sample(rng *rand.Rand, x, a []float32) {
	for c := range x {
		x[c] = float32(rng.NormFloat64())
	}
	for i := range a {
		if pl.kind == "random" {
			a[i] = 0
			if rng.Float64() < pl.rate[i] {
				a[i] = float32(0.1 + rng.Float64())
			}
			continue
		}
		z := pl.b[i]
		for c, v := range x {
			z += pl.w[i][c] * float64(v)
		}
		if pl.kind == "silu" {
			a[i] = float32(z / (1 + math.Exp(-z)))
		} else {
			a[i] = float32(max(z, 0))
		}
	}
}

// profile records n tokens drawn with seed.
func (pl *planted) profile(n int, seed uint64) *predictor.Profile {
	rng := rand.New(rand.NewPCG(seed, 99))
	p := predictor.NewProfile(1, pl.dim, pl.ffn, n, seed)
	x := make([]float32, pl.dim)
	a := make([]float32, pl.ffn)
	for range n {
		pl.sample(rng, x, a)
		p.Record(0, x, a)
	}
	return p
}

// normQuantile is Φ⁻¹(q) by bisection.
func normQuantile(q float64) float64 {
	lo, hi := -10.0, 10.0
	for range 100 {
		mid := (lo + hi) / 2
		if 0.5*math.Erfc(-mid/math.Sqrt2) < q {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}
