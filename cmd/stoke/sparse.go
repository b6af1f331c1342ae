package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/predictor"
)

// predictorFlags are the flags that pick a sparse run's predictor:
// --predictor and --predictor-type.
type predictorFlags struct {
	path string
	typ  dtype.Type // re-encode the weights in this type at load; see quant
	// quant reports whether --predictor-type was given (typ's zero value,
	// F32, is not a type it takes).
	quant bool
}

// addPredictorFlags registers --predictor (with the command's usage) and
// --predictor-type on fs.
func addPredictorFlags(fs *flag.FlagSet, usage string) *predictorFlags {
	pf := &predictorFlags{}
	fs.StringVar(&pf.path, "predictor", "", usage)
	fs.Func("predictor-type", "re-encode the predictor's weights at load in `type` q8_0 (half the bytes of F16 a token reads), q4_0 (about a quarter) or f16; thresholds are kept, so measure the recall with stoke eval-predictor --predictor-type (default: as stored)", func(s string) error {
		t, err := predictor.ParseType(s)
		pf.typ, pf.quant = t, err == nil
		return err
	})
	return pf
}

// given reports whether either flag was set.
func (pf *predictorFlags) given() bool { return pf.path != "" || pf.quant }

// sparsityFor builds the sparse-FFN settings for a model: the predictor
// file if given, else the one embedded in a PowerInfer file, else oracle
// mode (exact for ReLU models); the predictor re-encoded as
// --predictor-type asks.
func sparsityFor(m *engine.Model, pf *predictorFlags) (engine.Sparsity, string, error) {
	var (
		sp  engine.Sparsity
		how string
	)
	if pf.path != "" {
		if err := checkPredictorOrder(m.File, "the model", pf.path); err != nil {
			return engine.Sparsity{}, "", err
		}
		p, err := predictor.ReadPredictorGGUF(pf.path)
		if err != nil {
			return engine.Sparsity{}, "", err
		}
		sp, how = engine.Sparsity{Predictor: p, ActThreshold: p.ActThreshold}, "predictor "+pf.path
	} else {
		p, err := m.FilePredictor()
		if err != nil {
			return engine.Sparsity{}, "", err
		}
		if p == nil {
			if pf.quant {
				return engine.Sparsity{}, "", usagef("--predictor-type: the model has no predictor of its own; give --predictor")
			}
			return engine.Sparsity{}, "oracle (no predictor: full gate projection, sparse up/down)", nil
		}
		sp, how = engine.Sparsity{Predictor: p, OnResidual: true}, "the file's PowerInfer predictor"
	}
	if pf.quant {
		q, err := sp.Predictor.Quantized(pf.typ)
		if err != nil {
			return engine.Sparsity{}, "", err
		}
		sp.Predictor = q
		how += " in " + pf.typ.String()
	}
	return sp, how, nil
}

func cmdProfile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("profile", stderr)
	model := fs.String("m", "", "GGUF model `file` (required)")
	text := fs.String("text", "", "text `file` to run (required)")
	out := fs.String("out", "", "profile GGUF `file` to write (required)")
	nctx := fs.Int("ctx", 512, "tokens per chunk")
	maxTok := fs.Int("max-tokens", 0, "profile at most this many tokens (0: all)")
	samples := fs.Int("samples", 4096, "FFN input/activation samples kept per layer (reservoir)")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *text == "" || *out == "" {
		return usagef("-m, --text and --out are required")
	}
	b, err := os.ReadFile(*text)
	if err != nil {
		return err
	}
	m, err := engine.Load(*model)
	if err != nil {
		return err
	}
	defer m.Close()
	ids := m.Tok.Encode(string(b), true, false)
	if *maxTok > 0 && len(ids) > *maxTok {
		ids = ids[:*maxTok]
	}
	c := &m.Config
	prof := predictor.NewProfile(c.Layers, c.Dim, c.FFN, *samples, *seed)
	prof.Model = m.Path
	s, err := m.NewSession(engine.Options{Threads: *threads, Context: min(*nctx, c.Context), Batch: min(*nctx, 256)})
	if err != nil {
		return err
	}
	defer s.Close()
	bar := newProgress(stderr, "profile")
	err = s.Profile(ctx, ids, m.Tok.BOS(), prof, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	if err := prof.WriteGGUF(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "profiled %d tokens, %d samples per layer → %s\n", prof.Tokens, prof.Layers[0].N, *out)
	for l, lp := range prof.Layers {
		fired := 0.0
		for _, n := range lp.Count {
			fired += float64(n)
		}
		fmt.Fprintf(stdout, "layer %2d: mean active fraction %.3f\n", l, fired/float64(max(prof.Tokens, 1))/float64(lp.FFN))
	}
	return nil
}

