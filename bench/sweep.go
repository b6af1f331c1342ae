package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/offload"
)

// Mode is how a sweep point runs the model.
type Mode string

// Sweep modes. Dense and CPU use no device and ignore the VRAM budget;
// layer-split and hybrid solve an offload plan for each budget.
const (
	// ModeDense is the dense CPU baseline: every neuron of every layer, as
	// llama.cpp computes it.
	ModeDense Mode = "dense"
	// ModeCPU is Stoke with no device: the sparse FFN over the predicted
	// active neurons (the plan's empty hot set).
	ModeCPU Mode = "cpu"
	// ModeLayerSplit puts whole layers on the device, first ones first,
	// and runs dense, as llama.cpp's -ngl does.
	ModeLayerSplit Mode = "layer-split"
	// ModeHybrid puts attention and the hottest neurons on the device and
	// the sparse FFN splits each layer's active set between the two.
	ModeHybrid Mode = "hybrid"
)

// Modes lists every sweep mode.
func Modes() []Mode { return []Mode{ModeDense, ModeCPU, ModeLayerSplit, ModeHybrid} }

// ParseModes reads a comma-separated mode list.
func ParseModes(list string) ([]Mode, error) {
	var out []Mode
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		m := Mode(f)
		switch m {
		case ModeDense, ModeCPU, ModeLayerSplit, ModeHybrid:
		default:
			return nil, fmt.Errorf("bench: unknown mode %q (want dense, cpu, layer-split, hybrid)", f)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, errors.New("bench: no modes given")
	}
	return out, nil
}

// UsesDevice reports whether the mode solves a plan per budget.
func (m Mode) UsesDevice() bool { return m == ModeLayerSplit || m == ModeHybrid }

func (m Mode) offload() offload.Mode {
	switch m {
	case ModeLayerSplit:
		return offload.ModeLayerSplit
	case ModeHybrid:
		return offload.ModeHybrid
	}
	return offload.ModeCPU
}

// sparse reports whether the mode runs the sparse FFN (when the sweep has
// sparsity settings): cpu and hybrid do; dense and layer-split compute
// every neuron, as llama.cpp does.
func (m Mode) sparse() bool { return m == ModeCPU || m == ModeHybrid }

// Device is what a sweep offloads to.
type Device struct {
	// Kind is "cuda" or "cpu-capped"; Label is shown in every output:
	// for the capped CPU, "cpu-capped (stand-in for a GPU)".
	Kind, Label string
	// Open returns the backend for one point: budget is the point's VRAM
	// bytes, pool the runner's (the capped CPU computes on it).
	Open func(budget int64, pool *cpu.Pool) (kernels.Backend, error)
	// Release undoes Open (nil: nothing to do).
	Release func(kernels.Backend)
	// Bandwidth is the device memory's read bandwidth (bytes/s; 0 when
	// unknown: no roofline for the device modes).
	Bandwidth float64
	// SharesHostMemory is true for the capped CPU: its half and the host
	// half read the same DRAM one after the other, so the roofline adds
	// their times instead of overlapping them.
	SharesHostMemory bool
}

// CPUCapped is the capped CPU backend standing in for a GPU: the same
// cores and DRAM as the host half, with the device's byte budget enforced.
func CPUCapped(cpuBandwidth float64) *Device {
	return &Device{
		Kind:  "cpu-capped",
		Label: "cpu-capped (stand-in for a GPU)",
		Open: func(budget int64, pool *cpu.Pool) (kernels.Backend, error) {
			return cpu.NewBackend(pool, max(budget, 1)), nil
		},
		Bandwidth:        cpuBandwidth,
		SharesHostMemory: true,
	}
}

