package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/stokehq/stoke/bench"
	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/offload"
	"github.com/stokehq/stoke/predictor"
)

// defaultVRAM is the sweep's default list of VRAM points.
const defaultVRAM = "0,10%,25%,50%,75%,100%"

func cmdBenchSweep(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench sweep", stderr)
	model := fs.String("m", "", "GGUF model `file` (required)")
	vram := fs.String("vram", defaultVRAM, "VRAM points: bytes, sizes like 512MiB or 1.5GiB, or shares of the model's weight bytes like 25%")
	modes := fs.String("modes", "cpu,layer-split,hybrid", "modes to measure: dense, cpu, layer-split, hybrid")
	out := fs.String("out", "", "output `dir` for sweep.csv, sweep.json, sweep.png, sweep.svg (required)")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	pl := fs.Int("prompt-len", 64, "prompt length for the pp test (0 skips it)")
	gl := fs.Int("gen-len", 32, "generated tokens for the tg test")
	batch := fs.Int("batch", 0, "prefill chunk and device trip size in tokens (0: the prompt length)")
	repeat := fs.Int("repeat", 3, "measured repetitions (with --interleave: rounds) after one warm-up")
	interleave := fs.Bool("interleave", true, "measure in --repeat rounds over every mode and point (each with its own warm-up), so a burst of other work on the machine costs one sample of several points instead of all samples of one")
	profile := fs.String("profile", "", "profile `file` from stoke profile: firing frequencies the hybrid planner ranks neurons by")
	pf := addPredictorFlags(fs, "predictor GGUF `file` for the sparse modes (default: the file's own, else oracle for ReLU models)")
	device := fs.String("device", "auto", "device: auto (cuda when present, else cpu-capped), cuda, or cpu-capped (a capped CPU backend standing in for a GPU)")
	devBW := fs.Float64("device-bandwidth", 0, "device read bandwidth in GB/s for the roofline (0: the matching GPU profile; the CPU's for cpu-capped)")
	cpuBW := fs.Float64("cpu-bandwidth", 0, "CPU read bandwidth in GB/s (0: measure it)")
	llama := fs.String("llama-bench", "", "llama.cpp's llama-bench `binary`: run it with -ngl = the layers that fit each VRAM point, on the same file")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *out == "" {
		return usagef("-m and --out are required")
	}
	if *gl < 1 || *pl < 0 || *repeat < 1 || *batch < 0 {
		return usagef("--gen-len and --repeat must be ≥ 1, --prompt-len and --batch ≥ 0")
	}
	ms, err := bench.ParseModes(*modes)
	if err != nil {
		return usageError{err.Error()}
	}
	if *device != "auto" && *device != "cuda" && *device != "cpu-capped" {
		return usagef("--device %q: want auto, cuda or cpu-capped", *device)
	}
	m, err := engine.Load(*model)
	if err != nil {
		return err
	}
	defer m.Close()
	freq, err := profileFreq(m, *profile)
	if err != nil {
		return err
	}
	desc, err := m.OffloadDesc(freq)
	if err != nil {
		return err
	}
	if pf.given() {
		// the sparse modes compute another predictor than the file's, on
		// the host: the file's would only take VRAM
		for l := range desc.Layers {
			desc.Layers[l].Predictor = nil
		}
	}
	points, err := bench.ParseBudgets(*vram, desc.WeightBytes())
	if err != nil {
		return usageError{err.Error()}
	}
	o := bench.SweepOptions{
		Options: bench.Options{Threads: *threads, PromptLen: *pl, GenLen: *gl, Repeat: *repeat},
		Batch:   *batch, Points: points, Modes: ms, Freq: freq, Interleave: *interleave,
	}
	if o.Batch == 0 {
		o.Batch = max(*pl, 1)
	}
	sp, how, err := sweepSparsity(m, pf)
	if err != nil {
		return err
	}
	o.Sparsity, o.SparsityNote = sp, how

	var lb *bench.LlamaBench
	if *llama != "" {
		if lb, err = bench.LlamaBenchBinary(*llama, stderr); err != nil {
			return err
		}
	}

	rep := &bench.SweepReport{Schema: bench.SweepSchema, Provenance: bench.NewProvenance(append([]string{"stoke", "bench", "sweep"}, args...))}
	fmt.Fprintf(stderr, "stoke bench sweep: hashing %s...\n", *model)
	if rep.Provenance.Model, err = bench.DescribeModel(m); err != nil {
		return err
	}
	rep.Provenance.Model.Sparsity = how
	rep.Provenance.Model.Profile = *profile
	mc := bench.DescribeMachine()
	mc.LoadBefore = bench.LoadAverage()
	if *cpuBW > 0 {
		o.CPUBandwidth = *cpuBW * 1e9
	} else {
		fmt.Fprintln(stderr, "stoke bench sweep: measuring the CPU's read bandwidth...")
		o.CPUBandwidth = offload.MeasureReadBandwidth(256<<20, 3)
	}
	mc.CPUBandwidth = o.CPUBandwidth

	needDevice := false
	for _, md := range ms {
		needDevice = needDevice || md.UsesDevice()
	}
	if needDevice {
		dev, closeDev, err := openSweepDevice(*device, o.CPUBandwidth, *devBW*1e9, &mc, stderr)
		if err != nil {
			return err
		}
		defer closeDev()
		o.Device = dev
	}
	rep.Provenance.Machine = mc
	rep.Note = deviceNote(o.Device)
	fmt.Fprintf(stderr, "stoke bench sweep: %s\n", rep.Note)

	bar := newProgress(stderr, "sweep")
	o.Progress = func(done, total int, r *bench.Row) {
		fmt.Fprintf(stderr, "\r%s\n", rowLine(r))
		bar.update(done, total)
	}
	rows, err := bench.Sweep(ctx, m, desc, o)
	bar.done()
	interrupted := err != nil && ctx.Err() != nil && len(rows) > 0
	if err != nil && !interrupted {
		return err
	}
	if interrupted {
		rep.Note += " [INTERRUPTED: partial results]"
	}
	rep.Rows = rows
	threadsUsed := *threads
	for _, r := range rows {
		if r.TG != nil {
			threadsUsed = r.TG.Threads
		}
	}
	mc.Threads = threadsUsed
	mc.LoadAfter = bench.LoadAverage()
	rep.Provenance.Machine = mc
	rep.Settings = bench.Settings{Threads: threadsUsed, PromptLen: *pl, GenLen: *gl, Batch: o.Batch, Repeat: *repeat,
		Modes: ms, Points: points, Context: o.Context(), ShareBase: desc.WeightBytes(), Interleave: *interleave}

	switch {
	case lb == nil:
		rep.LlamaNote = "no --llama-bench given: no llama.cpp line"
		fmt.Fprintln(stderr, "stoke bench sweep: no --llama-bench given: the plot has no llama.cpp line")
	case interrupted:
		rep.LlamaNote = "interrupted before llama-bench ran"
	default:
		o.Threads = threadsUsed
		rep.LlamaBench = bench.LlamaSweep(ctx, lb, *model, desc, o)
		rep.LlamaNote = fmt.Sprintf("llama-bench %s, -ngl = layers that fit each VRAM point (layer-split plan); a CPU-only llama.cpp build ignores -ngl", *llama)
	}
	paths, werr := rep.WriteFiles(*out)
	if werr != nil {
		return werr
	}
	var sum bytes.Buffer
	if perr := printSweep(&sum, rep); perr != nil {
		return perr
	}
	summary := filepath.Join(*out, "summary.md")
	if werr := os.WriteFile(summary, sum.Bytes(), 0o644); werr != nil {
		return werr
	}
	paths = append(paths, summary)
	fmt.Fprintf(stdout, "%s\nwrote %s\n", sum.Bytes(), strings.Join(paths, ", "))
	if interrupted {
		return fmt.Errorf("interrupted after %d measurements (partial results written): %w", len(rows), err)
	}
	return nil
}

