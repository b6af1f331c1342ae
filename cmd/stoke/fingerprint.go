package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/engine/fingerprint"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
)

// fpText is the default source of prompts: prompts are random spans of it.
const fpText = `Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine. One day, she saw a big, red ball in the park. She ran to it and kicked it very hard. The ball flew over the fence and into the garden of an old man. Lily was scared, but she knocked on his door and said sorry. The old man smiled and gave her the ball back. He showed her his flowers, and they became good friends.
Tom had a small dog called Max. Max liked to dig holes and chase cats. Every morning Tom and Max walked to the river to watch the boats. One day a boat came too close and Max barked and barked. The sailor laughed and threw him a stick. Max swam out to get it and everybody cheered.
The sun was hot and the sky was blue. A bird sat on a branch and sang a happy song. Below the tree a rabbit was eating a carrot, and a fox was watching from the bushes. The bird saw the fox and sang louder, and the rabbit ran home just in time.`

func cmdFingerprintEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fingerprint-eval", stderr)
	model := fs.String("m", "", "GGUF model `file` the verifier trusts (with -synth: ignored)")
	quant := fs.String("quant", "", "the same model quantized differently (`file`): proofs made with it must fail")
	wrong := fs.String("wrong", "", "another model of the same shape (`file`; default: random F32 weights of the trusted model's shape): proofs made with it must fail")
	precision := fs.String("precision", "", "the same model at another precision (`file`, e.g. F32 for Q8_0): reported")
	useSynth := fs.Bool("synth", false, "use synthetic models: llama Q8_0 (trusted), its Q4_0 twin and another seed")
	synthParams := fs.Float64("synth-params", 3e6, "parameter count of the -synth models")
	synthDir := fs.String("synth-dir", "", "keep the -synth models in `dir` (reused when present; default: a temporary directory)")
	textPath := fs.String("text", "", "text `file` prompts are cut from (default: a built-in paragraph)")
	runs := fs.Int("runs", 1000, "honest runs (false-rejection rate)")
	attacks := fs.Int("attacks", 100, "runs per attack (detection rate)")
	maxOut := fs.Int("max-tokens", 160, "most output tokens of an honest run")
	seed := fs.Uint64("seed", 1, "campaign seed")
	save := fs.String("save", "", "write the honest runs' claims and proofs to `file` (JSON lines)")
	check := fs.String("check", "", "only verify the claims in `file` (written by -save, e.g. by a build with other kernels)")
	kvF16 := fs.Bool("kv-f16", true, "also report proofs made with an F16 KV cache and verified with F32")
	tracePath := fs.String("trace", "", "write every verified group's entry errors to `file` (JSON lines), for calibrating tolerances")
	reps := fs.Int("timing-reps", 7, "repetitions of the 256-token timing (0: skip it)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *runs < 0 || *attacks < 0 || *maxOut < 1 {
		return usagef("-runs and -attacks must be ≥ 0 and -max-tokens ≥ 1")
	}
	if !*useSynth && *model == "" {
		return usagef("-m (or -synth) is required")
	}
	tmp, err := os.MkdirTemp("", "stoke-fingerprint-eval")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if *useSynth {
		dir := *synthDir
		if dir == "" {
			dir = tmp
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		sc := synth.Config{Arch: "llama", Params: int64(*synthParams), Type: dtype.Q8_0, Seed: 3}
		*model, *quant, *wrong = filepath.Join(dir, "q8_0.gguf"), filepath.Join(dir, "q4_0.gguf"), filepath.Join(dir, "other.gguf")
		q4, other := sc, sc
		q4.Type, other.Seed = dtype.Q4_0, 4
		for path, c := range map[string]synth.Config{*model: sc, *quant: q4, *wrong: other} {
			if err := writeSynthOnce(path, c); err != nil {
				return err
			}
		}
	}
	text := fpText
	if *textPath != "" {
		b, err := os.ReadFile(*textPath)
		if err != nil {
			return err
		}
		text = string(b)
	}
	ev, err := newFPEval(*model, text, *seed)
	if err != nil {
		return err
	}
	defer ev.close()
	if *wrong == "" && *check == "" && *attacks > 0 {
		// random weights of the same shape: a different model
		c := ev.m.Config
		*wrong = filepath.Join(tmp, "random.gguf")
		err := synth.Write(*wrong, synth.Config{Arch: "llama", Dim: c.Dim, Layers: c.Layers, Heads: c.Heads, KVHeads: c.KVHeads, FFN: c.FFN, Vocab: c.Vocab, Type: dtype.F32, Seed: 99})
		if err != nil {
			return fmt.Errorf("making a random model of the same shape: %w", err)
		}
	}
	if *tracePath != "" {
		f, err := os.Create(*tracePath)
		if err != nil {
			return err
		}
		defer f.Close()
		ev.trace = bufio.NewWriter(f)
		defer ev.trace.Flush()
	}

	if *check != "" {
		out, err := ev.checkFile(ctx, *check)
		if err != nil {
			return err
		}
		return ev.print(stdout, out, *asJSON)
	}

	out := &fpOutcome{Model: *model, Params: engine.FingerprintParams, Tolerances: engine.FingerprintTolerances}
	if *reps > 0 {
		if err := ev.timing(ctx, *reps, out); err != nil {
			return err
		}
	}
	var saveW *bufio.Writer
	if *save != "" {
		f, err := os.Create(*save)
		if err != nil {
			return err
		}
		defer f.Close()
		saveW = bufio.NewWriter(f)
		defer saveW.Flush()
	}
	if err := ev.honest(ctx, *runs, *maxOut, saveW, out); err != nil {
		return err
	}
	if *kvF16 {
		if err := ev.kvVariant(ctx, min(*attacks, 100), *maxOut, out); err != nil {
			return err
		}
	}
	if err := ev.attacks(ctx, *attacks, *maxOut, map[string]string{"wrong quantization": *quant, "wrong model": *wrong, "other precision": *precision}, out); err != nil {
		return err
	}
	if saveW != nil {
		if err := saveW.Flush(); err != nil {
			return err
		}
	}
	return ev.print(stdout, out, *asJSON)
}

