package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/offload"
)

var (
	synthMu    sync.Mutex
	synthPaths = map[string]string{}
)

// synthModel writes (once per test binary) a small synthetic model.
func synthModel(t testing.TB, c synth.Config) string {
	t.Helper()
	synthMu.Lock()
	defer synthMu.Unlock()
	key := fmt.Sprintf("%+v", c)
	if p, ok := synthPaths[key]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "stoke-engine-test")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "m.gguf")
	if err := synth.Write(p, c); err != nil {
		t.Fatal(err)
	}
	synthPaths[key] = p
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, p := range synthPaths {
		os.RemoveAll(filepath.Dir(p))
	}
	os.Exit(code)
}

// TestBatchedPrefillEqualsDecode: a prompt evaluated in one batch, in odd
// chunks and one token at a time must give the same logits (to float
// rounding), for every weight type and both KV cache types.
func TestBatchedPrefillEqualsDecode(t *testing.T) {
	for _, dt := range []dtype.Type{dtype.F32, dtype.F16, dtype.BF16, dtype.Q4_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1, dtype.Q8_0, dtype.Q4_K, dtype.Q5_K, dtype.Q6_K} {
		t.Run(dt.String(), func(t *testing.T) {
			m := load(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dt, Seed: 3}))
			prompt := m.Tok.Encode("The quick brown fox jumps over the lazy dog, then naps.", true, true)
			for _, kv := range []dtype.Type{dtype.F32, dtype.F16} {
				one := session(t, m, engine.Options{KVType: kv, Batch: 64})
				want, err := one.EvalAll(prompt)
				if err != nil {
					t.Fatal(err)
				}
				want = append([]float32(nil), want...)
				odd := session(t, m, engine.Options{KVType: kv, Batch: 5})
				got, err := odd.EvalAll(prompt)
				if err != nil {
					t.Fatal(err)
				}
				if d := maxAbsDiff(got, want); d > 1e-4 {
					t.Errorf("kv %s: chunked prefill differs by %.2e", kv, d)
				}
				seq := session(t, m, engine.Options{KVType: kv})
				v := m.Config.Vocab
				// Mat-vec and mat-mat sum in different orders; with an F16
				// cache a 1-ulp difference in a key can round to a
				// different half (a relative step of 2⁻¹¹), so allow more.
				tol := 1e-4
				if kv == dtype.F16 {
					tol = 2e-3
				}
				for i, tok := range prompt {
					l, err := seq.Eval([]int32{tok})
					if err != nil {
						t.Fatal(err)
					}
					if d := maxAbsDiff(l, want[i*v:(i+1)*v]); d > tol {
						t.Fatalf("kv %s: token %d decoded alone differs from prefill by %.2e", kv, i, d)
					}
				}
			}
		})
	}
}

// TestLoadNoMmap: a model read into memory (LoadOptions.NoMmap) gives the
// mapped model's logits bit for bit.
func TestLoadNoMmap(t *testing.T) {
	path := synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q4_0, Seed: 3})
	var logits [2][]float32
	for i, no := range []bool{false, true} {
		m, err := engine.LoadWith(path, engine.LoadOptions{NoMmap: no})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		s := session(t, m, engine.Options{Threads: 1})
		out, err := s.Eval(m.Tok.Encode("Once upon a time", true, true))
		if err != nil {
			t.Fatal(err)
		}
		logits[i] = slices.Clone(out)
	}
	for i := range logits[0] {
		if math.Float32bits(logits[0][i]) != math.Float32bits(logits[1][i]) {
			t.Fatalf("logit %d: mapped %v, in memory %v", i, logits[0][i], logits[1][i])
		}
	}
	if _, err := engine.LoadWith(filepath.Join(t.TempDir(), "missing.gguf"), engine.LoadOptions{NoMmap: true}); err == nil {
		t.Error("LoadWith of a missing file succeeded")
	}
}

