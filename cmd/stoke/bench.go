package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/stokehq/stoke/bench"
	"github.com/stokehq/stoke/engine"
)

// benchCommands are bench's subcommands; without one, bench measures pp
// and tg as llama-bench does.
var benchCommands = map[string]command{
	"sweep":     {"decode and prompt tokens/s vs VRAM budget per offload mode: CSV, JSON and plots", cmdBenchSweep},
	"roofline":  {"predicted tokens/s vs VRAM for named GPU profiles (a model, not a measurement)", cmdBenchRoofline},
	"sparsity":  {"per-layer FFN firing statistics and hot-set coverage from a profile", cmdBenchSparsity},
	"predictor": {"per-layer predictor recall, precision and sparsity on a profile's samples", cmdBenchPredictor},
	"plot":      {"redraw a sweep's plot from its sweep.json", cmdBenchPlot},
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if c, ok := benchCommands[args[0]]; ok {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fs := newFlags("bench", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: stoke bench [flags]            pp/tg tokens/s, like llama-bench\n       stoke bench <subcommand> [flags]\n\nSubcommands:\n")
		for _, n := range []string{"sweep", "roofline", "sparsity", "predictor", "plot"} {
			fmt.Fprintf(stderr, "  %-10s %s\n", n, benchCommands[n].summary)
		}
		fmt.Fprintf(stderr, "\nFlags:\n")
		fs.PrintDefaults()
	}
	model := fs.String("m", "", "GGUF model `file` (default: the synthetic demo model)")
	lf := addLoadFlags(fs)
	threadList := fs.String("threads", "1,2", "comma-separated thread counts")
	pl := fs.Int("p", 128, "prompt length for the pp test (0 skips it)")
	gl := fs.Int("n", 64, "generated tokens for the tg test (0 skips it)")
	repeat := fs.Int("r", 3, "repetitions (after one warm-up)")
	llama := fs.String("llama-cpp", "", "llama.cpp source `dir`: build its llama-bench and compare on the same file")
	asJSON := fs.Bool("json", false, "print JSON")
	sparse := fs.Bool("sparse", false, "decode (tg) with the sparse FFN, as stoke run --sparse does; prefill stays dense")
	pf := addPredictorFlags(fs, "predictor GGUF `file` for --sparse (default: the model's own, else oracle mode)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := lf.check(); err != nil {
		return err
	}
	if pf.given() && !*sparse {
		return usagef("--predictor and --predictor-type need --sparse")
	}
	var threads []int
	for _, f := range strings.Split(*threadList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return usagef("--threads %q: want a list like 1,2", *threadList)
		}
		threads = append(threads, n)
	}
	path := *model
	var err error
	if path == "" {
		if path, err = ensureDemoModel(stderr); err != nil {
			return err
		}
	}
	lo := lf.options(path, false, stderr)
	lo.KeepFFNRows = *sparse // the sparse FFN reads rows
	m, err := loadModel(path, lo, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	engineName := "stoke"
	var sp *engine.Sparsity
	if *sparse {
		s, how, err := sparsityFor(m, pf)
		if err != nil {
			return err
		}
		sp, engineName = &s, "stoke-sparse"
		fmt.Fprintf(stderr, "stoke bench: sparse FFN with %s\n", how)
	}
	var lb *bench.LlamaBench
	if *llama != "" {
		if lb, err = bench.BuildLlamaBench(ctx, *llama, stderr); err != nil {
			return err
		}
	} else if !*asJSON {
		fmt.Fprintln(stderr, "stoke bench: no --llama-cpp source directory given: measuring Stoke alone")
	}
	type row struct {
		Engine string `json:"engine"`
		bench.Result
	}
	var rows []row
	for _, t := range threads {
		o := bench.Options{Threads: t, PromptLen: *pl, GenLen: *gl, Repeat: *repeat, NoMmap: lo.NoMmap, Sparse: sp}
		res, err := bench.Throughput(m, o)
		if err != nil {
			return err
		}
		o.Sparse = nil // llama.cpp runs dense
		for _, r := range res {
			rows = append(rows, row{engineName, r})
		}
		if lb != nil {
			res, err := lb.Run(ctx, path, o)
			if err != nil {
				return err
			}
			for _, r := range res {
				rows = append(rows, row{"llama.cpp", r})
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"model": path, "params": m.ParamCount(), "weight_bytes": m.WeightBytes(), "results": rows})
	}
	fmt.Fprintf(stdout, "model %s: %.0f M params, %.1f MiB of weights\n", path, float64(m.ParamCount())/1e6, float64(m.WeightBytes())/(1<<20))
	fmt.Fprintf(stdout, "%-12s %-8s %7s %12s %10s %10s\n", "engine", "test", "threads", "tok/s", "± stddev", "vs llama")
	ref := map[string]float64{}
	for _, r := range rows {
		if r.Engine == "llama.cpp" {
			ref[fmt.Sprint(r.Test, r.Threads)] = r.TokPerSec
		}
	}
	for _, r := range rows {
		ratio := ""
		if v, ok := ref[fmt.Sprint(r.Test, r.Threads)]; ok && r.Engine != "llama.cpp" && v > 0 {
			ratio = fmt.Sprintf("%.2f×", r.TokPerSec/v)
		}
		active := ""
		if r.ActivePercent > 0 {
			active = fmt.Sprintf("  (%.1f%% of FFN neurons computed)", r.ActivePercent)
		}
		fmt.Fprintf(stdout, "%-12s %-8s %7d %12.2f %10.2f %10s%s\n", r.Engine, r.Test, r.Threads, r.TokPerSec, r.StdDev, ratio, active)
	}
	return nil
}
