package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
)

// demoModel is the synthetic model `stoke run` uses when no -m is given, so
// the first command in the README works on a machine with no model files.
var demoModel = synth.Config{Arch: "llama", Params: 60e6, Type: dtype.Q8_0, Seed: 1}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	model := fs.String("m", "", "GGUF model `file` (default: a synthetic demo model, generated on first use)")
	lf := addLoadFlags(fs)
	prompt := fs.String("p", "Once upon a time", "prompt `text`")
	promptFile := fs.String("f", "", "read the prompt from `file`")
	n := fs.Int("n", 128, "tokens to generate (≤ 0: until EOS or the context is full)")
	sp := engine.DefaultSampler()
	fs.Func("temp", "sampling temperature; 0 is greedy (default 0.8)", floatFlag(&sp.Temperature))
	fs.IntVar(&sp.TopK, "top-k", sp.TopK, "top-k sampling (0 disables)")
	fs.Func("top-p", "top-p (nucleus) sampling, 1 disables (default 0.95)", floatFlag(&sp.TopP))
	fs.Func("min-p", "min-p sampling, 0 disables (default 0.05)", floatFlag(&sp.MinP))
	fs.Func("repeat-penalty", "penalise recently seen tokens, 1 disables (default 1)", floatFlag(&sp.RepeatPenalty))
	fs.IntVar(&sp.RepeatLastN, "repeat-last-n", sp.RepeatLastN, "tokens the repeat penalty looks back over")
	seed := fs.Int64("seed", -1, "RNG seed; the same seed gives the same text (-1: random)")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	ctxLen := fs.Int("ctx", 0, "context length in tokens (0: the model's, at most 4096)")
	kvType := fs.String("kv-type", "f32", "KV cache type: f32 or f16")
	var stops stringList
	fs.Var(&stops, "stop", "stop `string` (repeatable)")
	noBOS := fs.Bool("no-special", false, "do not add BOS/EOS or parse special tokens in the prompt")
	asJSON := fs.Bool("json", false, "print one JSON object instead of streaming text")
	sparse := fs.Bool("sparse", false, "compute only the FFN neurons predicted active")
	pf := addPredictorFlags(fs, "predictor GGUF `file` for --sparse (default: the model's own, else oracle mode)")
	off := addOffloadFlags(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := lf.check(); err != nil {
		return err
	}
	if *promptFile != "" {
		b, err := os.ReadFile(*promptFile)
		if err != nil {
			return err
		}
		*prompt = string(b)
	}
	if *seed >= 0 {
		sp.Seed = uint64(*seed)
	} else {
		sp.Seed = randomSeed()
	}
	if err := sp.Validate(); err != nil {
		return usageError{err.Error()}
	}
	kvt, err := dtype.Parse(*kvType)
	if err != nil || (kvt != dtype.F32 && kvt != dtype.F16) {
		return usagef("--kv-type %q: want f32 or f16", *kvType)
	}

	path := *model
	if path == "" {
		path, err = ensureDemoModel(stderr)
		if err != nil {
			return err
		}
	}
	defer off.release()
	lo := lf.options(path, off.usesDevice(), stderr)
	lo.KeepFFNRows = *sparse // the sparse FFN reads rows
	m, err := loadModel(path, lo, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	s, err := m.NewSession(engine.Options{Threads: *threads, Context: *ctxLen, KVType: kvt})
	if err != nil {
		return err
	}
	defer s.Close()
	off.devicePredictor = *sparse && !pf.given()
	setup, closeDev, err := off.setup(m, s.Context(), 1, planBatch(engine.DefaultBatch, 1), kvt, stderr)
	if err != nil {
		return err
	}
	defer closeDev()
	if setup != nil {
		if err := setup(s.Runner()); err != nil {
			return err
		}
		defer s.Runner().DisableOffload()
	}
	if *sparse {
		sp, how, err := sparsityFor(m, pf)
		if err != nil {
			return err
		}
		if err := s.Runner().EnableSparse(sp); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "stoke: sparse FFN with %s\n", how)
	}
	slog.Debug("model loaded", "path", path, "arch", m.Config.Family.Name, "params", m.ParamCount())

	ids := m.Tok.Encode(*prompt, !*noBOS, !*noBOS)
	if len(ids) == 0 {
		return usagef("the prompt encodes to no tokens; give a prompt")
	}
	gp := engine.GenerateParams{MaxTokens: *n, Stop: stops, Sampler: sp}
	var emit func(engine.Token) error
	if !*asJSON {
		io.WriteString(stdout, *prompt)
		emit = func(t engine.Token) error {
			_, err := io.WriteString(stdout, t.Text)
			return err
		}
	}
	res, err := s.Generate(ctx, ids, gp, emit)
	if err != nil && res == nil {
		return err
	}
	if *asJSON {
		out := struct {
			Model         string  `json:"model"`
			PromptTokens  []int32 `json:"prompt_tokens"`
			Tokens        []int32 `json:"tokens"`
			Text          string  `json:"text"`
			Finish        string  `json:"finish_reason"`
			PromptTPS     float64 `json:"prompt_tokens_per_s"`
			TPS           float64 `json:"tokens_per_s"`
			Threads       int     `json:"threads"`
			ContextTokens int     `json:"context"`
		}{path, ids, res.Tokens, res.Text, res.Finish, res.PromptTokensPerSecond(), res.TokensPerSecond(), *threads, s.Context()}
		if out.Tokens == nil {
			out.Tokens = []int32{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if e := enc.Encode(out); e != nil {
			return e
		}
		return err
	}
	fmt.Fprintf(stdout, "\n\n%d prompt tokens: %.1f tok/s · %d generated: %.1f tok/s (%s)\n",
		res.PromptTokens, res.PromptTokensPerSecond(), len(res.Tokens), res.TokensPerSecond(), res.Finish)
	if a, p := s.Runner().SparseStats(); p > 0 {
		fmt.Fprintf(stdout, "sparse FFN: computed %.1f%% of neurons\n", 100*float64(a)/float64(p))
	}
	if st := s.Runner().OffloadStats(); st.Active > 0 {
		fmt.Fprintf(stdout, "offload: %.1f%% of computed neurons on the device; device half %s, host half %s\n",
			100*st.HitRate(), st.DeviceTime.Round(time.Millisecond), st.HostTime.Round(time.Millisecond))
	}
	if n := s.Runner().DevicePredictions(); n > 0 {
		fmt.Fprintf(stdout, "predictor: %d layer predictions on the device\n", n)
	}
	return err
}

func floatFlag(p *float32) func(string) error {
	return func(s string) error {
		var v float64
		if _, err := fmt.Sscan(s, &v); err != nil {
			return fmt.Errorf("not a number: %q", s)
		}
		*p = float32(v)
		return nil
	}
}

// ensureDemoModel returns the path of the synthetic demo model, writing it
// into the user cache directory the first time.
func ensureDemoModel(stderr io.Writer) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "stoke")
	c := demoModel
	path := filepath.Join(dir, fmt.Sprintf("synth-%s-%dM-%s-seed%d.gguf", c.Arch, c.Params/1e6, strings.ToLower(c.Type.String()), c.Seed))
	fmt.Fprintf(stderr, "stoke: no -m given: running a synthetic %s model with random weights (%s); its output is gibberish by design.\n", c.Type, path)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	fmt.Fprintf(stderr, "stoke: generating it once (%d M parameters)...\n", c.Params/1e6)
	if err := synth.Write(path, c); err != nil {
		return "", fmt.Errorf("writing the demo model: %w", err)
	}
	return path, nil
}