// writeSynthOnce writes a synthetic model unless path exists.
func writeSynthOnce(path string, c synth.Config) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return synth.Write(path, c)
}

// fpOutcome is what fingerprint-eval measures.
type fpOutcome struct {
	Model      string
	Params     fingerprint.Params
	Tolerances fingerprint.Tolerances

	// proof size for a 32-token prompt and 256 generated tokens
	ProofBytes256    int     `json:",omitempty"`
	BytesPerToken    float64 `json:",omitempty"` // over prompt + output
	BytesPerOutToken float64 `json:",omitempty"` // over output only
	// median CPU times on one thread
	GenerateTime  time.Duration `json:",omitempty"` // 256 tokens, fingerprinted
	GeneratePlain time.Duration `json:",omitempty"` // 256 tokens, no fingerprint
	VerifyTime    time.Duration `json:",omitempty"`
	// median wall times of the same runs
	GenerateWall, VerifyWall time.Duration `json:",omitempty"`
	VerifyOverGen            float64       `json:",omitempty"`
	FingerprintOvh           float64       `json:",omitempty"` // GenerateTime/GeneratePlain − 1

	Honest  fpStats
	KVF16   *fpStats            `json:",omitempty"` // F16 KV cache prover, F32 verifier
	Attacks map[string]*fpStats `json:",omitempty"`
}

// fpStats aggregates verification reports of one kind of run.
type fpStats struct {
	Runs, Accepted, Rejected int
	Tokens                   int // prompt + output tokens verified
	ProofBytes               int
	Entries, Misses          int
	MaxErr                   int // largest error of an entry that is not a miss
	ErrHist                  [len(fingerprint.ErrBuckets) + 1]int
	// per-run worst group: median error and miss fraction, as quantiles
	// over runs (min, 1%, 50%, 99%, max)
	WorstMedian, WorstMiss [5]float64
	Reasons                []string `json:",omitempty"` // first few rejection reasons

	medians, misses []float64
}

func (s *fpStats) add(r fingerprint.Report, tokens, bytes int) {
	s.Runs++
	s.Tokens += tokens
	s.ProofBytes += bytes
	if r.OK {
		s.Accepted++
	} else {
		s.Rejected++
		if len(s.Reasons) < 3 {
			s.Reasons = append(s.Reasons, r.Reason)
		}
	}
	s.Entries += r.Entries
	s.Misses += r.Misses
	s.MaxErr = max(s.MaxErr, r.MaxErr)
	for i, n := range r.ErrHist {
		s.ErrHist[i] += n
	}
	if r.Groups > 0 { // reports that failed on the header have no groups
		s.medians = append(s.medians, r.WorstMedian)
		s.misses = append(s.misses, r.WorstMiss)
		s.WorstMedian, s.WorstMiss = quantiles(s.medians), quantiles(s.misses)
	}
}

