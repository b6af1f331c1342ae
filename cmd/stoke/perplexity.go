package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/predictor"
)

func cmdPerplexity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("perplexity", stderr)
	model := fs.String("m", "", "GGUF model `file` (required)")
	lf := addLoadFlags(fs)
	text := fs.String("text", "", "text `file` to score (required)")
	nctx := fs.Int("ctx", 512, "tokens per chunk (llama.cpp's -c)")
	chunks := fs.Int("chunks", 0, "score at most this many chunks (0: all)")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	kvType := fs.String("kv-type", "f32", "KV cache type: f32 or f16")
	asJSON := fs.Bool("json", false, "print one JSON object")
	profPath := fs.String("profile", "", "profile `file` (stoke profile) to calibrate activation thresholds from")
	sparsity := fs.Float64("sparsity", 0, "with --profile: zero the FFN activations below the per-layer threshold that silences this fraction of neurons")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := lf.check(); err != nil {
		return err
	}
	if *model == "" || *text == "" {
		return usagef("-m and --text are required")
	}
	kvt, err := dtype.Parse(*kvType)
	if err != nil || (kvt != dtype.F32 && kvt != dtype.F16) {
		return usagef("--kv-type %q: want f32 or f16", *kvType)
	}
	b, err := os.ReadFile(*text)
	if err != nil {
		return err
	}
	m, err := loadModel(*model, lf.options(*model, false, stderr), stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	s, err := m.NewSession(engine.Options{Threads: *threads, Context: *nctx, Batch: min(*nctx, 512), KVType: kvt})
	if err != nil {
		return err
	}
	defer s.Close()
	if *sparsity > 0 {
		if *profPath == "" {
			return usagef("--sparsity needs --profile")
		}
		prof, err := predictor.ReadProfile(*profPath)
		if err != nil {
			return err
		}
		if len(prof.Layers) != m.Config.Layers || prof.Layers[0].FFN != m.Config.FFN {
			return fmt.Errorf("profile %s does not match the model", *profPath)
		}
		if err := s.Runner().SetActThreshold(predictor.Calibrate(prof, *sparsity)); err != nil {
			return err
		}
	}
	ids := m.Tok.Encode(string(b), true, false)
	if *chunks > 0 && len(ids) > *chunks**nctx {
		ids = ids[:*chunks**nctx]
	}
	bar := newProgress(stderr, "perplexity")
	res, err := s.Perplexity(ctx, ids, *nctx, m.Tok.BOS(), bar.update)
	bar.done()
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"ppl": res.PPL, "sparsity": *sparsity, "stderr": res.StdErr, "chunks": res.Chunks, "scored_tokens": res.Scored, "ctx": *nctx,
		})
	}
	fmt.Fprintf(stdout, "PPL = %.4f +/- %.5f over %d chunks of %d tokens (%d scored)\n", res.PPL, res.StdErr, res.Chunks, *nctx, res.Scored)
	return nil
}
