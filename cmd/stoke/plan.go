package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/offload"
	"github.com/stokehq/stoke/predictor"
)

// dramProbeBytes is the buffer the DRAM bandwidth probe reads: far beyond
// any last-level cache.
const dramProbeBytes = 256 << 20

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", stderr)
	model := fs.String("m", "", "GGUF model `file` (required)")
	vram := fs.String("vram", "", "device memory the plan may use: bytes, KiB/MiB/GiB (KB/MB/GB: powers of 10), or a % of the model's weights (required)")
	reserve := fs.String("reserve", "0", "part of --vram kept free (CUDA context, margin); the arena gets the rest")
	profPath := fs.String("profile", "", "profile `file` from stoke profile: per-neuron firing frequencies (default: unknown, ranked uniformly)")
	nctx := fs.Int("ctx", 0, "KV cache positions per sequence (0: the model's context, at most 4096)")
	parallel := fs.Int("parallel", 1, "sequences with a KV cache")
	batch := fs.Int("batch", 0, "tokens per step the device scratch holds (0: as stoke run sizes it, max(--parallel, 64))")
	mode := fs.String("mode", "hybrid", "placement: hybrid (attention + hot neurons), layer-split (whole layers, as llama.cpp -ngl) or cpu")
	layers := fs.Int("layers", -1, "layer-split: layers on the device (-1: as many as fit)")
	kvType := fs.String("kv-type", "f32", "KV cache type: f32 or f16")
	dramBW := fs.String("dram-bw", "", "this machine's DRAM read bandwidth in GB/s (default: measured with a short probe)")
	devBW := fs.Float64("device-bw", 0, "the device's memory bandwidth in GB/s: balances equally ranked neurons across layers and adds a roofline line (0: no balancing)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *vram == "" {
		return usagef("-m and --vram are required")
	}
	var o offload.Options
	switch *mode {
	case "hybrid":
		o.Mode = offload.ModeHybrid
	case "layer-split":
		o.Mode = offload.ModeLayerSplit
	case "cpu":
		o.Mode = offload.ModeCPU
	default:
		return usagef("--mode %q: want hybrid, layer-split or cpu", *mode)
	}
	kvt := dtype.F32
	switch strings.ToLower(*kvType) {
	case "f32":
	case "f16":
		kvt = dtype.F16
	default:
		return usagef("--kv-type %q: want f32 or f16", *kvType)
	}
	if *parallel < 1 || *batch < 0 || *nctx < 0 {
		return usagef("--parallel must be ≥ 1, --batch and --ctx ≥ 0")
	}
	cpuBW := 0.0
	if *dramBW != "" {
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(*dramBW), "GB/s"), 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return usagef("--dram-bw %q: want GB/s, e.g. 20", *dramBW)
		}
		cpuBW = v * 1e9
	}
	if !(*devBW >= 0) || math.IsInf(*devBW, 0) {
		return usagef("--device-bw must be ≥ 0")
	}

	m, err := engine.Load(*model)
	if err != nil {
		return err
	}
	defer m.Close()
	var freq [][]float64
	freqSrc := "unknown (no --profile): neurons ranked uniformly, roofline dense"
	if *profPath != "" {
		prof, err := predictor.ReadProfile(*profPath)
		if err != nil {
			return err
		}
		if len(prof.Layers) != m.Config.Layers {
			return fmt.Errorf("profile %s has %d layers, the model %d", *profPath, len(prof.Layers), m.Config.Layers)
		}
		freq = make([][]float64, len(prof.Layers))
		for l := range prof.Layers {
			freq[l] = prof.Layers[l].Rate()
		}
		freqSrc = fmt.Sprintf("profile %s (%d tokens)", *profPath, prof.Tokens)
	}
	d, err := m.OffloadDesc(freq)
	if err != nil {
		return err
	}
	d.KVType = kvt.TypeSize()
	weights := d.WeightBytes()
	total, err := parseSize(*vram, weights)
	if err != nil {
		return usagef("--vram: %v", err)
	}
	res, err := parseSize(*reserve, weights)
	if err != nil {
		return usagef("--reserve: %v", err)
	}
	if res > total {
		return usagef("--reserve %s is more than --vram %s", offload.FormatBytes(res), offload.FormatBytes(total))
	}
	o.Budget, o.Reserve = total-res, res
	if total == 0 {
		o.Mode = offload.ModeCPU // --vram 0: CPU only, as in stoke run
	}
	o.Context = *nctx
	if o.Context == 0 {
		o.Context = min(m.Config.Context, engine.DefaultContext)
	}
	o.Seqs, o.Batch, o.Layers = *parallel, *batch, *layers
	if o.Batch == 0 {
		o.Batch = planBatch(0, o.Seqs)
	}

	measured := cpuBW == 0
	if measured {
		cpuBW = offload.MeasureReadBandwidth(dramProbeBytes, 3)
		if !(cpuBW > 0) {
			return fmt.Errorf("the DRAM bandwidth probe failed; pass --dram-bw")
		}
	}
	o.CPUBandwidth, o.DeviceBandwidth = cpuBW, *devBW*1e9
	p, err := offload.Solve(d, o)
	if err != nil {
		return err
	}
	r := planReport(d, o, p, freqSrc, cpuBW, measured)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printPlan(stdout, r)
	return nil
}