// quantiles returns the min, 1%, 50%, 99% and max of v.
func quantiles(v []float64) (q [5]float64) {
	if len(v) == 0 {
		return q
	}
	w := slices.Clone(v)
	slices.Sort(w)
	for i, f := range []float64{0, 0.01, 0.5, 0.99, 1} {
		q[i] = w[int(f*float64(len(w)-1)+0.5)]
	}
	return q
}

type fpConfig struct{ threads, batch int }

type fpEval struct {
	path   string
	m      *engine.Model
	corpus []int32
	rng    *rand.Rand
	// sessions and schedulers by configuration, reused across runs
	sessions map[fpConfig]*engine.Session
	scheds   map[fpConfig]*engine.Scheduler
	trace    *bufio.Writer // -trace
	traceRun int
}

const fpContext = 1024

func newFPEval(path, text string, seed uint64) (*fpEval, error) {
	m, err := engine.Load(path)
	if err != nil {
		return nil, err
	}
	corpus := m.Tok.Encode(text, false, false)
	if len(corpus) < 16 {
		m.Close()
		return nil, fmt.Errorf("the prompt text has only %d tokens", len(corpus))
	}
	return &fpEval{
		path: path, m: m, corpus: corpus, rng: rand.New(rand.NewPCG(seed, 0x5eed)),
		sessions: map[fpConfig]*engine.Session{}, scheds: map[fpConfig]*engine.Scheduler{},
	}, nil
}

func (ev *fpEval) close() {
	for _, s := range ev.sessions {
		s.Close()
	}
	for _, s := range ev.scheds {
		s.Close()
	}
	ev.m.Close()
}

func (ev *fpEval) session(c fpConfig) (*engine.Session, error) {
	if s, ok := ev.sessions[c]; ok {
		s.Reset()
		return s, nil
	}
	s, err := ev.m.NewSession(engine.Options{Threads: c.threads, Batch: c.batch, Context: fpContext})
	if err != nil {
		return nil, err
	}
	ev.sessions[c] = s
	return s, nil
}

func (ev *fpEval) scheduler(c fpConfig) (*engine.Scheduler, error) {
	if s, ok := ev.scheds[c]; ok {
		return s, nil
	}
	s, err := engine.NewScheduler(ev.m, engine.SchedulerOptions{Parallel: 6, Context: fpContext, Threads: c.threads, Batch: c.batch, Queue: 64})
	if err != nil {
		return nil, err
	}
	ev.scheds[c] = s
	return s, nil
}

// prompt cuts a prompt of a random length (short, medium or long) from
// the corpus, after BOS when the model adds one.
func (ev *fpEval) prompt() []int32 {
	var n int
	switch r := ev.rng.Float64(); {
	case r < 0.25:
		n = 1 + ev.rng.IntN(8)
	case r < 0.75:
		n = 9 + ev.rng.IntN(56)
	default:
		n = 65 + ev.rng.IntN(192)
	}
	var p []int32
	if ev.m.Tok.AddBOS() && ev.m.Tok.BOS() >= 0 {
		p = append(p, ev.m.Tok.BOS())
	}
	at := ev.rng.IntN(len(ev.corpus))
	for len(p) < n {
		p = append(p, ev.corpus[at%len(ev.corpus)])
		at++
	}
	return p
}

// params draws generation parameters: greedy or sampled with a seed.
func (ev *fpEval) params(maxOut int) engine.GenerateParams {
	p := engine.GenerateParams{MaxTokens: 1 + ev.rng.IntN(maxOut), Fingerprint: true}
	if ev.rng.IntN(4) == 0 {
		p.Sampler = engine.SamplerParams{TopP: 1, RepeatPenalty: 1}
	} else {
		p.Sampler = engine.DefaultSampler()
		p.Sampler.Seed = ev.rng.Uint64()
	}
	p.IgnoreEOS = ev.rng.IntN(2) == 0
	return p
}

