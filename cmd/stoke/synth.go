package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
)

func cmdSynth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("synth", stderr)
	out := fs.String("out", "", "output GGUF `file` (required)")
	params := fs.String("params", "100M", "target parameter count (e.g. 15M, 1B, 7B)")
	dt := fs.String("dtype", "q8_0", "weight type: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q4_k q5_k q6_k, or q4_k_m, q5_k_m (llama.cpp's mixes of Q4_K or Q5_K and Q6_K)")
	archName := fs.String("arch", "llama", "architecture: llama, bamboo (a dReLU llama, PowerInfer's name) or opt")
	relu := fs.Bool("relu", false, "ReLU FFN (ReluLLaMA-style for llama; OPT always is), with planted firing statistics")
	drelu := fs.Bool("drelu", false, "dReLU FFN: ReLU on gate and up (TurboSparse/Bamboo-style), with planted firing statistics")
	powerInfer := fs.Bool("powerinfer", false, "PowerInfer's layout: magic PWRI, transposed ffn_down_t, predictors fc1/fc2 (implies --relu for llama)")
	hot := fs.Float64("hot", 0, "fraction of each layer's neurons that fire for most tokens (0: 0.05)")
	cold := fs.Float64("cold", 0, "mean firing rate of the other neurons (0: 0.02; below 0.06)")
	seed := fs.Uint64("seed", 1, "RNG seed (same seed, same bytes)")
	ctxLen := fs.Int("ctx", 0, "context_length to record (0: default)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	p, err := parseCount(*params)
	if err != nil {
		return usageError{err.Error()}
	}
	mix := ""
	for _, m := range []string{synth.MixQ4KM, synth.MixQ5KM} {
		if strings.EqualFold(*dt, m) {
			*dt, mix = strings.TrimSuffix(strings.ToLower(m), "_m"), m
		}
	}
	t, err := dtype.Parse(*dt)
	if err != nil || !t.Computable() || t == dtype.Q8_K {
		return usagef("--dtype %q is not a weight type Stoke can compute with", *dt)
	}
	if *relu && *drelu {
		return usagef("--relu and --drelu exclude each other")
	}
	act := ""
	switch {
	case *relu:
		act = "relu"
	case *drelu:
		act = "drelu"
	case *powerInfer && *archName == "llama":
		act = "relu"
	}
	c := synth.Config{Arch: *archName, Act: act, PowerInfer: *powerInfer, HotFraction: *hot, ColdRate: *cold,
		Params: p, Type: t, Mix: mix, Seed: *seed, Context: *ctxLen}
	sc, err := synth.Shape(c)
	if err != nil {
		return usageError{err.Error()}
	}
	typeName := t.String()
	if mix != "" {
		typeName = mix
	}
	fmt.Fprintf(stderr, "stoke synth: %s %s %s: dim %d, %d layers, %d heads (%d kv), ffn %d, vocab %d\n",
		sc.Arch, sc.Act, typeName, sc.Dim, sc.Layers, sc.Heads, sc.KVHeads, sc.FFN, sc.Vocab)
	if sc.Act != "silu" {
		fmt.Fprintf(stderr, "stoke synth: planted firing: %.1f%% hot neurons, cold rate %.3f; ", 100*sc.HotFraction, sc.ColdRate)
		if sc.PowerInfer {
			fmt.Fprintf(stderr, "PowerInfer layout, predictor rank %d\n", synth.PredictorRank(sc))
		} else {
			fmt.Fprintln(stderr, "dense layout")
		}
	}
	if err := synth.Write(*out, c); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", *out)
	return nil
}

// parseCount reads "1B", "125M", "15e6" or a plain integer.
func parseCount(s string) (int64, error) {
	mult := 1.0
	u := strings.ToUpper(strings.TrimSpace(s))
	switch {
	case strings.HasSuffix(u, "B"):
		mult, u = 1e9, strings.TrimSuffix(u, "B")
	case strings.HasSuffix(u, "M"):
		mult, u = 1e6, strings.TrimSuffix(u, "M")
	case strings.HasSuffix(u, "K"):
		mult, u = 1e3, strings.TrimSuffix(u, "K")
	}
	v, err := strconv.ParseFloat(u, 64)
	if err != nil || !(v > 0) || v*mult > 1e12 {
		return 0, fmt.Errorf("parameter count %q: want a positive number like 15M or 1B", s)
	}
	return int64(v * mult), nil
}
