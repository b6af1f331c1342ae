package bench

import (
	"errors"
	"fmt"
	"slices"

	"github.com/stokehq/stoke/offload"
	"github.com/stokehq/stoke/predictor"
)

// SparsityTable reports, per layer of a profile, how its FFN neurons
// fire: the mean active fraction, the share of neurons that never fired,
// the share firing for more than each of firing (fractions of tokens),
// and the hot-set coverage curve: the share of all activations that the
// coverage fraction of hottest neurons account for (what a device
// holding that share of the layer's neurons would serve). The last row,
// "all", weights every layer equally.
func SparsityTable(prof *predictor.Profile, firing, coverage []float64) (*Table, error) {
	if prof == nil || len(prof.Layers) == 0 {
		return nil, errors.New("bench: empty profile")
	}
	t := &Table{
		Title:   fmt.Sprintf("FFN firing statistics (%d tokens profiled)", prof.Tokens),
		Note:    "Measured over the profile's text. fires>x: share of neurons active on more than x of the tokens; top k: share of all activations that the k hottest neurons of the layer serve.",
		Columns: []string{"layer", "tokens", "neurons", "mean_active", "never_fired"},
	}
	for _, f := range firing {
		t.Columns = append(t.Columns, fmt.Sprintf("fires>%g%%", 100*f))
	}
	for _, k := range coverage {
		t.Columns = append(t.Columns, fmt.Sprintf("top%g%%_coverage", 100*k))
	}
	sum := make([]float64, len(t.Columns))
	for l := range prof.Layers {
		lp := &prof.Layers[l]
		rate := lp.Rate()
		if rate == nil {
			return nil, fmt.Errorf("bench: profile layer %d saw no token", l)
		}
		vals := layerSparsity(rate, firing, coverage)
		row := []any{l, lp.Seen, lp.FFN}
		for i, v := range vals {
			row = append(row, round(v, 4))
			sum[3+i] += v
		}
		t.Rows = append(t.Rows, row)
	}
	n := float64(len(prof.Layers))
	all := []any{"all", prof.Tokens, prof.Layers[0].FFN}
	for _, v := range sum[3:] {
		all = append(all, round(v/n, 4))
	}
	t.Rows = append(t.Rows, all)
	return t, nil
}

// layerSparsity returns mean activity, never-fired share, the firing
// shares and the coverage values of one layer's rates.
func layerSparsity(rate, firing, coverage []float64) []float64 {
	n := float64(len(rate))
	var mean, dead float64
	for _, r := range rate {
		mean += r
		if r == 0 {
			dead++
		}
	}
	out := []float64{mean / n, dead / n}
	for _, f := range firing {
		c := 0
		for _, r := range rate {
			if r > f {
				c++
			}
		}
		out = append(out, float64(c)/n)
	}
	sorted := slices.Clone(rate)
	slices.SortFunc(sorted, func(a, b float64) int {
		switch {
		case a > b:
			return -1
		case a < b:
			return 1
		}
		return 0
	})
	prefix := make([]float64, len(sorted)+1)
	for i, r := range sorted {
		prefix[i+1] = prefix[i] + r
	}
	for _, k := range coverage {
		h := min(int(k*n+0.5), len(sorted))
		cov := 1.0
		if mean > 0 {
			cov = prefix[h] / prefix[len(sorted)]
		}
		out = append(out, cov)
	}
	return out
}

// PredictorTable scores a predictor per layer on a profile's sampled
// tokens against the truth |a_i| > tau[l] (tau nil: 0, ReLU): recall,
// precision, and the predicted and true sparsity. The samples should
// come from text the predictor was not trained on.
func PredictorTable(prof *predictor.Profile, p *predictor.Predictor, tau []float32) (*Table, error) {
	if len(p.Layers) != len(prof.Layers) {
		return nil, fmt.Errorf("bench: predictor has %d layers, profile %d", len(p.Layers), len(prof.Layers))
	}
	t := &Table{
		Title:   "Predictor quality per layer",
		Note:    fmt.Sprintf("Measured on the profile's sampled tokens (up to %d per layer): use a profile of held-out text.", prof.MaxSamples),
		Columns: []string{"layer", "samples", "rank", "recall", "precision", "predicted_sparsity", "true_sparsity"},
	}
	minRecall := 1.0
	var samples int
	var prec, sp, tsp float64
	for l := range prof.Layers {
		lp, pl := &prof.Layers[l], &p.Layers[l]
		if pl.Dim != lp.Dim || pl.FFN != lp.FFN {
			return nil, fmt.Errorf("bench: predictor layer %d is %d→%d, profile %d→%d", l, pl.Dim, pl.FFN, lp.Dim, lp.FFN)
		}
		var th float32
		if tau != nil {
			th = tau[l]
		}
		mt := predictor.Evaluate(pl, lp.X, lp.A, lp.N, th)
		t.Rows = append(t.Rows, []any{l, lp.N, pl.Rank, round(mt.Recall, 4), round(mt.Precision, 4),
			round(mt.Sparsity, 4), round(mt.TrueSparsity, 4)})
		minRecall = min(minRecall, mt.Recall)
		samples += lp.N
		prec += mt.Precision
		sp += mt.Sparsity
		tsp += mt.TrueSparsity
	}
	n := float64(len(prof.Layers))
	t.Rows = append(t.Rows, []any{"min/mean", samples, "", round(minRecall, 4), round(prec/n, 4), round(sp/n, 4), round(tsp/n, 4)})
	return t, nil
}