// SweepOptions configure a VRAM sweep.
type SweepOptions struct {
	Options     // threads, prompt and generation lengths, repeats
	Batch   int // prefill chunk and device trip size (0: the prompt length)
	Points  []Budget
	Modes   []Mode
	Device  *Device // nil: only the host modes run
	// Sparsity is how cpu and hybrid pick active neurons; nil runs them
	// dense (they then differ from dense and layer-split only by
	// placement).
	Sparsity     *engine.Sparsity
	SparsityNote string // e.g. "the file's PowerInfer predictor"
	// Freq is per layer and neuron the firing frequency (from a profile;
	// nil: unknown) the planner ranks neurons by.
	Freq         [][]float64
	CPUBandwidth float64 // bytes/s, for the planner's balance and the roofline
	// Interleave measures in Repeat rounds, each running every mode and
	// point once (after its own warm-up), instead of Repeat runs of one
	// point after another: a burst of other work on a shared machine then
	// costs one sample of several points, which the median drops, rather
	// than every sample of one point.
	Interleave bool
	// Progress, when set, is called after each measurement with how many
	// of total are done and the row it added to.
	Progress func(done, total int, row *Row)
}

// Row is one measurement of a sweep: a mode at a VRAM point.
type Row struct {
	Mode        Mode    `json:"mode"`
	Device      string  `json:"device"` // "host" for dense and cpu
	Point       string  `json:"vram_point"`
	BudgetBytes int64   `json:"vram_budget_bytes"`
	BudgetShare float64 `json:"vram_share_of_model"` // budget / model weight bytes
	// Status is "ok", "no-plan" (the budget fits no plan of this mode;
	// Note says why) or "error".
	Status string `json:"status"`
	Note   string `json:"note,omitempty"`
	Sparse string `json:"sparse"` // "predictor", "oracle" or "dense"

	PlanBytes         int64   `json:"plan_bytes"`          // device arena
	DeviceWeightBytes int64   `json:"device_weight_bytes"` // weights in the arena
	HostWeightBytes   int64   `json:"host_weight_bytes"`   // weights left in RAM
	DeviceLayers      int     `json:"device_layers"`       // layers whose attention is on the device
	HotNeurons        int64   `json:"hot_neurons"`
	HotShare          float64 `json:"hot_share"`     // of all FFN neurons
	PlanHitRate       float64 `json:"plan_hit_rate"` // expected share of active neurons on the device
	HitRate           float64 `json:"hit_rate"`      // measured over the decode steps

	DeviceFFNBytesPerToken float64 `json:"device_ffn_bytes_per_token"` // measured
	EstDeviceBytesPerToken float64 `json:"est_device_bytes_per_token"` // roofline model
	EstCPUBytesPerToken    float64 `json:"est_cpu_bytes_per_token"`
	RooflineTPS            float64 `json:"roofline_tg_tps"` // bound the plot draws; 0 when unknown
	RooflineNote           string  `json:"roofline_note,omitempty"`

	PP *Result `json:"pp,omitempty"`
	TG *Result `json:"tg,omitempty"`
}

// Sweep measures pp and tg tokens/s of m for every mode, and for the
// device modes at every VRAM point: it solves a plan under the budget,
// puts it on the device, runs one warm-up and Repeat measured runs (or,
// with Interleave, one warm-up and one run per round). Host
// modes (dense, cpu) do not depend on the budget and run once. A budget
// that fits no plan gives a "no-plan" row; a failure while measuring
// stops the sweep, and so does ctx (between runs), returning the rows
// measured so far with ctx's error.
func Sweep(ctx context.Context, m *engine.Model, desc *offload.Desc, o SweepOptions) ([]Row, error) {
	if o.Repeat <= 0 {
		o.Repeat = 3
	}
	if o.Batch <= 0 {
		o.Batch = max(o.PromptLen, 1)
	}
	type config struct {
		md Mode
		b  Budget
	}
	var configs []config
	for _, md := range o.Modes {
		switch {
		case !md.UsesDevice():
			configs = append(configs, config{md, Budget{Label: "n/a (host only)"}})
		case o.Device == nil:
			slog.Warn("bench: no device: skipping a device mode", "mode", md)
		default:
			for _, b := range o.Points {
				configs = append(configs, config{md, b})
			}
		}
	}
	rounds, per := 1, o
	if o.Interleave {
		rounds, per.Repeat = o.Repeat, 1
	}
	weights := desc.WeightBytes()
	rows := make([]Row, 0, len(configs))
	total, done := rounds*len(configs), 0
	for round := range rounds {
		for i, c := range configs {
			r, err := sweepPoint(ctx, m, desc, per, c.md, c.b)
			if err != nil {
				return rows, err
			}
			if weights > 0 {
				r.BudgetShare = float64(c.b.Bytes) / float64(weights)
			}
			if round == 0 {
				rows = append(rows, r)
			} else {
				merge(&rows[i], &r, round)
			}
			done++
			if o.Progress != nil {
				o.Progress(done, total, &rows[i])
			}
		}
	}
	return rows, nil
}