var (
	fpThreads = []int{1, 2, 3, 4}
	fpBatches = []int{1, 7, 16, 64, 256}
)

func (ev *fpEval) config() fpConfig {
	return fpConfig{fpThreads[ev.rng.IntN(len(fpThreads))], fpBatches[ev.rng.IntN(len(fpBatches))]}
}

// claim is one generation as a node would report it.
type claim struct {
	Prompt []int32 `json:"prompt"`
	Output []int32 `json:"output"`
	Proof  []byte  `json:"proof"`
}

// verify checks a claim of the given kind on a randomly configured
// verifier session.
func (ev *fpEval) verify(kind string, c claim) (fingerprint.Report, error) {
	s, err := ev.session(ev.config())
	if err != nil {
		return fingerprint.Report{}, err
	}
	if ev.trace == nil {
		return s.VerifyFingerprint(c.Prompt, c.Output, c.Proof)
	}
	// VerifyFingerprint, step by step, with the checker's trace on
	pr, err := fingerprint.Decode(c.Proof)
	if err != nil {
		return fingerprint.Report{}, err
	}
	all := append(slices.Clone(c.Prompt), c.Output...)
	chk := fingerprint.NewChecker(pr, engine.FingerprintParams, engine.FingerprintTolerances, ev.m.Config.Dim, len(c.Prompt), len(all))
	ev.traceRun++
	run := ev.traceRun
	chk.Trace(func(g int, errs, token []int) {
		b, _ := json.Marshal(map[string]any{"kind": kind, "run": run, "group": g, "errs": errs, "token": token})
		ev.trace.Write(append(b, '\n'))
	})
	if chk.Done() {
		return chk.Report(), nil
	}
	r := s.Runner()
	for i := 0; i < len(all); i += r.Batch() {
		seq := []engine.Seq{{KV: s.KVCache, Tokens: all[i:min(i+r.Batch(), len(all))], Hidden: chk}}
		if err := r.Forward(seq); err != nil {
			return fingerprint.Report{}, err
		}
	}
	return chk.Report(), nil
}

// generate runs one honest generation on a session or, with concurrent
// other requests, on a scheduler; the claims of every fingerprinted
// request are returned.
func (ev *fpEval) generate(ctx context.Context, m *engine.Model, maxOut int, kv dtype.Type) ([]claim, error) {
	c := ev.config()
	if m != ev.m || kv == dtype.F16 || ev.rng.IntN(2) == 0 {
		s, err := m.NewSession(engine.Options{Threads: c.threads, Batch: c.batch, Context: fpContext, KVType: kv})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		p := ev.prompt()
		res, err := s.Generate(ctx, p, ev.params(maxOut), nil)
		if err != nil {
			return nil, err
		}
		return []claim{{p, res.Tokens, res.Fingerprint}}, nil
	}
	sc, err := ev.scheduler(fpConfig{c.threads, max(c.batch, 16)})
	if err != nil {
		return nil, err
	}
	// 2–6 requests at once, one in four without a fingerprint
	n := 2 + ev.rng.IntN(5)
	prompts := make([][]int32, n)
	params := make([]engine.GenerateParams, n)
	for i := range n {
		prompts[i], params[i] = ev.prompt(), ev.params(maxOut)
		params[i].Fingerprint = i == 0 || ev.rng.IntN(4) != 0
	}
	results := make([]*engine.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = sc.Generate(ctx, prompts[i], params[i], nil) })
	}
	wg.Wait()
	var out []claim
	for i := range n {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if params[i].Fingerprint {
			out = append(out, claim{prompts[i], results[i].Tokens, results[i].Fingerprint})
		}
	}
	return out, nil
}

// honest measures the false-rejection rate.
func (ev *fpEval) honest(ctx context.Context, runs, maxOut int, save *bufio.Writer, out *fpOutcome) error {
	for out.Honest.Runs < runs {
		cs, err := ev.generate(ctx, ev.m, maxOut, dtype.F32)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if save != nil {
				b, _ := json.Marshal(c)
				save.Write(append(b, '\n'))
			}
			r, err := ev.verify("honest", c)
			if err != nil {
				return err
			}
			out.Honest.add(r, len(c.Prompt)+len(c.Output), len(c.Proof))
		}
	}
	return nil
}

