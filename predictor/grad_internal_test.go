package predictor

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
)

// lossOf is the weighted BCE of the batch idx, in float64.
func lossOf(m *mlp, ld *layerData, idx []int) float64 {
	h := make([]float32, len(idx)*m.r)
	s := make([]float32, len(idx)*m.f)
	x := make([]float32, len(idx)*m.d)
	for k, j := range idx {
		copy(x[k*m.d:(k+1)*m.d], ld.xtr[j*m.d:(j+1)*m.d])
	}
	m.forward(nil, x, len(idx), h, s)
	var l float64
	for k, j := range idx {
		for i := range m.f {
			z := float64(s[k*m.f+i])
			if ld.ytr[j*m.f+i] != 0 {
				l -= float64(ld.posWeight) * math.Log(1/(1+math.Exp(-z)))
			} else {
				l -= math.Log(1 - 1/(1+math.Exp(-z)))
			}
		}
	}
	return l / float64(len(idx))
}

func TestGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d, f, r, n := 6, 5, 4, 7
	ld := &layerData{d: d, f: f, ntr: n, xtr: make([]float32, n*d), ytr: make([]uint8, n*f), posWeight: 3, baseLogit: make([]float32, f)}
	for i := range ld.xtr {
		ld.xtr[i] = float32(rng.NormFloat64())
	}
	for i := range ld.ytr {
		ld.ytr[i] = uint8(rng.IntN(2))
	}
	m := newMLP(ld, r, true, rng)
	for i := range m.b1 {
		m.b1[i] = float32(rng.NormFloat64() * 0.3)
	}
	pool := cpu.NewPool(2)
	defer pool.Close()
	tr := newTrainer(pool, ld, r, n)
	idx := []int{0, 1, 2, 3, 4, 5, 6}
	// Run a step with lr 0 to get gradients without moving.
	tr.batch(m, ld, idx, 0, 0)
	check := func(name string, w, g []float32) {
		for i := range w {
			old := w[i]
			const eps = 1e-2
			w[i] = old + eps
			lp := lossOf(m, ld, idx)
			w[i] = old - eps
			lm := lossOf(m, ld, idx)
			w[i] = old
			num := (lp - lm) / (2 * eps)
			if math.Abs(num-float64(g[i])) > 2e-3*(1+math.Abs(num)) {
				t.Errorf("%s[%d]: analytic %v, numeric %v", name, i, g[i], num)
			}
		}
	}
	check("fc1", m.fc1, tr.gfc1)
	check("b1", m.b1, tr.gb1)
	check("fc2", m.fc2, tr.gfc2)
	check("b2", m.b2, tr.gb2)
}