// parseSize reads "6GiB", "6 GiB", "512M" (single letters are binary),
// "6GB" (decimal), "123456" (bytes) or "40%" (of ofBytes).
func parseSize(s string, ofBytes int64) (int64, error) {
	u := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	if p, ok := strings.CutSuffix(u, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || !(v >= 0) || v > 1e6 {
			return 0, fmt.Errorf("size %q: want a percentage ≥ 0", s)
		}
		return int64(v / 100 * float64(ofBytes)), nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	}
	mult := 1.0
	for _, un := range units {
		if p, ok := strings.CutSuffix(u, un.suffix); ok {
			u, mult = p, un.mult
			break
		}
	}
	v, err := strconv.ParseFloat(u, 64)
	if err != nil || !(v >= 0) || v*mult > 1<<60 {
		return 0, fmt.Errorf("size %q: want bytes, e.g. 6GiB, 512MiB, 8GB or 50%%", s)
	}
	return int64(v * mult), nil
}

type planJSON struct {
	Model       string       `json:"model"`
	Mode        string       `json:"mode"`
	Frequencies string       `json:"frequencies"`
	Budget      int64        `json:"budget"`       // arena bytes allowed (--vram less --reserve)
	Reserve     int64        `json:"reserve"`      // bytes of --vram kept free
	TotalBytes  int64        `json:"total_bytes"`  // device bytes the plan allocates
	WeightBytes int64        `json:"weight_bytes"` // every weight the plan could place (100%)
	Context     int          `json:"context"`
	Parallel    int          `json:"parallel"`
	Batch       int          `json:"batch"`
	KVType      string       `json:"kv_type"`
	Output      bool         `json:"output_on_device"`
	HitRate     float64      `json:"hit_rate"` // expected share of active neurons served from the device
	HotNeurons  int          `json:"hot_neurons"`
	Neurons     int          `json:"neurons"`
	Layers      []layerJSON  `json:"layers"`
	Regions     []regionJSON `json:"regions"`
	Roofline    rooflineJSON `json:"roofline"`
}

type layerJSON struct {
	Layer        int     `json:"layer"`
	Attn         bool    `json:"attn"`
	Predictor    bool    `json:"predictor"`
	HasPredictor bool    `json:"has_predictor"`
	Hot          int     `json:"hot"`
	Neurons      int     `json:"neurons"`
	Bytes        int64   `json:"bytes"`
	HitRate      float64 `json:"hit_rate"`
}

type regionJSON struct {
	Name   string `json:"name"`
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
}