// profileFreq reads per-neuron firing frequencies from a profile file
// (nil without one), checking its shape against the model.
func profileFreq(m *engine.Model, path string) ([][]float64, error) {
	if path == "" {
		return nil, nil
	}
	prof, err := predictor.ReadProfile(path)
	if err != nil {
		return nil, err
	}
	c := &m.Config
	if len(prof.Layers) != c.Layers || prof.Layers[0].FFN != c.FFN {
		return nil, fmt.Errorf("profile %s has %d layers of %d neurons; the model %d of %d", path, len(prof.Layers), prof.Layers[0].FFN, c.Layers, c.FFN)
	}
	freq := make([][]float64, c.Layers)
	for l := range prof.Layers {
		freq[l] = prof.Layers[l].Rate()
	}
	return freq, nil
}

// sweepSparsity picks how the sparse modes choose active neurons: a
// predictor (given or the file's own), else oracle for ReLU-family
// models (exact), else none: a SwiGLU model without a predictor runs the
// sparse modes dense.
func sweepSparsity(m *engine.Model, pf *predictorFlags) (*engine.Sparsity, string, error) {
	sp, how, err := sparsityFor(m, pf)
	if err != nil {
		return nil, "", err
	}
	if sp.Predictor == nil && m.Config.Act != arch.ReLU {
		return nil, "dense (a " + m.Config.Act.String() + " model without a predictor)", nil
	}
	return &sp, how, nil
}