// TestLoadPackQ4: a model whose Q4_0, Q8_0 or K-quant matrices are packed at load
// (LoadOptions.PackQ4) gives the row layout's logits to float rounding,
// on one prompt, fed whole and token by token; it refuses a sparse FFN
// and offload, which read rows; and PackQ4 leaves a mapped file alone.
func TestLoadPackQ4(t *testing.T) {
	for _, c := range []synth.Config{
		{Arch: "llama", Params: 3e6, Type: dtype.Q4_0, Seed: 3},
		{Arch: "llama", Params: 3e6, Type: dtype.Q4_0, Seed: 4, Tied: true},
		{Arch: "llama", Params: 3e6, Type: dtype.Q8_0, Seed: 3},
		{Arch: "llama", Params: 3e6, Type: dtype.Q4_K, Seed: 3},
		{Arch: "llama", Params: 3e6, Type: dtype.Q6_K, Seed: 3},
		{Arch: "llama", Params: 3e6, Type: dtype.Q4_K, Mix: synth.MixQ4KM, Seed: 3},
		{Arch: "llama", Params: 3e6, Type: dtype.Q5_K, Mix: synth.MixQ5KM, Seed: 3},
	} {
		name := c.Type.String()
		if c.Mix != "" {
			name = c.Mix
		}
		t.Run(fmt.Sprintf("%s/tied=%v", name, c.Tied), func(t *testing.T) {
			path := synthModel(t, c)
			rows := load(t, path)
			packed := loadPacked(t, path)
			want := 7 * len(rows.W.Layers) // Q, K, V, O, gate, up, down
			if !c.Tied {
				want++ // the output head
			}
			if got := packed.PackedMatrices(); got != want {
				t.Errorf("packed %d matrices, want %d", got, want)
			}
			if packed.W.Output.Packed == c.Tied {
				t.Errorf("output head packed = %v with tied = %v", packed.W.Output.Packed, c.Tied)
			}
			prompt := rows.Tok.Encode("Once upon a time, in a packed layout,", true, true)
			a, err := session(t, rows, engine.Options{}).EvalAll(prompt)
			if err != nil {
				t.Fatal(err)
			}
			b, err := session(t, packed, engine.Options{}).EvalAll(prompt)
			if err != nil {
				t.Fatal(err)
			}
			// The layouts sum each product in another order, a few ulps
			// apart, but an activation that lands a few ulps across a
			// rounding boundary of its Q8_0 quantization moves a whole
			// quantization step (up to 1/127 of its block's largest
			// value), and later layers carry that on: the synthetic
			// models differ by 2·10⁻⁷ until one does, then by up to
			// 3·10⁻² of logits near 1. A wrong layout gives noise as
			// large as the logits.
			if d, scale := maxAbsDiff(a, b), maxAbs(a); d > 0.05*scale {
				t.Errorf("packed logits differ from the row layout's by %.2e (largest logit %.2e)", d, scale)
			}
			seq := session(t, packed, engine.Options{})
			v := packed.Config.Vocab
			for i, tok := range prompt {
				l, err := seq.Eval([]int32{tok})
				if err != nil {
					t.Fatal(err)
				}
				if d := maxAbsDiff(l, b[i*v:(i+1)*v]); d != 0 {
					t.Fatalf("token %d decoded alone differs from the packed prefill by %.2e", i, d)
				}
			}
			r := packed.NewRunner(1, 1, nil)
			defer r.Close()
			if err := r.EnableSparse(engine.Sparsity{}); err == nil {
				t.Error("EnableSparse of a packed model succeeded")
			}
			if err := r.EnableOffload(cpu.NewBackend(r.Pool(), 0), &offload.Plan{}); err == nil {
				t.Error("EnableOffload of a packed model succeeded")
			}
		})
	}
	defer engine.SetPackAlways(true)()
	// KeepFFNRows: attention and the output head packed, the FFN in rows,
	// and a sparse FFN runs with the dense one's logits at zero sparsity
	// (PowerInfer's layout, whose ffn_down_t both paths read, as in
	// TestSparseAtZeroSparsityEqualsDense)
	path := synthModel(t, synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Params: 3e6, Type: dtype.Q4_0, Seed: 5})
	keep, err := engine.LoadWith(path, engine.LoadOptions{NoMmap: true, PackQ4: true, KeepFFNRows: true})
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	if got, want := keep.PackedMatrices(), 4*len(keep.W.Layers)+1; got != want {
		t.Errorf("KeepFFNRows packed %d matrices, want %d", got, want)
	}
	if l := keep.W.Layers[0]; l.Gate.Packed || l.Up.Packed || l.DownT.Packed || !l.Q.Packed {
		t.Error("KeepFFNRows packed an FFN matrix or left attention in rows")
	}
	prompt := keep.Tok.Encode("Sparse and dense agree", true, true)
	dense, err := session(t, keep, engine.Options{}).EvalAll(prompt)
	if err != nil {
		t.Fatal(err)
	}
	dense = slices.Clone(dense)
	sp := session(t, keep, engine.Options{})
	if err := sp.Runner().EnableSparse(engine.Sparsity{}); err != nil {
		t.Fatalf("EnableSparse with the FFN in rows: %v", err)
	}
	v := keep.Config.Vocab
	for i, tok := range prompt {
		l, err := sp.Eval([]int32{tok})
		if err != nil {
			t.Fatal(err)
		}
		if d := relDiff(l, dense[i*v:(i+1)*v]); d > 1e-5 {
			t.Fatalf("token %d: the sparse FFN at zero sparsity differs from dense by %.2e relative", i, d)
		}
	}
	m, err := engine.LoadWith(path, engine.LoadOptions{PackQ4: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if n := m.PackedMatrices(); n != 0 {
		t.Errorf("PackQ4 of a mapped file packed %d matrices", n)
	}
}

// maxAbs is the largest |x|.
func maxAbs(x []float32) float64 {
	m := 0.0
	for _, v := range x {
		m = max(m, math.Abs(float64(v)))
	}
	return m
}

func TestContextErrors(t *testing.T) {
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q8_0, Seed: 3}))
	s := session(t, m, engine.Options{Context: 16})
	long := make([]int32, 17)
	for i := range long {
		long[i] = 300
	}
	if _, err := s.Eval(long); !errors.Is(err, engine.ErrContextFull) {
		t.Fatalf("17 tokens in a 16-token context: err %v", err)
	}
	if _, err := s.Generate(context.Background(), long[:16], engine.GenerateParams{}, nil); !errors.Is(err, engine.ErrContextFull) {
		t.Fatalf("a 16-token prompt leaves no room in 16: err %v", err)
	}
	if _, err := s.Eval([]int32{int32(m.Config.Vocab)}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("out-of-range token: err %v", err)
	}
	// generation stops cleanly with "length" when the context fills
	res, err := s.Generate(context.Background(), long[:10], engine.GenerateParams{IgnoreEOS: true, Sampler: engine.SamplerParams{TopP: 1, RepeatPenalty: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Finish != engine.FinishLength || s.Pos() != 16 || len(res.Tokens) != 7 {
		t.Fatalf("finish %q pos %d tokens %d, want length, 16, 7", res.Finish, s.Pos(), len(res.Tokens))
	}
}

func TestSeededGenerationIsDeterministic(t *testing.T) {
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q4_0, Seed: 3}))
	gen := func(seed uint64) string {
		s := session(t, m, engine.Options{})
		p := engine.GenerateParams{MaxTokens: 24, IgnoreEOS: true, Sampler: engine.DefaultSampler()}
		p.Sampler.Temperature = 1.5
		p.Sampler.Seed = seed
		var streamed strings.Builder
		res, err := s.Generate(context.Background(), m.Tok.Encode("Hello", true, true), p, func(tk engine.Token) error {
			streamed.WriteString(tk.Text)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if streamed.String() != res.Text {
			t.Fatalf("streamed %q != result %q", streamed.String(), res.Text)
		}
		return fmt.Sprint(res.Tokens)
	}
	a, b, c := gen(11), gen(11), gen(12)
	if a != b {
		t.Fatalf("same seed, different tokens:\n%s\n%s", a, b)
	}
	if a == c {
		t.Fatalf("different seeds gave the same 24 tokens at temperature 1.5: %s", a)
	}
}

func TestGenerateCancel(t *testing.T) {
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q8_0, Seed: 3}))
	s := session(t, m, engine.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	res, err := s.Generate(ctx, m.Tok.Encode("Hi", true, true), engine.GenerateParams{MaxTokens: 100, IgnoreEOS: true, Sampler: engine.SamplerParams{TopP: 1, RepeatPenalty: 1}}, func(engine.Token) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || res == nil || len(res.Tokens) != 3 {
		t.Fatalf("err %v, tokens %v", err, res)
	}
}

// TestDecodeStepAllocatesNothing: the per-token path (forward pass for one
// token) must not allocate.
func TestDecodeStepAllocatesNothing(t *testing.T) {
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q4_K, Seed: 3}))
	packed := loadPacked(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q4_0, Seed: 3}))
	packedK := loadPacked(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q4_K, Seed: 3}))
	// the sparse FFN with a PowerInfer file's predictor (rank-major fc2)
	pi := load(t, synthModel(t, synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Params: 3e6, Type: dtype.Q4_0, Seed: 3}))
	for _, c := range []struct {
		m      *engine.Model
		kv     dtype.Type
		sparse bool
	}{{m, dtype.F32, false}, {m, dtype.F16, false}, {packed, dtype.F16, false}, {packedK, dtype.F16, false}, {pi, dtype.F32, true}} {
		kv := c.kv
		s := session(t, c.m, engine.Options{KVType: kv, Context: 256})
		if c.sparse {
			p, err := c.m.FilePredictor()
			if err != nil || p == nil {
				t.Fatalf("the file's predictor: %v", err)
			}
			if err := s.Runner().EnableSparse(engine.Sparsity{Predictor: p, OnResidual: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Eval([]int32{7}); err != nil { // sizes the sparse scratch once
				t.Fatal(err)
			}
		}
		if _, err := s.Eval([]int32{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		tok := []int32{42}
		allocs := testing.AllocsPerRun(50, func() {
			if _, err := s.Eval(tok); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s, kv %s, sparse %v: a decode step allocates %.1f times", c.m.W.Layers[0].Q.Type, kv, c.sparse, allocs)
		}
	}
}