type rooflineJSON struct {
	Note          string    `json:"note"`
	DRAMBandwidth float64   `json:"dram_bandwidth"` // bytes/s
	DRAMMeasured  bool      `json:"dram_measured"`
	CPUTPS        float64   `json:"cpu_tokens_per_s"`              // CPU only, sparse
	CPUDenseTPS   float64   `json:"cpu_dense_tokens_per_s"`        // CPU only, every weight read
	DeviceBW      float64   `json:"device_bandwidth,omitempty"`    // --device-bw, bytes/s
	DeviceTPS     float64   `json:"device_tokens_per_s,omitempty"` // this plan at --device-bw
	GPUs          []gpuJSON `json:"gpus"`
}

type gpuJSON struct {
	Name      string  `json:"name"`
	Bandwidth float64 `json:"bandwidth"` // bytes/s
	Memory    int64   `json:"memory"`
	// TPS is this plan on that card; null when it needs more memory
	TPS *float64 `json:"tokens_per_s"`
	// Own* describe the plan for the card's own memory (less the default reserve)
	OwnTPS     *float64 `json:"own_tokens_per_s"`
	OwnHitRate float64  `json:"own_hit_rate"`
	OwnBytes   int64    `json:"own_total_bytes"`
	OwnAttn    int      `json:"own_attn_layers"`
	OwnHot     int      `json:"own_hot_neurons"`
	OwnErr     string   `json:"own_error,omitempty"`
}

const rooflineNote = "a bandwidth model, not a measurement: per token, expected bytes read on each side / its bandwidth, " +
	"device and CPU halves overlapped per layer, plus the output head; no KV reads, compute or overheads"

func planReport(d *offload.Desc, o offload.Options, p *offload.Plan, freqSrc string, cpuBW float64, measured bool) planJSON {
	kv := "f32"
	if d.KVType == 2 {
		kv = "f16"
	}
	r := planJSON{
		Model: d.Name, Mode: p.Mode.String(), Frequencies: freqSrc,
		Budget: o.Budget, Reserve: p.Reserve, TotalBytes: p.TotalBytes, WeightBytes: d.WeightBytes(),
		Context: p.Context, Parallel: p.Seqs, Batch: p.Batch, KVType: kv, Output: p.Output, HitRate: p.HitRate,
		Regions: []regionJSON{},
	}
	for l, lp := range p.Layers {
		r.Layers = append(r.Layers, layerJSON{Layer: l, Attn: lp.Attn, Predictor: lp.Predictor, HasPredictor: len(d.Layers[l].Predictor) > 0,
			Hot: len(lp.Hot), Neurons: d.FFN, Bytes: lp.Bytes, HitRate: lp.HitRate})
		r.HotNeurons += len(lp.Hot)
		r.Neurons += d.FFN
	}
	for _, rg := range p.Regions {
		r.Regions = append(r.Regions, regionJSON{rg.Name, rg.Offset, rg.Bytes})
	}
	cpuPlan, _ := offload.Solve(d, offload.Options{Mode: offload.ModeCPU})
	dense := &offload.Plan{Mode: offload.ModeLayerSplit, Layers: make([]offload.LayerPlan, len(d.Layers))}
	r.Roofline = rooflineJSON{Note: rooflineNote, DRAMBandwidth: cpuBW, DRAMMeasured: measured,
		CPUTPS:      offload.Roofline(d, cpuPlan, cpuBW, 0).TokensPerSec,
		CPUDenseTPS: offload.Roofline(d, dense, cpuBW, 0).TokensPerSec}
	if o.DeviceBandwidth > 0 {
		r.Roofline.DeviceBW = o.DeviceBandwidth
		r.Roofline.DeviceTPS = offload.Roofline(d, p, cpuBW, o.DeviceBandwidth).TokensPerSec
	}
	for _, pe := range offload.EstimateProfiles(d, p, o, cpuBW) {
		g := gpuJSON{Name: pe.GPU.Name, Bandwidth: pe.GPU.Bandwidth, Memory: pe.GPU.Memory}
		if pe.This != nil {
			g.TPS = &pe.This.TokensPerSec
		}
		if pe.OwnErr != nil {
			g.OwnErr = pe.OwnErr.Error()
		} else {
			g.OwnTPS = &pe.Own.TokensPerSec
			g.OwnHitRate, g.OwnBytes = pe.OwnPlan.HitRate, pe.OwnPlan.TotalBytes
			for _, lp := range pe.OwnPlan.Layers {
				if lp.Attn {
					g.OwnAttn++
				}
				g.OwnHot += len(lp.Hot)
			}
		}
		r.Roofline.GPUs = append(r.Roofline.GPUs, g)
	}
	return r
}

