package predictor_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/predictor"
)

func perms(seed uint64, layers, n int) [][]int32 {
	rng := rand.New(rand.NewPCG(seed, 9))
	out := make([][]int32, layers)
	for l := range out {
		for _, v := range rng.Perm(n) {
			out[l] = append(out[l], int32(v))
		}
	}
	return out
}

// TestPermutePredictor: the renumbered predictor scores neuron k as the
// original scores neuron order[k], bit for bit, in float32 and in a
// stored Q8_0 form.
func TestPermutePredictor(t *testing.T) {
	const dim, rank, ffn = 64, 32, 96
	for _, stored := range []bool{false, true} {
		lp := randomLayer(dim, rank, ffn, 4, false)
		if stored {
			lp.Type = dtype.Q8_0
			rb1, _ := dtype.Q8_0.RowBytes(dim)
			rb2, _ := dtype.Q8_0.RowBytes(rank)
			lp.W1, lp.W2 = make([]byte, rb1*rank), make([]byte, rb2*ffn)
			if err := dtype.Quantize(dtype.Q8_0, lp.FC1, lp.W1); err != nil {
				t.Fatal(err)
			}
			if err := dtype.Quantize(dtype.Q8_0, lp.FC2, lp.W2); err != nil {
				t.Fatal(err)
			}
		}
		p := &predictor.Predictor{Layers: []predictor.LayerPredictor{*lp, *lp}, ActThreshold: []float32{0, 0.5}}
		order := perms(1, 2, ffn)
		q, err := p.Permute(order)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q.ActThreshold, p.ActThreshold) {
			t.Errorf("thresholds %v, want %v", q.ActThreshold, p.ActThreshold)
		}
		rng := rand.New(rand.NewPCG(2, 2))
		x := make([]float32, dim)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		for l := range p.Layers {
			if err := q.Layers[l].Check(); err != nil {
				t.Fatal(err)
			}
			sc, scq := predictor.NewScratch(rank, ffn), predictor.NewScratch(rank, ffn)
			act := p.Layers[l].Predict(nil, x, sc)
			actq := q.Layers[l].Predict(nil, x, scq)
			s, sq := sc.S, scq.S
			if len(act) != len(actq) || len(act) == 0 || len(act) == ffn {
				t.Fatalf("stored %v layer %d: %d active renumbered, %d before (want equal, and some of each)", stored, l, len(actq), len(act))
			}
			for k, i := range order[l] {
				if sq[k] != s[i] {
					t.Fatalf("stored %v layer %d: score of new neuron %d %v, old neuron %d %v", stored, l, k, sq[k], i, s[i])
				}
			}
		}
	}
	if _, err := (&predictor.Predictor{Layers: make([]predictor.LayerPredictor, 1)}).Permute(perms(1, 2, 4)); err == nil {
		t.Error("two orders for one layer: no error")
	}
}

// TestProfileHotFirst checks the order by firing count (ties by index)
// and the renumbered profile: counts and sampled activations follow their
// neurons, the sampled inputs stay.
func TestProfileHotFirst(t *testing.T) {
	const dim, ffn = 4, 6
	p := predictor.NewProfile(2, dim, ffn, 8, 1)
	rng := rand.New(rand.NewPCG(3, 3))
	for range 20 {
		for l := range 2 {
			x := make([]float32, dim)
			a := make([]float32, ffn)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			for i := range a {
				// neuron i fires with probability (i+1)/7 in layer 0,
				// (6−i)/7 in layer 1; neurons 2 and 3 of layer 1 always
				p := float64(i+1) / 7
				if l == 1 {
					p = float64(6-i) / 7
					if i == 2 || i == 3 {
						p = 1
					}
				}
				if rng.Float64() < p {
					a[i] = float32(i + 1)
				}
			}
			p.Record(l, x, a)
		}
	}
	order := p.HotFirst()
	for l, o := range order {
		c := p.Layers[l].Count
		for k := 1; k < len(o); k++ {
			if c[o[k-1]] < c[o[k]] || c[o[k-1]] == c[o[k]] && o[k-1] > o[k] {
				t.Fatalf("layer %d order %v for counts %v: not descending, ties by index", l, o, c)
			}
		}
	}
	if o := order[1]; o[0] != 2 || o[1] != 3 {
		t.Errorf("layer 1 order %v: want the always-firing 2, 3 first", o)
	}
	q, err := p.Permute(order)
	if err != nil {
		t.Fatal(err)
	}
	for l := range p.Layers {
		a, b := &p.Layers[l], &q.Layers[l]
		if a.N != b.N || a.Seen != b.Seen || !slices.Equal(a.X, b.X) || len(b.A) != len(a.A) {
			t.Fatalf("layer %d: samples changed", l)
		}
		for k, i := range order[l] {
			if b.Count[k] != a.Count[i] {
				t.Errorf("layer %d: count of new neuron %d is %d, old neuron %d's %d", l, k, b.Count[k], i, a.Count[i])
			}
			for j := range a.N {
				if b.A[j*ffn+k] != a.A[j*ffn+int(i)] {
					t.Fatalf("layer %d sample %d: activation of new neuron %d is not old neuron %d's", l, j, k, i)
				}
			}
		}
	}
}
