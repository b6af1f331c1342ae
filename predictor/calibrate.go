package predictor

import (
	"math"

	"github.com/stokehq/stoke/models/dtype"
)

// Calibrate returns, per layer, the threshold t on the activation magnitude
// |a| that makes the fraction targetSparsity of the sampled (token, neuron)
// pairs inactive, inactive meaning |a| ≤ t (TEAL-style thresholds for SwiGLU
// models, whose activations are never exactly zero). ReLU models need no
// calibration: their threshold is 0.
//
// The samples are binary16, so t is chosen between two adjacent halves: for
// the half h whose cumulative share of samples is closest to the target, t
// is the midpoint of h and the next half up. Every sample that rounds to h
// or below is then at most t and every other sample above it, and a float32
// activation is on the same side of t as its rounded sample (up to ties).
// Ties (many equal magnitudes, such as a ReLU model's zeros) make some
// sparsities unreachable; the closest reachable one is used. A layer with no
// samples gets 0, as does a target nearer 0 than any reachable sparsity.
// targetSparsity is clamped to [0, 1].
func Calibrate(p *Profile, targetSparsity float64) []float32 {
	target := min(max(targetSparsity, 0), 1)
	out := make([]float32, len(p.Layers))
	const bins = 0x7c00 + 1 // non-negative halves 0 … +Inf, in order of value
	hist := make([]uint64, bins)
	for li := range p.Layers {
		l := &p.Layers[li]
		clear(hist)
		var total uint64
		for _, h := range l.A[:l.N*l.FFN] {
			h &= 0x7fff // magnitudes: ignore a sign bit
			if h > 0x7c00 {
				continue // NaN
			}
			hist[h]++
			total++
		}
		if total == 0 {
			continue
		}
		want := target * float64(total)
		best, bestErr := -1, math.Abs(want) // -1: nothing inactive
		var cum uint64
		for h, c := range hist {
			if c == 0 {
				continue
			}
			cum += c
			if e := math.Abs(float64(cum) - want); e < bestErr {
				best, bestErr = h, e
			}
		}
		switch {
		case best < 0:
			out[li] = 0 // nothing inactive but exact zeros, which cost nothing to skip
		case best >= 0x7bff:
			out[li] = float32(math.Inf(1))
		default:
			lo := dtype.F16ToF32(uint16(best))
			hi := dtype.F16ToF32(uint16(best + 1))
			out[li] = lo + (hi-lo)/2
		}
	}
	return out
}
