package predictor

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/stokehq/stoke/models/arch"
)

// Renumbering neurons (arch.PermuteFFN). A model whose FFN neurons were
// renumbered needs its profile and its predictors renumbered the same way:
// new neuron k of layer l is old neuron order[l][k].

// HotFirst returns, per layer, the neurons in descending order of their
// firing counts (ties in index order): the order arch.PermuteFFN takes to
// number a layer's neurons hot first, so that the rows a sparse FFN reads
// for most tokens sit together at the front of each matrix.
func (p *Profile) HotFirst() [][]int32 {
	out := make([][]int32, len(p.Layers))
	for l := range p.Layers {
		count := p.Layers[l].Count
		o := make([]int32, len(count))
		for i := range o {
			o[i] = int32(i)
		}
		slices.SortStableFunc(o, func(a, b int32) int { return cmp.Compare(count[b], count[a]) })
		out[l] = o
	}
	return out
}

// checkOrders checks that order has one permutation of 0 … ffn(l)−1 per
// layer.
func checkOrders(order [][]int32, layers int, ffn func(l int) int) error {
	if len(order) != layers {
		return fmt.Errorf("predictor: %d neuron orders for %d layers", len(order), layers)
	}
	for l, o := range order {
		if err := arch.CheckNeuronOrder(o, ffn(l)); err != nil {
			return fmt.Errorf("predictor: layer %d: %w", l, err)
		}
	}
	return nil
}

// gatherRows returns the rows of src (n rows of len(src)/n elements) in
// order: row order[k] k-th.
func gatherRows[T any](src []T, order []int32) []T {
	if src == nil {
		return nil
	}
	w := len(src) / len(order)
	out := make([]T, 0, len(src))
	for _, r := range order {
		out = append(out, src[int(r)*w:(int(r)+1)*w]...)
	}
	return out
}

// Permute returns the profile of the model with its neurons renumbered by
// order: counts and sampled activations follow their neurons, the sampled
// inputs stay.
func (p *Profile) Permute(order [][]int32) (*Profile, error) {
	if err := checkOrders(order, len(p.Layers), func(l int) int { return p.Layers[l].FFN }); err != nil {
		return nil, err
	}
	q := *p
	q.Layers = make([]LayerProfile, len(p.Layers))
	for l, lp := range p.Layers {
		o := order[l]
		lp.Count = gatherRows(lp.Count, o)
		a := make([]uint16, 0, len(lp.A))
		for j := 0; j < lp.N; j++ {
			row := lp.A[j*lp.FFN : (j+1)*lp.FFN]
			for _, i := range o {
				a = append(a, row[i])
			}
		}
		lp.A = a
		lp.X = slices.Clone(lp.X)
		q.Layers[l] = lp
	}
	return &q, nil
}

// Permute returns the predictor of the model with its neurons renumbered
// by order: each neuron's fc2 row (and bias) moves with it, fc1 stays.
// The predictor computes the same scores, renumbered. A rank-major FC2
// (W2T) is dropped; RankMajor builds it again.
func (p *Predictor) Permute(order [][]int32) (*Predictor, error) {
	if err := checkOrders(order, len(p.Layers), func(l int) int { return p.Layers[l].FFN }); err != nil {
		return nil, err
	}
	q := &Predictor{Layers: make([]LayerPredictor, len(p.Layers)), ActThreshold: slices.Clone(p.ActThreshold)}
	for l, lp := range p.Layers {
		o := order[l]
		lp.FC1, lp.B1 = slices.Clone(lp.FC1), slices.Clone(lp.B1)
		lp.W1 = slices.Clone(lp.W1)
		lp.FC2 = gatherRows(lp.FC2, o)
		lp.B2 = gatherRows(lp.B2, o)
		lp.W2 = gatherRows(lp.W2, o) // whole rows of Rank elements: whole blocks
		// W2T's columns would move, inside its blocks: RankMajor builds
		// it again from W2.
		lp.W2T = nil
		q.Layers[l] = lp
	}
	return q, nil
}