// merge adds round (counting from 0) r's samples to acc: the speeds'
// samples join acc's and the summary is recomputed; the measured rates are
// averaged over the rounds.
func merge(acc, r *Row, round int) {
	if acc.Status != "ok" || r.Status != "ok" {
		if acc.Status == "ok" {
			acc.Status, acc.Note = r.Status, r.Note
		}
		return
	}
	join := func(a, b *Result) {
		if a == nil || b == nil {
			return
		}
		a.Samples = append(a.Samples, b.Samples...)
		a.TokPerSec, a.StdDev = medianStd(a.Samples)
	}
	join(acc.PP, r.PP)
	join(acc.TG, r.TG)
	w := float64(round)
	acc.HitRate = (acc.HitRate*w + r.HitRate) / (w + 1)
	acc.DeviceFFNBytesPerToken = (acc.DeviceFFNBytesPerToken*w + r.DeviceFFNBytesPerToken) / (w + 1)
}

// sweepPoint measures one mode at one budget.
func sweepPoint(ctx context.Context, m *engine.Model, desc *offload.Desc, o SweepOptions, md Mode, b Budget) (Row, error) {
	r := Row{Mode: md, Device: "host", Point: b.Label, BudgetBytes: b.Bytes, Status: "ok", Sparse: "dense"}
	c := &m.Config
	positions := o.Context()
	var plan *offload.Plan
	if md.UsesDevice() {
		r.Device = o.Device.Label
		var err error
		plan, err = offload.Solve(desc, offload.Options{Mode: md.offload(), Budget: b.Bytes, Context: positions, Seqs: 1,
			Batch: o.Batch, Layers: -1, CPUBandwidth: o.CPUBandwidth, DeviceBandwidth: o.Device.Bandwidth})
		if err != nil {
			r.Status, r.Note = "no-plan", err.Error()
			return r, nil
		}
		describePlan(&r, desc, plan)
	} else {
		r.HostWeightBytes = desc.WeightBytes()
	}
	roofline(&r, desc, plan, md, o)

	s, err := m.NewSession(engine.Options{Threads: o.Threads, Context: positions, Batch: o.Batch})
	if err != nil {
		return r, err
	}
	defer s.Close()
	run := s.Runner()
	predicted := false
	if md.sparse() && o.Sparsity != nil {
		if err := run.EnableSparse(*o.Sparsity); err != nil {
			return r, err
		}
		r.Sparse = "oracle"
		if o.Sparsity.Predictor != nil {
			r.Sparse, predicted = "predictor", true
		}
	}
	var dev kernels.Backend
	if plan != nil {
		if dev, err = o.Device.Open(b.Bytes, run.Pool()); err != nil {
			r.Status, r.Note = "error", err.Error()
			return r, nil
		}
		if o.Device.Release != nil {
			defer o.Device.Release(dev)
		}
		if err := run.EnableOffload(dev, plan); err != nil {
			r.Status, r.Note = "error", err.Error()
			return r, nil
		}
		defer run.DisableOffload()
	}
	// counters over the decode steps, warm-up included
	var st0, st1 offload.Stats
	var sa0, sa1 int64
	res, err := throughput(ctx, s, o.Options, func(done bool) {
		st := run.OffloadStats()
		sa, _ := run.SparseStats()
		if done {
			st1, sa1 = st, sa
		} else {
			st0, sa0 = st, sa
		}
	})
	if err != nil {
		return r, fmt.Errorf("bench: %s at %s: %w", md, b.Label, err)
	}
	for i := range res {
		switch {
		case strings.HasPrefix(res[i].Test, "pp"):
			r.PP = &res[i]
		case strings.HasPrefix(res[i].Test, "tg"):
			r.TG = &res[i]
		}
	}
	if plan != nil && r.TG != nil {
		tokens := float64((o.Repeat + 1) * o.GenLen)
		hot := float64(st1.Hot - st0.Hot)
		var active float64
		switch {
		case predicted: // the sparse counters include the device layers
			active = float64(sa1 - sa0)
		case r.Sparse == "oracle": // device layers are dense, the others sparse
			active = float64(st1.Active-st0.Active) + float64(sa1-sa0)
		default:
			cold := 0
			for _, lp := range plan.Layers {
				if len(lp.Hot) == 0 {
					cold++
				}
			}
			active = float64(st1.Active-st0.Active) + tokens*float64(cold*c.FFN)
		}
		if active > 0 {
			r.HitRate = hot / active
		}
		r.DeviceFFNBytesPerToken = float64(st1.DeviceBytes-st0.DeviceBytes) / tokens
	}
	return r, nil
}