// openSweepDevice opens the sweep's device and fills the machine's GPU
// fields. The cpu-capped device is a second CPU backend with the point's
// budget as its byte cap: same cores, same DRAM.
func openSweepDevice(kind string, cpuBW, devBW float64, mc *bench.Machine, stderr io.Writer) (*bench.Device, func(), error) {
	if kind == "auto" || kind == "cuda" {
		b, err := openCUDA()
		switch {
		case err == nil:
			info := b.Info()
			d := &bench.Device{Kind: "cuda", Label: "cuda: " + info.Name, Bandwidth: devBW}
			d.Open = func(int64, *cpu.Pool) (kernels.Backend, error) { return b, nil }
			mc.Device, mc.DeviceKind, mc.GPU, mc.GPUMemory = d.Label, "cuda", info.Name, info.TotalBytes
			if name, driver, mem, ok := bench.NvidiaSMI(); ok {
				mc.GPU, mc.GPUDriver, mc.GPUMemory = name, driver, mem
			}
			switch {
			case devBW > 0:
				mc.DeviceBWSource = "given (--device-bandwidth)"
			default:
				if g, ok := gpuProfileFor(mc.GPU); ok {
					d.Bandwidth = g.Bandwidth
					mc.DeviceBWSource = "published peak of the " + g.Name + " profile"
				} else {
					mc.DeviceBWSource = "unknown (give --device-bandwidth): no device roofline"
				}
			}
			mc.DeviceBandwidth = d.Bandwidth
			return d, func() { b.Close() }, nil
		case kind == "cuda":
			return nil, nil, fmt.Errorf("--device cuda: %w", err)
		default:
			fmt.Fprintf(stderr, "stoke bench sweep: no GPU (%v): using a capped CPU backend as a stand-in\n", err)
		}
	}
	d := bench.CPUCapped(cpuBW)
	mc.Device, mc.DeviceKind = d.Label, d.Kind
	mc.DeviceBandwidth = cpuBW
	mc.DeviceBWSource = "the host's DRAM (measured CPU read bandwidth): the stand-in computes on the CPU"
	return d, func() {}, nil
}