// kvVariant: the prover runs an F16 KV cache (a setting, not a cheat in
// itself); reported separately.
func (ev *fpEval) kvVariant(ctx context.Context, runs, maxOut int, out *fpOutcome) error {
	out.KVF16 = &fpStats{}
	for range runs {
		cs, err := ev.generate(ctx, ev.m, maxOut, dtype.F16)
		if err != nil {
			return err
		}
		r, err := ev.verify("f16 KV", cs[0])
		if err != nil {
			return err
		}
		out.KVF16.add(r, len(cs[0].Prompt)+len(cs[0].Output), len(cs[0].Proof))
	}
	return nil
}

// attacks measures detection: proofs made by another model or another
// quantization, and honest proofs with an altered prompt or output token.
func (ev *fpEval) attacks(ctx context.Context, runs, maxOut int, models map[string]string, out *fpOutcome) error {
	out.Attacks = map[string]*fpStats{}
	stat := func(name string) *fpStats {
		if out.Attacks[name] == nil {
			out.Attacks[name] = &fpStats{}
		}
		return out.Attacks[name]
	}
	for name, path := range models {
		if path == "" {
			continue
		}
		m, err := engine.Load(path)
		if err != nil {
			return err
		}
		if m.Config.Vocab != ev.m.Config.Vocab {
			m.Close()
			return fmt.Errorf("%s has a vocabulary of %d, the model %d", path, m.Config.Vocab, ev.m.Config.Vocab)
		}
		for range runs {
			cs, err := ev.generate(ctx, m, maxOut, dtype.F32)
			if err != nil {
				m.Close()
				return err
			}
			r, err := ev.verify(name, cs[0])
			if err != nil {
				m.Close()
				return err
			}
			stat(name).add(r, len(cs[0].Prompt)+len(cs[0].Output), len(cs[0].Proof))
		}
		m.Close()
	}
	vocab := int32(ev.m.Config.Vocab)
	other := func(t int32) int32 { return (t + 1 + ev.rng.Int32N(vocab-1)) % vocab }
	for range runs {
		cs, err := ev.generate(ctx, ev.m, maxOut, dtype.F32)
		if err != nil {
			return err
		}
		c := cs[0]
		n := len(c.Prompt) + len(c.Output)
		try := func(name string, alt claim) error {
			r, err := ev.verify(name, alt)
			if err != nil {
				return err
			}
			stat(name).add(r, n, len(c.Proof))
			return nil
		}
		p := slices.Clone(c.Prompt)
		i := ev.rng.IntN(len(p))
		p[i] = other(p[i])
		if err := try("altered prompt token", claim{p, c.Output, c.Proof}); err != nil {
			return err
		}
		if len(c.Output) == 0 {
			continue
		}
		for _, at := range []struct {
			name string
			pos  int
		}{
			{"altered output token: first", 0},
			{"altered output token: random", ev.rng.IntN(len(c.Output))},
			{"altered output token: last", len(c.Output) - 1},
		} {
			o := slices.Clone(c.Output)
			o[at.pos] = other(o[at.pos])
			if err := try(at.name, claim{c.Prompt, o, c.Proof}); err != nil {
				return err
			}
		}
	}
	return nil
}

