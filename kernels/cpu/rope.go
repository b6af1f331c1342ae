package cpu

import (
	"fmt"
	"math"
)

// RoPE is a rotary position embedding. The fields describe it; NewRoPE
// checks them and precomputes the frequencies, and Apply uses them.
//
// For pair i < Dims/2 at position pos the rotation angle is
//
//	θ_i = pos·Scale / (Base^(2i/Dims) · FreqFactors[i])
//
// and the pair (a, b) becomes (a·cos θ_i − b·sin θ_i, a·sin θ_i + b·cos θ_i).
// Pair i is (x[2i], x[2i+1]) in the normal (GPT-J / llama) layout and
// (x[i], x[i+Dims/2]) in the NeoX layout, x being one head's HeadDim values;
// values Dims..HeadDim−1 are left alone (partial rotary embedding).
type RoPE struct {
	Dims        int       // rotated values per head (rope.dimension_count), even, ≤ HeadDim
	HeadDim     int       // values per head
	Base        float64   // frequency base (rope.freq_base), > 0
	Scale       float64   // linear position scale: positions are multiplied by it (1/rope.scaling.factor); 0 means 1
	NeoX        bool      // rotate halves (i, i+Dims/2) instead of adjacent pairs (2i, 2i+1)
	FreqFactors []float32 // optional per-pair divisors, Dims/2 of them (llama3's rope_freqs.weight); nil means all 1

	inv []float64 // inv[i] = Scale / (Base^(2i/Dims) · FreqFactors[i])
}

// NewRoPE returns the RoPE that cfg describes, with its inverse frequencies
// computed once. It panics if cfg is inconsistent (callers validate model
// metadata when they load it). FreqFactors is copied.
func NewRoPE(cfg RoPE) *RoPE {
	r := cfg
	if r.Dims < 0 || r.Dims%2 != 0 || r.Dims > r.HeadDim {
		panic(fmt.Sprintf("cpu: RoPE rotates %d of %d values per head; want an even count ≤ the head size", r.Dims, r.HeadDim))
	}
	if !(r.Base > 0) || math.IsInf(r.Base, 0) {
		panic(fmt.Sprintf("cpu: RoPE frequency base %g", r.Base))
	}
	if r.Scale == 0 {
		r.Scale = 1
	}
	if !(r.Scale > 0) || math.IsInf(r.Scale, 0) {
		panic(fmt.Sprintf("cpu: RoPE position scale %g", r.Scale))
	}
	half := r.Dims / 2
	if r.FreqFactors != nil {
		if len(r.FreqFactors) != half {
			panic(fmt.Sprintf("cpu: %d RoPE frequency factors for %d pairs", len(r.FreqFactors), half))
		}
		r.FreqFactors = append([]float32(nil), r.FreqFactors...)
	}
	r.inv = make([]float64, half)
	for i := range r.inv {
		d := math.Pow(r.Base, float64(2*i)/float64(r.Dims))
		if r.FreqFactors != nil {
			d *= float64(r.FreqFactors[i])
		}
		r.inv[i] = r.Scale / d
	}
	return &r
}

// Apply rotates, in place, the first Dims values of each of the nHeads heads
// in x (len(x) = nHeads·HeadDim, head-major) for position pos. Sines and
// cosines are computed in float64. It allocates nothing and may be called
// from several goroutines at once.
func (r *RoPE) Apply(x []float32, nHeads, pos int) {
	hd := r.HeadDim
	checkLen("RoPE x", len(x), nHeads*hd)
	half := r.Dims / 2
	p := float64(pos)
	for i, inv := range r.inv {
		sin, cos := math.Sincos(p * inv)
		a, b := 2*i, 2*i+1
		if r.NeoX {
			a, b = i, i+half
		}
		for h := 0; h < len(x); h += hd {
			x0, x1 := float64(x[h+a]), float64(x[h+b])
			x[h+a] = float32(x0*cos - x1*sin)
			x[h+b] = float32(x0*sin + x1*cos)
		}
	}
}