// RooflineKind labels every roofline row: these are predictions.
const RooflineKind = "model, not a measurement"

// RooflineOptions choose a roofline table.
type RooflineOptions struct {
	GPUs         []offload.GPU
	Points       []Budget // VRAM budgets (beyond a card's memory less reserve: skipped)
	Modes        []Mode   // device modes (layer-split, hybrid); cpu and dense rows come once
	CPUBandwidth float64  // bytes/s
	Context      int
	Batch        int
	Sparse       bool // the model has a predictor: cpu and hybrid read only active neurons
}

// RooflineTable predicts decode tokens/s with offload's roofline model
// for each GPU profile, VRAM point and mode, plus each card's own plan
// at its whole memory (less offload.DefaultGPUReserve) and the host-only
// modes. Every row says it is a model, not a measurement.
func RooflineTable(desc *offload.Desc, o RooflineOptions) (*Table, error) {
	if o.CPUBandwidth <= 0 {
		return nil, errors.New("bench: the roofline needs the CPU's read bandwidth")
	}
	t := &Table{
		Title: "Predicted decode speed: roofline model, not a measurement",
		Note: fmt.Sprintf("Bytes read per token ÷ bandwidth (CPU %.1f GB/s; each GPU at its published peak), halves overlapped; "+
			"leaves out KV-cache reads, compute and transfer overheads, so real speeds are lower. Frequencies: %s.",
			o.CPUBandwidth/1e9, freqNote(desc)),
		Columns: []string{"kind", "gpu", "gpu_gbs", "gpu_memory", "vram_point", "vram_bytes", "mode",
			"plan_bytes", "hot_share", "plan_hit_rate", "device_mb_per_token", "cpu_mb_per_token", "predicted_tg_tps", "note"},
	}
	dense := func(p *offload.Plan, m Mode) *offload.Plan {
		if m.sparse() && o.Sparse {
			return p
		}
		d := *p
		d.Mode = offload.ModeLayerSplit
		return &d
	}
	row := func(gpu string, bw float64, mem int64, point string, vram int64, m Mode, p *offload.Plan, note string) {
		e := offload.Roofline(desc, dense(p, m), o.CPUBandwidth, bw)
		var hot int64
		for _, lp := range p.Layers {
			hot += int64(len(lp.Hot))
		}
		share := 0.0
		if n := int64(len(desc.Layers)) * int64(desc.FFN); n > 0 {
			share = float64(hot) / float64(n)
		}
		memS := ""
		if mem > 0 {
			memS = offload.FormatBytes(mem)
		}
		t.Rows = append(t.Rows, []any{RooflineKind, gpu, round(bw/1e9, 1), memS, point, vram, string(m),
			p.TotalBytes, round(share, 4), round(p.HitRate, 4), round(e.DeviceBytes/1e6, 2), round(e.CPUBytes/1e6, 2),
			round(e.TokensPerSec, 2), note})
	}
	empty := &offload.Plan{Mode: offload.ModeCPU, Layers: make([]offload.LayerPlan, len(desc.Layers))}
	for _, m := range []Mode{ModeDense, ModeCPU} {
		row("none (CPU only)", 0, 0, "0", 0, m, empty, "")
	}
	for _, g := range o.GPUs {
		for _, m := range o.Modes {
			if !m.UsesDevice() {
				continue
			}
			solve := func(budget int64) (*offload.Plan, error) {
				return offload.Solve(desc, offload.Options{Mode: m.offload(), Budget: budget, Reserve: offload.DefaultGPUReserve,
					Context: o.Context, Seqs: 1, Batch: max(o.Batch, 1), Layers: -1, CPUBandwidth: o.CPUBandwidth, DeviceBandwidth: g.Bandwidth})
			}
			usable := g.Memory - offload.DefaultGPUReserve
			for _, b := range o.Points {
				if b.Bytes > usable {
					continue
				}
				p, err := solve(b.Bytes)
				if err != nil {
					continue // the budget fits no plan of this mode
				}
				row(g.Name, g.Bandwidth, g.Memory, b.Label, b.Bytes, m, p, "")
			}
			if p, err := solve(usable); err == nil {
				row(g.Name, g.Bandwidth, g.Memory, "whole card", usable, m, p,
					fmt.Sprintf("memory less %s reserve", offload.FormatBytes(offload.DefaultGPUReserve)))
			}
		}
	}
	return t, nil
}

func freqNote(d *offload.Desc) string {
	for _, l := range d.Layers {
		if l.Freq != nil {
			return "from the profile"
		}
	}
	return "unknown (no profile: every neuron equally likely)"
}