func printPlan(w io.Writer, r planJSON) {
	fmt.Fprintf(w, "%s: %s plan, %d layers × %d neurons, %s of weights\n", r.Model, r.Mode, len(r.Layers), r.Neurons/max(len(r.Layers), 1), offload.FormatBytes(r.WeightBytes))
	fmt.Fprintf(w, "budget %s (reserve %s kept free), context %d × %d seq, KV %s, batch %d\n",
		offload.FormatBytes(r.Budget), offload.FormatBytes(r.Reserve), r.Context, r.Parallel, r.KVType, r.Batch)
	fmt.Fprintf(w, "frequencies: %s\n\n", r.Frequencies)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "layer\tattn\tpredictor\thot / neurons\tdevice bytes\thit rate\t")
	side := func(on bool) string {
		if on {
			return "device"
		}
		return "cpu"
	}
	for _, l := range r.Layers {
		pred := side(l.Predictor)
		if !l.HasPredictor {
			pred = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d / %d\t%s\t%.1f%%\t\n", l.Layer, side(l.Attn), pred, l.Hot, l.Neurons, offload.FormatBytes(l.Bytes), 100*l.HitRate)
	}
	tw.Flush()
	attn := 0
	for _, l := range r.Layers {
		if l.Attn {
			attn++
		}
	}
	fmt.Fprintf(w, "\noutput head: %s\n", side(r.Output))
	fmt.Fprintf(w, "total: %s of %s on the device (%d regions); attention of %d/%d layers; %d/%d neurons hot (%.1f%%); expected hit rate %.1f%%\n",
		offload.FormatBytes(r.TotalBytes), offload.FormatBytes(r.Budget), len(r.Regions), attn, len(r.Layers),
		r.HotNeurons, r.Neurons, 100*float64(r.HotNeurons)/float64(max(r.Neurons, 1)), 100*r.HitRate)

	rf := r.Roofline
	how := "measured"
	if !rf.DRAMMeasured {
		how = "given"
	}
	fmt.Fprintf(w, "\nroofline (%s)\n", rf.Note)
	fmt.Fprintf(w, "this machine's DRAM: %.1f GB/s (%s): CPU only %.1f tok/s sparse, %.1f tok/s dense\n",
		rf.DRAMBandwidth/1e9, how, rf.CPUTPS, rf.CPUDenseTPS)
	if rf.DeviceBW > 0 {
		fmt.Fprintf(w, "this plan on a device of %.0f GB/s: %.1f tok/s\n", rf.DeviceBW/1e9, rf.DeviceTPS)
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "GPU\tbandwidth\tmemory\tthis plan\tits own plan\thit rate\tattn layers\thot neurons\t")
	for _, g := range rf.GPUs {
		this := "too big"
		if g.TPS != nil {
			this = fmt.Sprintf("%.1f tok/s", *g.TPS)
		}
		own, hit, al, hot := "refused", "-", "-", "-"
		if g.OwnTPS != nil {
			own = fmt.Sprintf("%.1f tok/s", *g.OwnTPS)
			hit, al, hot = fmt.Sprintf("%.1f%%", 100*g.OwnHitRate), strconv.Itoa(g.OwnAttn), strconv.Itoa(g.OwnHot)
		}
		fmt.Fprintf(tw, "%s\t%.0f GB/s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", g.Name, g.Bandwidth/1e9, offload.FormatBytes(g.Memory), this, own, hit, al, hot)
	}
	tw.Flush()
	fmt.Fprintf(w, "(its own plan: the card's memory less %s for the CUDA context)\n", offload.FormatBytes(offload.DefaultGPUReserve))
}
