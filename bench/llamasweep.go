package bench

import (
	"context"
	"strings"

	"github.com/stokehq/stoke/offload"
)

// LayersThatFit is llama.cpp's -ngl for a VRAM budget: the layers a
// layer-split plan (whole layers, first ones first, with their KV cache
// and scratch) places under budget, plus one when the output head fits
// too (llama.cpp counts it as layer n_layer+1).
func LayersThatFit(desc *offload.Desc, budget int64, o SweepOptions) int {
	p, err := offload.Solve(desc, offload.Options{Mode: offload.ModeLayerSplit, Budget: budget, Context: o.Context(),
		Seqs: 1, Batch: max(o.Batch, 1), Layers: -1})
	if err != nil {
		return 0
	}
	n := 0
	for _, lp := range p.Layers {
		if lp.Attn {
			n++
		}
	}
	if p.Output {
		n++
	}
	return n
}

// LlamaSweep runs llama-bench on model at every VRAM point with -ngl set
// to the layers that fit, once per distinct -ngl. A failed run is kept as
// a point with its error in Note.
func LlamaSweep(ctx context.Context, lb *LlamaBench, model string, desc *offload.Desc, o SweepOptions) []LlamaPoint {
	cache := map[int]LlamaPoint{}
	var out []LlamaPoint
	for _, b := range o.Points {
		ngl := LayersThatFit(desc, b.Bytes, o)
		lp, ok := cache[ngl]
		if !ok {
			lp = LlamaPoint{NGL: ngl}
			res, err := lb.RunNGL(ctx, model, o.Options, ngl)
			if err != nil {
				lp.Note = err.Error()
			}
			for i := range res {
				switch {
				case strings.HasPrefix(res[i].Test, "pp"):
					lp.PP = &res[i]
				case strings.HasPrefix(res[i].Test, "tg"):
					lp.TG = &res[i]
				}
			}
			cache[ngl] = lp
		}
		lp.Point, lp.BudgetBytes = b.Label, b.Bytes
		out = append(out, lp)
	}
	return out
}
