package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/offload"
	"github.com/stokehq/stoke/predictor"
)

// offloadFlags are the device flags run and serve share.
type offloadFlags struct {
	vram    *string
	device  *string
	mode    *string
	layers  *int
	profile *string

	// devicePredictor: the run computes the file's own predictor (sparse,
	// no --predictor or --predictor-type), which the plan may then put on
	// the device; otherwise its weights would only take VRAM there.
	devicePredictor bool

	probed bool            // the GPU was looked for (usesDevice)
	gpu    kernels.Backend // the GPU found, until setup takes it
	gpuWhy string          // why none was found
}

// cpuOnly reports whether the flags keep every weight on the CPU.
func (o *offloadFlags) cpuOnly() bool {
	v := strings.ToLower(strings.TrimSpace(*o.vram))
	return v == "0" || v == "none"
}

// openGPU looks for the GPU once; setup takes over what it finds.
func (o *offloadFlags) openGPU() {
	if !o.probed {
		o.gpu, o.gpuWhy = openGPU()
		o.probed = true
	}
}

// usesDevice reports whether setup will put weights on a device (before
// the model is loaded, which it lets choose mapping). It opens the GPU
// to find out; release closes it if setup never runs.
func (o *offloadFlags) usesDevice() bool {
	if o.cpuOnly() {
		return false
	}
	switch *o.device {
	case "auto", "cuda":
		o.openGPU()
		return o.gpu != nil
	case "cpu-capped":
		return true
	}
	return false // setup rejects the flag
}

// release closes a GPU that usesDevice opened and setup did not take.
func (o *offloadFlags) release() {
	if o.gpu != nil {
		o.gpu.Close()
		o.gpu = nil
	}
}

// vramMargin is what --vram auto leaves free on the GPU besides the
// plan: other processes' and the driver's growth.
const vramMargin = 256 << 20

func addOffloadFlags(fs *flag.FlagSet) *offloadFlags {
	return &offloadFlags{
		vram:    fs.String("vram", "auto", "device memory for the model: bytes, KiB/MiB/GiB, or % of the model; auto: the GPU's free memory less 256 MiB (none: CPU only); 0: CPU only"),
		device:  fs.String("device", "auto", "auto (a CUDA GPU when one works), cuda, or cpu-capped (the CPU standing in for a device of --vram bytes: for tests and benchmarks)"),
		mode:    fs.String("offload", "hybrid", "what goes to the device: hybrid (attention, head, then the hottest neurons) or layer-split (whole layers, like llama.cpp -ngl)"),
		layers:  fs.Int("ngl", -1, "layer-split: layers on the device (−1: as many as fit)"),
		profile: fs.String("profile", "", "profile `file` from stoke profile: firing frequencies that rank neurons for the hybrid placement (default: uniform)"),
	}
}

// deviceSetup opens the device and solves the plan; it returns the
// runner setup that enables it (nil for CPU only) and a closer.
func (o *offloadFlags) setup(m *engine.Model, ctx, seqs, batch int, kvt dtype.Type, stderr io.Writer) (func(*engine.Runner) error, func(), error) {
	none := func() {}
	v := strings.ToLower(strings.TrimSpace(*o.vram))
	if o.cpuOnly() {
		return nil, none, nil
	}
	var mode offload.Mode
	switch *o.mode {
	case "hybrid":
		mode = offload.ModeHybrid
	case "layer-split":
		mode = offload.ModeLayerSplit
	default:
		return nil, none, usagef("--offload %q: want hybrid or layer-split", *o.mode)
	}
	var freq [][]float64
	if *o.profile != "" {
		prof, err := predictor.ReadProfile(*o.profile)
		if err != nil {
			return nil, none, err
		}
		freq = make([][]float64, len(prof.Layers))
		for l := range prof.Layers {
			freq[l] = prof.Layers[l].Rate()
		}
	}
	desc, err := m.OffloadDesc(freq)
	if err != nil {
		return nil, none, err
	}
	desc.KVType = kvt.TypeSize()
	if !o.devicePredictor {
		for l := range desc.Layers {
			desc.Layers[l].Predictor = nil
		}
	}
	var dev kernels.Backend
	var budget int64
	switch *o.device {
	case "auto", "cuda":
		o.openGPU()
		g, why := o.gpu, o.gpuWhy
		o.gpu = nil // ours now: closed below or by the closer
		if g == nil {
			if *o.device == "cuda" || v != "auto" {
				return nil, none, fmt.Errorf("no CUDA device: %s", why)
			}
			fmt.Fprintf(stderr, "stoke: CPU only (%s)\n", why)
			return nil, none, nil
		}
		dev = g
		if v == "auto" {
			budget = g.Info().FreeBytes - vramMargin
		} else if budget, err = parseSize(v, desc.WeightBytes()); err != nil {
			g.Close()
			return nil, none, usagef("--vram: %v", err)
		}
		if free := g.Info().FreeBytes; budget > free {
			g.Close()
			return nil, none, fmt.Errorf("--vram %s is more than the %s free on %s", *o.vram, offload.FormatBytes(free), g.Name())
		}
	case "cpu-capped":
		if v == "auto" {
			return nil, none, usagef("--device cpu-capped needs a --vram size")
		}
		if budget, err = parseSize(v, desc.WeightBytes()); err != nil {
			return nil, none, usagef("--vram: %v", err)
		}
	default:
		return nil, none, usagef("--device %q: want auto, cuda or cpu-capped", *o.device)
	}
	if budget <= 0 {
		if dev != nil {
			dev.Close()
		}
		return nil, none, nil
	}
	plan, err := offload.Solve(desc, offload.Options{Mode: mode, Budget: budget, Context: ctx, Seqs: seqs, Batch: batch, Layers: *o.layers})
	if err != nil {
		if dev != nil {
			dev.Close()
		}
		return nil, none, err
	}
	attn := 0
	preds := 0
	for _, lp := range plan.Layers {
		if lp.Attn {
			attn++
		}
		if lp.Predictor {
			preds++
		}
	}
	setup := func(r *engine.Runner) error {
		if dev == nil { // cpu-capped: shares the runner's pool
			dev = cpu.NewBackend(r.Pool(), budget)
		}
		return r.EnableOffload(dev, plan)
	}
	name := "cpu-capped (the CPU standing in for a device)"
	if dev != nil {
		name = dev.Name()
	}
	fmt.Fprintf(stderr, "stoke: %s plan on %s: %s of %s budget, attention of %d/%d layers, predictor of %d, expected hit rate %.1f%%\n",
		plan.Mode, name, offload.FormatBytes(plan.TotalBytes), offload.FormatBytes(budget), attn, len(plan.Layers), preds, 100*plan.HitRate)
	return setup, func() {
		if dev != nil {
			dev.Close()
		}
	}, nil
}

// planBatch is the tokens per device trip a plan sizes its scratch for:
// every decoding sequence at once, and prompt chunks of up to 64 tokens
// (larger chunks would cost VRAM for little speed; longer prompts take
// several trips).
func planBatch(batch, seqs int) int {
	if batch <= 0 {
		batch = engine.DefaultBatch
	}
	return max(seqs, min(batch, 64))
}
