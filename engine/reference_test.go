package engine_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
)

// sharedModels locates ../shared/models (CI has it beside the checkout);
// STOKE_SHARED overrides the shared directory.
func sharedModels(t testing.TB) string {
	t.Helper()
	dir := filepath.Join("..", "..", "shared")
	if d := os.Getenv("STOKE_SHARED"); d != "" {
		dir = d
	}
	dir = filepath.Join(dir, "models")
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Skipf("reference models not found at %s (set STOKE_SHARED to the shared directory): %v", dir, err)
	}
	return dir
}

type refFile struct {
	Prompt         string  `json:"prompt"`
	PromptIDs      []int32 `json:"prompt_token_ids"`
	Greedy         []int32 `json:"greedy_token_ids"`
	GreedyText     string  `json:"greedy_text"`
	StablePrefix   int     `json:"stable_greedy_prefix"`
	AddBOS         *bool   `json:"add_bos"`
	FirstPosition5 []struct {
		ID    int32   `json:"id"`
		Logit float32 `json:"logit"`
	} `json:"first_position_top5"`
	Steps []struct {
		IDs    []int32   `json:"ids"`
		Logits []float32 `json:"logits"`
	} `json:"steps_top5"`
}

func readRef(t *testing.T, path string) refFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r refFile
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

func readLogits(t *testing.T, path string, vocab int) [][]float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(b) / 4 / vocab
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = make([]float32, vocab)
		for j := range rows[i] {
			rows[i][j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*(i*vocab+j):]))
		}
	}
	return rows
}