// timing measures proof size, generation and verification time for a
// 32-token prompt and 256 generated tokens: one thread, so that the
// process CPU time (getrusage) measures the work even on a busy machine;
// medians of reps interleaved repetitions.
func (ev *fpEval) timing(ctx context.Context, reps int, out *fpOutcome) error {
	const promptLen, n = 32, 256
	prompt := slices.Clone(ev.corpus[:min(promptLen, len(ev.corpus))])
	s, err := ev.m.NewSession(engine.Options{Context: fpContext, Threads: 1})
	if err != nil {
		return err
	}
	defer s.Close()
	// the verifier prefills in one batch of up to 512 tokens
	vs, err := ev.m.NewSession(engine.Options{Context: fpContext, Threads: 1, Batch: 512})
	if err != nil {
		return err
	}
	defer vs.Close()
	p := engine.GenerateParams{MaxTokens: n, IgnoreEOS: true, Sampler: engine.SamplerParams{TopP: 1, RepeatPenalty: 1}}
	var gen, plain, ver, genW, verW []time.Duration
	var res *engine.Result
	for range reps {
		s.Reset()
		p.Fingerprint = false
		c0 := cpuTime()
		if _, err := s.Generate(ctx, prompt, p, nil); err != nil {
			return err
		}
		plain = append(plain, cpuTime()-c0)
		s.Reset()
		p.Fingerprint = true
		c0, t0 := cpuTime(), time.Now()
		if res, err = s.Generate(ctx, prompt, p, nil); err != nil {
			return err
		}
		gen, genW = append(gen, cpuTime()-c0), append(genW, time.Since(t0))
		c0, t0 = cpuTime(), time.Now()
		r, err := vs.VerifyFingerprint(prompt, res.Tokens, res.Fingerprint)
		if err != nil {
			return err
		}
		ver, verW = append(ver, cpuTime()-c0), append(verW, time.Since(t0))
		if !r.OK {
			return fmt.Errorf("the timing run's own proof was rejected: %s", r.Reason)
		}
	}
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	out.GenerateTime, out.GeneratePlain, out.VerifyTime = med(gen), med(plain), med(ver)
	out.GenerateWall, out.VerifyWall = med(genW), med(verW)
	out.VerifyOverGen = out.VerifyTime.Seconds() / out.GenerateTime.Seconds()
	out.FingerprintOvh = out.GenerateTime.Seconds()/out.GeneratePlain.Seconds() - 1
	out.ProofBytes256 = len(res.Fingerprint)
	out.BytesPerToken = float64(len(res.Fingerprint)) / float64(len(prompt)+len(res.Tokens))
	out.BytesPerOutToken = float64(len(res.Fingerprint)) / float64(len(res.Tokens))
	return nil
}

// checkFile verifies saved claims with this build's kernels.
func (ev *fpEval) checkFile(_ context.Context, path string) (*fpOutcome, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := &fpOutcome{Model: ev.path, Params: engine.FingerprintParams, Tolerances: engine.FingerprintTolerances}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var c claim
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r, err := ev.verify("honest (checked)", c)
		if err != nil {
			return nil, err
		}
		out.Honest.add(r, len(c.Prompt)+len(c.Output), len(c.Proof))
	}
	return out, sc.Err()
}

func (ev *fpEval) print(w io.Writer, out *fpOutcome, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(w, "model %s; fingerprint %v; tolerances %+v\n", out.Model, out.Params, out.Tolerances)
	if out.ProofBytes256 > 0 {
		fmt.Fprintf(w, "proof for 32 + 256 tokens: %d bytes (%.2f per token, %.2f per output token)\n", out.ProofBytes256, out.BytesPerToken, out.BytesPerOutToken)
		fmt.Fprintf(w, "256 tokens, 1 thread, CPU time: generate %v (%v without fingerprint, overhead %.1f%%), verify %v: verify/generate = %.3f (wall: %v, %v)\n",
			out.GenerateTime.Round(time.Microsecond), out.GeneratePlain.Round(time.Microsecond), 100*out.FingerprintOvh, out.VerifyTime.Round(time.Microsecond), out.VerifyOverGen,
			out.GenerateWall.Round(time.Microsecond), out.VerifyWall.Round(time.Microsecond))
	}
	row := func(name string, s *fpStats, want string) {
		rate := 0.0
		if s.Runs > 0 {
			rate = float64(s.Rejected) / float64(s.Runs)
		}
		fmt.Fprintf(w, "%-30s runs %5d  rejected %5d (%6.2f%%, want %s)  misses %d/%d  bytes/token %.2f\n",
			name, s.Runs, s.Rejected, 100*rate, want, s.Misses, s.Entries, float64(s.ProofBytes)/float64(max(s.Tokens, 1)))
		fmt.Fprintf(w, "%-30s worst-group median error (min/1%%/50%%/99%%/max) %v, miss fraction %v\n", "", s.WorstMedian, s.WorstMiss)
		fmt.Fprintf(w, "%-30s errors (units ≤ %v, more): %v\n", "", fingerprint.ErrBuckets, s.ErrHist)
	}
	row("honest", &out.Honest, "0%")
	for _, r := range out.Honest.Reasons {
		fmt.Fprintf(w, "  false rejection: %s\n", r)
	}
	if out.KVF16 != nil {
		row("f16 KV prover (setting)", out.KVF16, "-")
	}
	names := make([]string, 0, len(out.Attacks))
	for n := range out.Attacks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		row(n, out.Attacks[n], "100%")
	}
	return nil
}