// gpuProfileFor finds offload's GPU profile whose name matches a device
// name ("NVIDIA GeForce RTX 4090" matches "RTX 4090").
func gpuProfileFor(name string) (offload.GPU, bool) {
	n := strings.ToLower(name)
	for _, g := range offload.GPUProfiles() {
		words := strings.Fields(strings.ToLower(g.Name))
		ok := len(words) > 0
		for _, w := range words {
			if !strings.Contains(n, w) && !strings.Contains(n, strings.TrimSuffix(w, "gb")) {
				ok = false
			}
		}
		if ok {
			return g, true
		}
	}
	return offload.GPU{}, false
}

func deviceNote(d *bench.Device) string {
	switch {
	case d == nil:
		return "no device: host modes only"
	case d.Kind == "cpu-capped":
		return "device: cpu-capped (stand-in for a GPU): a second CPU backend capped to each VRAM budget, on the same cores and DRAM as the host half; its speeds are not GPU speeds"
	}
	return "device: " + d.Label
}

// rowLine is one finished measurement, for the log.
func rowLine(r *bench.Row) string {
	at := r.Point
	if r.Mode.UsesDevice() {
		at = fmt.Sprintf("%s (%s)", r.Point, offload.FormatBytes(r.BudgetBytes))
	}
	switch {
	case r.Status != "ok":
		return fmt.Sprintf("  %-11s %-20s %s: %s", r.Mode, at, r.Status, r.Note)
	case r.TG == nil:
		return fmt.Sprintf("  %-11s %-20s done", r.Mode, at)
	}
	return fmt.Sprintf("  %-11s %-20s tg %8.2f ± %.2f tok/s  hit %.2f  bound %.1f", r.Mode, at, r.TG.TokPerSec, r.TG.StdDev, r.HitRate, r.RooflineTPS)
}

// printSweep prints the results as a Markdown table.
func printSweep(w io.Writer, rep *bench.SweepReport) error {
	t := &bench.Table{
		Title: fmt.Sprintf("VRAM sweep: %s (%s)", rep.Provenance.Model.Path, rep.Provenance.Model.DType),
		Note:  rep.Note,
		Columns: []string{"mode", "vram", "budget", "status", "plan", "hot share", "hit rate", "pp tok/s", "tg tok/s",
			"± sd", "roofline tg"},
	}
	f := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	for _, r := range rep.Rows {
		pp, tg, sd := "", "", ""
		if r.PP != nil {
			pp = f(r.PP.TokPerSec)
		}
		if r.TG != nil {
			tg, sd = f(r.TG.TokPerSec), f(r.TG.StdDev)
		}
		status := r.Status
		if status != "ok" {
			status += ": " + firstLine(r.Note, 70)
		}
		t.Rows = append(t.Rows, []any{string(r.Mode), r.Point, offload.FormatBytes(r.BudgetBytes), status,
			offload.FormatBytes(r.PlanBytes), f(r.HotShare), f(r.HitRate), pp, tg, sd, f(r.RooflineTPS)})
	}
	for _, l := range rep.LlamaBench {
		tg, sd, pp := "", "", ""
		if l.TG != nil {
			tg, sd = f(l.TG.TokPerSec), f(l.TG.StdDev)
		}
		if l.PP != nil {
			pp = f(l.PP.TokPerSec)
		}
		t.Rows = append(t.Rows, []any{fmt.Sprintf("llama.cpp -ngl %d", l.NGL), l.Point, offload.FormatBytes(l.BudgetBytes),
			firstLine(l.Note, 70), "", "", "", pp, tg, sd, ""})
	}
	if err := t.Write(w, "md"); err != nil {
		return err
	}
	pv := &rep.Provenance
	mc := &pv.Machine
	_, err := fmt.Fprintf(w, "\n%s\n\nStoke %s, model sha256 %s; %s, %d cores, %s RAM, CPU read bandwidth %.1f GB/s (measured), load average %.1f before, %.1f after; %s.\n",
		rep.LlamaNote, pv.Stoke, pv.Model.SHA256, mc.CPU, mc.Cores, offload.FormatBytes(mc.RAMBytes), mc.CPUBandwidth/1e9,
		mc.LoadBefore, mc.LoadAfter, pv.Time)
	return err
}

func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
