package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/stokehq/stoke/bench"
	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/offload"
	"github.com/stokehq/stoke/predictor"
)

func checkFormat(f string) error {
	if !slices.Contains(bench.Formats, f) {
		return usagef("--format %q: want md, csv or json", f)
	}
	return nil
}

func cmdBenchRoofline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench roofline", stderr)
	model := fs.String("m", "", "GGUF model `file` (required)")
	profile := fs.String("profile", "", "profile `file` from stoke profile: measured firing frequencies (without one every neuron counts as always active)")
	gpus := fs.String("gpu", "all", "GPU profiles: all, or names separated by commas (e.g. \"1060,RTX 4090\")")
	vram := fs.String("vram", defaultVRAM, "VRAM points: bytes, sizes like 6GiB, or shares of the model like 25%")
	modes := fs.String("modes", "layer-split,hybrid", "device modes: layer-split, hybrid")
	cpuBW := fs.Float64("cpu-bandwidth", 0, "CPU read bandwidth in GB/s (0: measure this machine's)")
	nctx := fs.Int("ctx", 512, "KV positions the plans reserve")
	batch := fs.Int("batch", 1, "tokens per step the plans' scratch is sized for")
	format := fs.String("format", "md", "output format: md, csv or json")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return usagef("-m is required")
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	ms, err := bench.ParseModes(*modes)
	if err != nil {
		return usageError{err.Error()}
	}
	var profs []offload.GPU
	if *gpus == "all" {
		profs = offload.GPUProfiles()
	} else {
		for n := range strings.SplitSeq(*gpus, ",") {
			g, ok := findGPU(strings.TrimSpace(n))
			if !ok {
				var names []string
				for _, g := range offload.GPUProfiles() {
					names = append(names, g.Name)
				}
				return usagef("--gpu %q matches no profile (have: %s)", n, strings.Join(names, ", "))
			}
			profs = append(profs, g)
		}
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
	points, err := bench.ParseBudgets(*vram, desc.WeightBytes())
	if err != nil {
		return usageError{err.Error()}
	}
	bw := *cpuBW * 1e9
	if bw <= 0 {
		fmt.Fprintln(stderr, "stoke bench roofline: measuring this machine's CPU read bandwidth...")
		bw = offload.MeasureReadBandwidth(256<<20, 3)
	}
	sp, _, err := sweepSparsity(m, &predictorFlags{})
	if err != nil {
		return err
	}
	t, err := bench.RooflineTable(desc, bench.RooflineOptions{GPUs: profs, Points: points, Modes: ms, CPUBandwidth: bw,
		Context: *nctx, Batch: *batch, Sparse: sp != nil && sp.Predictor != nil})
	if err != nil {
		return err
	}
	t.Title += ": " + *model
	return t.Write(stdout, *format)
}

// findGPU matches a GPU profile by a case-insensitive part of its name.
func findGPU(name string) (offload.GPU, bool) {
	n := strings.ToLower(name)
	for _, g := range offload.GPUProfiles() {
		if n != "" && strings.Contains(strings.ToLower(g.Name), n) {
			return g, true
		}
	}
	return offload.GPU{}, false
}

func cmdBenchSparsity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench sparsity", stderr)
	model := fs.String("m", "", "GGUF model `file` the profile came from (optional: checks the shapes)")
	profile := fs.String("profile", "", "profile `file` from stoke profile (required)")
	firing := fs.String("firing", "0.5,0.1,0.01", "firing-rate thresholds (fractions of tokens) for the fires>x columns")
	coverage := fs.String("coverage", "0.01,0.05,0.1,0.2,0.5", "hot-set sizes (fractions of a layer's neurons) for the coverage columns")
	format := fs.String("format", "md", "output format: md, csv or json")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *profile == "" {
		return usagef("--profile is required")
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	fr, err := fractions(*firing, "--firing")
	if err != nil {
		return err
	}
	cv, err := fractions(*coverage, "--coverage")
	if err != nil {
		return err
	}
	prof, err := predictor.ReadProfile(*profile)
	if err != nil {
		return err
	}
	if *model != "" {
		m, err := engine.Load(*model)
		if err != nil {
			return err
		}
		defer m.Close()
		if _, err := profileFreq(m, *profile); err != nil {
			return err
		}
	}
	t, err := bench.SparsityTable(prof, fr, cv)
	if err != nil {
		return err
	}
	return t.Write(stdout, *format)
}

func cmdBenchPredictor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench predictor", stderr)
	profile := fs.String("profile", "", "profile `file` of held-out text, from stoke profile (required)")
	predPath := fs.String("predictor", "", "predictor GGUF `file` from stoke train-predictor (required)")
	format := fs.String("format", "md", "output format: md, csv or json")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *profile == "" || *predPath == "" {
		return usagef("--profile and --predictor are required (a PowerInfer file's own predictor reads the residual stream, which profiles do not record: measure it with stoke eval-predictor)")
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	prof, err := predictor.ReadProfile(*profile)
	if err != nil {
		return err
	}
	p, err := predictor.ReadPredictorGGUF(*predPath)
	if err != nil {
		return err
	}
	t, err := bench.PredictorTable(prof, p, p.ActThreshold)
	if err != nil {
		return err
	}
	return t.Write(stdout, *format)
}

// fractions parses a comma-separated list of numbers in (0, 1].
func fractions(s, flag string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !(v > 0 && v <= 1) {
			return nil, usagef("%s %q: want fractions in (0, 1] like 0.5,0.1", flag, s)
		}
		out = append(out, v)
	}
	return out, nil
}

func cmdBenchPlot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench plot", stderr)
	in := fs.String("in", "", "sweep.json `file` from stoke bench sweep (required)")
	out := fs.String("out", "", "plot `file`s to write, comma-separated: .png, .svg or .pdf (default: sweep.png and sweep.svg beside --in)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" {
		return usagef("--in is required")
	}
	b, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var rep bench.SweepReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	if rep.Schema != bench.SweepSchema {
		return fmt.Errorf("%s: schema %q, want %q", *in, rep.Schema, bench.SweepSchema)
	}
	paths := []string{filepath.Join(filepath.Dir(*in), "sweep.png"), filepath.Join(filepath.Dir(*in), "sweep.svg")}
	if *out != "" {
		paths = strings.Split(*out, ",")
	}
	for _, p := range paths {
		if err := rep.Plot(strings.TrimSpace(p)); err != nil {
			return err
		}
		fmt.Fprintln(stdout, p)
	}
	return nil
}