// describePlan fills a row's placement columns from a plan.
func describePlan(r *Row, desc *offload.Desc, p *offload.Plan) {
	r.PlanBytes, r.PlanHitRate = p.TotalBytes, p.HitRate
	for _, g := range p.Regions {
		if !strings.HasPrefix(g.Name, "kv.") && !strings.HasPrefix(g.Name, "scratch.") {
			r.DeviceWeightBytes += g.Bytes
		}
	}
	r.HostWeightBytes = max(desc.WeightBytes()-r.DeviceWeightBytes, 0)
	for _, lp := range p.Layers {
		if lp.Attn {
			r.DeviceLayers++
		}
		r.HotNeurons += int64(len(lp.Hot))
	}
	if n := int64(len(desc.Layers)) * int64(desc.FFN); n > 0 {
		r.HotShare = float64(r.HotNeurons) / float64(n)
	}
}

// roofline fills the row's bound from offload's roofline model: the plan
// at the CPU's and the device's bandwidth. Dense reads every neuron
// (offload models that as a layer-split plan with nothing placed); cpu is
// the sparse empty plan. On a device that shares host memory the halves
// run one after the other over one bus, so their times add.
func roofline(r *Row, desc *offload.Desc, plan *offload.Plan, md Mode, o SweepOptions) {
	if o.CPUBandwidth <= 0 {
		r.RooflineNote = "no CPU bandwidth measured"
		return
	}
	p := plan
	if p == nil {
		p = &offload.Plan{Mode: md.offload(), Layers: make([]offload.LayerPlan, len(desc.Layers))}
	}
	if !md.sparse() || o.Sparsity == nil {
		// dense: offload's roofline reads every neuron of a layer-split plan
		dense := *p
		dense.Mode = offload.ModeLayerSplit
		p = &dense
	}
	devBW := 0.0
	if o.Device != nil {
		devBW = o.Device.Bandwidth
	}
	if plan != nil && devBW <= 0 {
		r.RooflineNote = "device bandwidth unknown"
		return
	}
	e := offload.Roofline(desc, p, o.CPUBandwidth, devBW)
	r.EstDeviceBytesPerToken, r.EstCPUBytesPerToken = e.DeviceBytes, e.CPUBytes
	switch {
	case plan != nil && o.Device.SharesHostMemory:
		if t := (e.DeviceBytes + e.CPUBytes) / o.CPUBandwidth; t > 0 {
			r.RooflineTPS = 1 / t
		}
		r.RooflineNote = fmt.Sprintf("both halves read host DRAM at the measured %.1f GB/s, one after the other", o.CPUBandwidth/1e9)
	default:
		r.RooflineTPS = e.TokensPerSec
		if plan != nil {
			r.RooflineNote = fmt.Sprintf("CPU %.1f GB/s, device %.1f GB/s, halves overlapped", o.CPUBandwidth/1e9, devBW/1e9)
		} else {
			r.RooflineNote = fmt.Sprintf("CPU %.1f GB/s", o.CPUBandwidth/1e9)
		}
	}
}