func cmdTrainPredictor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train-predictor", stderr)
	model := fs.String("m", "", "GGUF model `file` the profile came from (required)")
	profPath := fs.String("profile", "", "profile `file` from stoke profile (required)")
	out := fs.String("out", "", "predictor GGUF `file` to write (required)")
	sparsity := fs.Float64("sparsity", 0, "SwiGLU models: target sparsity for calibrated activation thresholds (0: threshold 0, right for ReLU models)")
	recall := fs.Float64("recall", 0.99, "held-out recall each layer must reach")
	seed := fs.Uint64("seed", 1, "training seed")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	typ := fs.String("type", "f16", "weight type: f16, q8_0 (half the bytes a token reads) or q4_0 (about a quarter); the threshold is calibrated on the stored weights")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *profPath == "" || *out == "" {
		return usagef("-m, --profile and --out are required")
	}
	quant, err := predictor.ParseType(*typ)
	if err != nil {
		return usagef("--type: %v", err)
	}
	if quant == dtype.F16 {
		quant = dtype.F32 // no re-encoding: Train rounds to F16 by default
	}
	m, err := engine.Load(*model)
	if err != nil {
		return err
	}
	defer m.Close()
	prof, err := predictor.ReadProfile(*profPath)
	if err != nil {
		return err
	}
	c := &m.Config
	if len(prof.Layers) != c.Layers || prof.Layers[0].Dim != c.Dim || prof.Layers[0].FFN != c.FFN {
		return fmt.Errorf("profile %s does not match model %s (layers/dim/ffn)", *profPath, *model)
	}
	var tau []float32
	if *sparsity > 0 {
		tau = predictor.Calibrate(prof, *sparsity)
	} else {
		tau = make([]float32, c.Layers)
	}
	o := predictor.TrainOptions{RecallTarget: *recall, Seed: *seed, Threads: *threads, Quant: quant}
	// Training takes minutes a layer on big models: a bar on a terminal,
	// and a line per layer anywhere.
	bar := newProgress(stderr, "train")
	start := time.Now()
	o.Progress = func(layer, rank, epoch int, _ float64) { bar.update(layer, c.Layers) }
	o.LayerDone = func(r predictor.LayerReport) {
		bar.update(r.Layer+1, c.Layers)
		if bar.tty {
			fmt.Fprint(stderr, "\r\033[K")
		}
		fmt.Fprintf(stderr, "stoke train-predictor: layer %d/%d: rank %d, test recall %.4f, sparsity %.4f (true %.4f), target reached: %v (%s)\n",
			r.Layer+1, c.Layers, r.Rank, r.Recall, r.Sparsity, r.TrueSparsity, r.Reached, time.Since(start).Round(time.Second))
	}
	p, reports, err := predictor.Train(prof, tau, o)
	bar.done()
	if err != nil {
		return err
	}
	meta := map[string]string{"stoke.predictor.model": *model}
	if id, ok := m.File.String(keyNeuronOrderID); ok {
		meta[keyPredOrderID] = id // it predicts for this numbering
	}
	if err := p.WriteGGUF(*out, meta); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, r := range reports {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

func cmdEvalPredictor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval-predictor", stderr)
	model := fs.String("m", "", "GGUF model `file` (required)")
	pf := addPredictorFlags(fs, "predictor GGUF `file` (default: the model's own PowerInfer predictor)")
	text := fs.String("text", "", "held-out text `file` (required)")
	nctx := fs.Int("ctx", 512, "tokens per chunk")
	maxTok := fs.Int("max-tokens", 4096, "evaluate at most this many tokens")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *text == "" {
		return usagef("-m and --text are required")
	}
	b, err := os.ReadFile(*text)
	if err != nil {
		return err
	}
	m, err := engine.Load(*model)
	if err != nil {
		return err
	}
	defer m.Close()
	sp, how, err := sparsityFor(m, pf)
	if err != nil {
		return err
	}
	if sp.Predictor == nil {
		return usagef("no predictor: give --predictor (the model has none of its own)")
	}
	c := &m.Config
	ids := m.Tok.Encode(string(b), true, false)
	if *maxTok > 0 && len(ids) > *maxTok {
		ids = ids[:*maxTok]
	}
	// Record every token (as samples) of the held-out text, then score the
	// predictor on them against the thresholds it was trained for.
	prof := predictor.NewProfile(c.Layers, c.Dim, c.FFN, len(ids), 1)
	s, err := m.NewSession(engine.Options{Threads: *threads, Context: min(*nctx, c.Context), Batch: min(*nctx, 256)})
	if err != nil {
		return err
	}
	defer s.Close()
	var rec engine.FFNRecorder = prof
	if sp.OnResidual {
		rec = engine.OnResidual(prof) // the input a PowerInfer predictor reads
	}
	bar := newProgress(stderr, "eval")
	err = s.Profile(ctx, ids, m.Tok.BOS(), rec, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	type layerOut struct {
		Recall         float64 `json:"recall"`
		Precision      float64 `json:"precision"`
		Sparsity       float64 `json:"sparsity"`
		PredictorShare float64 `json:"predictor_share"`
	}
	res := struct {
		Recall float64    `json:"recall"`
		Layers []layerOut `json:"layers"`
	}{Recall: 1}
	// The form the engine computes (EnableSparse): FC2 rank-major.
	rm, err := sp.Predictor.RankMajor()
	if err != nil {
		return err
	}
	pool := s.Runner().Pool()
	for l, lp := range prof.Layers {
		tau := float32(0)
		if sp.ActThreshold != nil {
			tau = sp.ActThreshold[l]
		}
		pl := &rm.Layers[l]
		mt := predictor.Evaluate(pl, lp.X, lp.A, lp.N, tau)
		x := lp.X[:c.Dim]
		sc := predictor.NewScratch(pl.Rank, c.FFN)
		share := predictorShare(func(reps int) time.Duration {
			t0 := time.Now()
			for range reps {
				pl.Predict(pool, x, sc)
			}
			return time.Since(t0) / time.Duration(reps)
		}, func(reps int) time.Duration { return s.Runner().TimeDenseFFN(l, x, reps) })
		lo := layerOut{mt.Recall, mt.Precision, mt.Sparsity, share}
		res.Layers = append(res.Layers, lo)
		res.Recall = min(res.Recall, mt.Recall)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "%s on %d held-out tokens: min recall %.4f\n", how, prof.Tokens, res.Recall)
	fmt.Fprintf(stdout, "%5s %8s %9s %9s %16s\n", "layer", "recall", "precision", "sparsity", "predictor/FFN")
	for l, lo := range res.Layers {
		fmt.Fprintf(stdout, "%5d %8.4f %9.4f %9.4f %15.1f%%\n", l, lo.Recall, lo.Precision, lo.Sparsity, 100*lo.PredictorShare)
	}
	return nil
}

// predictorShare returns the predictor's time as a share of the dense
// FFN's, each given as a function that times reps runs and returns the
// time of one. The two are timed back to back in shareRounds rounds of
// enough runs for about shareRoundTime each (the first, untimed, round
// warms both up), and the median of the rounds' ratios is returned, so
// that a burst of load from elsewhere on the machine moves one round,
// not the figure.
func predictorShare(pred, dense func(reps int) time.Duration) float64 {
	const (
		shareRounds    = 7
		shareRoundTime = 2 * time.Millisecond
	)
	d := dense(1)
	pred(1)
	reps := max(1, min(1000, int(shareRoundTime/max(d, time.Microsecond))))
	ratios := make([]float64, shareRounds)
	for i := range ratios {
		p := pred(reps)
		ratios[i] = float64(p) / float64(max(dense(reps), 1))
	}
	slices.Sort(ratios)
	return ratios[len(ratios)/2]
}