func load(t *testing.T, path string) *engine.Model {
	t.Helper()
	m, err := engine.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func session(t *testing.T, m *engine.Model, o engine.Options) *engine.Session {
	t.Helper()
	if o.Context == 0 {
		o.Context = 512
	}
	s, err := m.NewSession(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func greedy(t *testing.T, s *engine.Session, prompt []int32, n int) []int32 {
	t.Helper()
	return greedyRes(t, s, prompt, n).Tokens
}

func greedyRes(t *testing.T, s *engine.Session, prompt []int32, n int) *engine.Result {
	t.Helper()
	p := engine.GenerateParams{MaxTokens: n, IgnoreEOS: true, Sampler: engine.SamplerParams{TopP: 1, RepeatPenalty: 1}}
	res, err := s.Generate(context.Background(), prompt, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// TestStories260KMatchesRunC: F32 weights, F32 compute: every logit of all 32
// greedy steps must agree with llama2.c's run.c within 1e-4, and token ids
// (prompt and greedy) must equal both references exactly.
func TestStories260KMatchesRunC(t *testing.T) {
	dir := sharedModels(t)
	m := load(t, filepath.Join(dir, "stories260K.gguf"))
	for _, p := range []string{"p1", "p2"} {
		t.Run(p, func(t *testing.T) {
			lc := readRef(t, filepath.Join(dir, "ref", "stories260K."+p+".llamacpp.json"))
			rc := readRef(t, filepath.Join(dir, "ref", "stories260K."+p+".runc.json"))
			ids := m.Tok.Encode(lc.Prompt, true, true)
			if !slices.Equal(ids, lc.PromptIDs) || !slices.Equal(ids, rc.PromptIDs) {
				t.Fatalf("prompt ids %v, llama.cpp %v, run.c %v", ids, lc.PromptIDs, rc.PromptIDs)
			}
			s := session(t, m, engine.Options{})
			res := greedyRes(t, s, ids, 32)
			got := res.Tokens
			if !slices.Equal(got, lc.Greedy) || !slices.Equal(got, rc.Greedy) {
				t.Fatalf("greedy ids\n got %v\nwant %v", got, lc.Greedy)
			}
			if res.Text != lc.GreedyText {
				t.Errorf("greedy text %q, want %q", res.Text, lc.GreedyText)
			}
			// logits of every step, from one batched prefill of prompt+output
			ref := readLogits(t, filepath.Join(dir, "ref", "logits", "stories260K."+p+".runc.bin"), 512)
			s2 := session(t, m, engine.Options{Batch: 7})
			all, err := s2.EvalAll(append(slices.Clone(ids), got[:31]...))
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for step := range 32 {
				row := all[(len(ids)-1+step)*512 : (len(ids)+step)*512]
				worst = max(worst, maxAbsDiff(row, ref[step]))
			}
			t.Logf("max |logit - run.c| over 32 steps × 512: %.2e", worst)
			if worst > 1e-4 {
				t.Errorf("logits differ from run.c by %.2e > 1e-4", worst)
			}
		})
	}
}

// TestStories260KVariants: F16/Q8_0/Q4_0 weights and an F16 KV cache must
// give llama.cpp's greedy ids. llama.cpp's own logits carry F16-table and
// Q8-activation error, so only ids are compared exactly; first-position
// logits are checked loosely to catch gross errors.
func TestStories260KVariants(t *testing.T) {
	dir := sharedModels(t)
	cases := []struct {
		name, file, ref string
		kv              dtype.Type
		tol             float64
	}{
		{"f16", "derived/stories260K-f16.gguf", "stories260K-f16", dtype.F32, 0.02},
		{"q8_0", "derived/stories260K-q8_0.gguf", "stories260K-q8_0", dtype.F32, 0.1},
		{"q4_0", "derived/stories260K-q4_0.gguf", "stories260K-q4_0", dtype.F32, 0.3},
		{"f16kv", "stories260K.gguf", "stories260K", dtype.F16, 0.02},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := load(t, filepath.Join(dir, c.file))
			for _, p := range []string{"p1", "p2"} {
				suffix := ".llamacpp.json"
				if c.kv == dtype.F16 {
					suffix = ".llamacpp.f16kv.json"
				}
				ref := readRef(t, filepath.Join(dir, "ref", c.ref+"."+p+suffix))
				ids := m.Tok.Encode(ref.Prompt, true, true)
				if !slices.Equal(ids, ref.PromptIDs) {
					t.Fatalf("%s prompt ids %v, want %v", p, ids, ref.PromptIDs)
				}
				s := session(t, m, engine.Options{KVType: c.kv})
				logits, err := s.Eval(ids)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range ref.FirstPosition5 {
					if d := math.Abs(float64(logits[e.ID] - e.Logit)); d > c.tol {
						t.Errorf("%s logit[%d] = %g, llama.cpp %g", p, e.ID, logits[e.ID], e.Logit)
					}
				}
				s.Reset()
				if got := greedy(t, s, ids, 32); !slices.Equal(got, ref.Greedy) {
					t.Errorf("%s greedy ids\n got %v\nwant %v", p, got, ref.Greedy)
				}
			}
		})
	}
}

// TestQwen3MatchesTransformers: byte-level BPE without BOS, NeoX RoPE,
// q/k norms, head size ≠ dim/heads, tied embeddings; logits of every step's
// top 5 within 1e-4 of transformers' float32 forward.
func TestQwen3MatchesTransformers(t *testing.T) {
	dir := sharedModels(t)
	m := load(t, filepath.Join(dir, "qwen3-tiny-random.gguf"))
	for _, p := range []string{"p1", "p2"} {
		t.Run(p, func(t *testing.T) {
			ref := readRef(t, filepath.Join(dir, "ref", "qwen3-tiny-random."+p+".hf.json"))
			ids := m.Tok.Encode(ref.Prompt, true, true)
			if !slices.Equal(ids, ref.PromptIDs) {
				t.Fatalf("prompt ids\n got %v\nwant %v", ids, ref.PromptIDs)
			}
			s := session(t, m, engine.Options{})
			got := greedy(t, s, ids, 32)
			n := ref.StablePrefix
			if n == 0 {
				n = 32
			}
			if !slices.Equal(got[:n], ref.Greedy[:n]) {
				t.Fatalf("greedy ids (stable prefix %d)\n got %v\nwant %v", n, got, ref.Greedy)
			}
			s2 := session(t, m, engine.Options{Batch: 5})
			all, err := s2.EvalAll(append(slices.Clone(ids), ref.Greedy[:31]...))
			if err != nil {
				t.Fatal(err)
			}
			v := m.Config.Vocab
			worst := 0.0
			for step, st := range ref.Steps {
				row := all[(len(ids)-1+step)*v : (len(ids)+step)*v]
				for k, id := range st.IDs {
					worst = max(worst, math.Abs(float64(row[id]-st.Logits[k])))
				}
			}
			t.Logf("max |logit - transformers| over %d steps × top-5: %.2e", len(ref.Steps), worst)
			if len(ref.Steps) == 0 || worst > 1e-4 {
				t.Errorf("logits differ from transformers by %.2e > 1e-4 (steps %d)", worst, len(ref.Steps))
			}
		})
	}
}

// TestLlama2TinyRandom: 32k Llama-2 vocabulary, F16 weights. Its logits sit
// ~1e-3 apart, so compare first-position logits (all 32000) with a
// tolerance that covers llama.cpp's F16 activation rounding.
func TestLlama2TinyRandom(t *testing.T) {
	dir := sharedModels(t)
	m := load(t, filepath.Join(dir, "llama-2-tiny-random.gguf"))
	for _, p := range []string{"p1", "p2"} {
		ref := readRef(t, filepath.Join(dir, "ref", "llama-2-tiny-random."+p+".llamacpp.json"))
		ids := m.Tok.Encode(ref.Prompt, true, true)
		if !slices.Equal(ids, ref.PromptIDs) {
			t.Fatalf("%s prompt ids %v, want %v", p, ids, ref.PromptIDs)
		}
		s := session(t, m, engine.Options{})
		logits, err := s.Eval(ids)
		if err != nil {
			t.Fatal(err)
		}
		want := readLogits(t, filepath.Join(dir, "ref", "logits", "llama-2-tiny-random."+p+".llamacpp.f32kv.bin"), 32000)[0]
		d := maxAbsDiff(logits, want)
		t.Logf("%s max |logit - llama.cpp| over 32000: %.2e", p, d)
		if d > 1e-3 {
			t.Errorf("%s logits differ from llama.cpp by %.2e", p, d)
		}
	}
}

// TestPerplexityMatchesLlamaCpp: stories260K on TinyStories-valid.txt at
// n_ctx 128 (121 chunks): llama.cpp and run.c both report PPL 5.8585.
func TestPerplexityMatchesLlamaCpp(t *testing.T) {
	dir := sharedModels(t)
	m := load(t, filepath.Join(dir, "stories260K.gguf"))
	text, err := os.ReadFile(filepath.Join(dir, "texts", "TinyStories-valid.txt"))
	if err != nil {
		t.Fatal(err)
	}
	ids := m.Tok.Encode(string(text), true, false)
	if len(ids) != 15555 {
		t.Errorf("TinyStories-valid.txt is %d tokens with BOS, the models README says 15,555", len(ids))
	}
	s := session(t, m, engine.Options{Context: 128, Batch: 128})
	res, err := s.Perplexity(context.Background(), ids, 128, m.Tok.BOS(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PPL %.4f ± %.4f over %d chunks", res.PPL, res.StdErr, res.Chunks)
	if res.Chunks != 121 || math.Abs(res.PPL-5.8585) > 0.0005 {
		t.Errorf("PPL %.4f over %d chunks, llama.cpp: 5.8585 over 121", res.PPL, res.Chunks)
	}
}
