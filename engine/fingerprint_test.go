package engine_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/engine/fingerprint"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
)

func fpParams(n int) engine.GenerateParams {
	p := greedyParams(n)
	p.Fingerprint = true
	return p
}

func fpGenerate(t *testing.T, m *engine.Model, o engine.Options, prompt []int32, p engine.GenerateParams) *engine.Result {
	t.Helper()
	res, err := session(t, m, o).Generate(context.Background(), prompt, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Fingerprint == nil {
		t.Fatal("no fingerprint in the result")
	}
	return res
}

func fpVerify(t *testing.T, m *engine.Model, o engine.Options, prompt, output []int32, proof []byte) fingerprint.Report {
	t.Helper()
	r, err := session(t, m, o).VerifyFingerprint(prompt, output, proof)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestFingerprintHonest: a proof made by Session.Generate or by the
// Scheduler among other sequences verifies on sessions with other thread
// counts and prefill chunk sizes.
func TestFingerprintHonest(t *testing.T) {
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q8_0, Seed: 3}))
	prompt := m.Tok.Encode("Once upon a time, a fingerprint", true, true)
	res := fpGenerate(t, m, engine.Options{Threads: 1}, prompt, fpParams(40))
	if len(res.Tokens) != 40 {
		t.Fatalf("%d tokens", len(res.Tokens))
	}
	t.Logf("%d prompt + %d output tokens: %d proof bytes", len(prompt), len(res.Tokens), len(res.Fingerprint))
	for _, o := range []engine.Options{{Threads: 1}, {Threads: 2, Batch: 7}, {Threads: 3, Batch: 1}} {
		r := fpVerify(t, m, o, prompt, res.Tokens, res.Fingerprint)
		if !r.OK {
			t.Errorf("%+v: honest proof rejected: %s (%+v)", o, r.Reason, r)
		}
	}

	sc, err := engine.NewScheduler(m, engine.SchedulerOptions{Parallel: 4, Context: 256, Batch: 16, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var wg sync.WaitGroup
	results := make([]*engine.Result, 6)
	prompts := make([][]int32, len(results))
	errs := make([]error, len(results))
	for i := range results {
		prompts[i] = m.Tok.Encode(fmt.Sprintf("Story %d: %s", i, "the dog ran home"), true, true)
		if i == 0 {
			prompts[i] = prompt
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := greedyParams(20 + 5*i)
			p.Fingerprint = i%3 != 2 // some sequences without
			results[i], errs[i] = sc.Generate(context.Background(), prompts[i], p, nil)
		}()
	}
	wg.Wait()
	for i, res := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if i%3 == 2 {
			if res.Fingerprint != nil {
				t.Errorf("request %d: fingerprint without asking", i)
			}
			continue
		}
		r := fpVerify(t, m, engine.Options{Threads: 2}, prompts[i], res.Tokens, res.Fingerprint)
		if !r.OK {
			t.Errorf("scheduler request %d: honest proof rejected: %s", i, r.Reason)
		}
	}
	if !slices.Equal(results[0].Tokens, res.Tokens[:20]) {
		t.Errorf("scheduler tokens differ from the session's")
	}
}

// TestFingerprintDetects: a proof fails for another model, for the same
// weights quantized differently, for an altered prompt and for any single
// altered output token, including the last.
func TestFingerprintDetects(t *testing.T) {
	q8 := load(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q8_0, Seed: 3}))
	q4 := load(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q4_0, Seed: 3}))
	other := load(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q8_0, Seed: 4}))
	prompt := q8.Tok.Encode("The quick brown fox jumps over the lazy dog", true, true)
	o := engine.Options{Threads: 2}
	res := fpGenerate(t, q8, o, prompt, fpParams(40))

	// the node served Q4_0 (or another model) and claims Q8_0
	for name, m := range map[string]*engine.Model{"q4_0 for q8_0": q4, "other model": other} {
		cheat := fpGenerate(t, m, o, prompt, fpParams(40))
		if r := fpVerify(t, q8, o, prompt, cheat.Tokens, cheat.Fingerprint); r.OK {
			t.Errorf("%s: accepted (%+v)", name, r)
		} else {
			t.Logf("%s: %s", name, r.Reason)
		}
	}
	// altered prompt
	alt := slices.Clone(prompt)
	alt[len(alt)/2] = (alt[len(alt)/2] + 1) % int32(q8.Config.Vocab)
	if r := fpVerify(t, q8, o, alt, res.Tokens, res.Fingerprint); r.OK {
		t.Errorf("altered prompt accepted (%+v)", r)
	}
	// one altered output token
	for _, pos := range []int{0, 17, 38, 39} {
		out := slices.Clone(res.Tokens)
		out[pos] = (out[pos] + 1) % int32(q8.Config.Vocab)
		if r := fpVerify(t, q8, o, prompt, out, res.Fingerprint); r.OK {
			t.Errorf("output token %d altered: accepted (%+v)", pos, r)
		}
	}
	// a dropped token changes the claim's length
	if r := fpVerify(t, q8, o, prompt, res.Tokens[:39], res.Fingerprint); r.OK {
		t.Error("truncated output accepted")
	}
}

func TestFingerprintErrors(t *testing.T) {
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q8_0, Seed: 3}))
	prompt := m.Tok.Encode("Hello", true, true)
	res := fpGenerate(t, m, engine.Options{}, prompt, fpParams(5))
	s := session(t, m, engine.Options{})
	for _, b := range [][]byte{nil, res.Fingerprint[:10], res.Fingerprint[:len(res.Fingerprint)-2], append(slices.Clone(res.Fingerprint), 1, 2)} {
		if _, err := s.VerifyFingerprint(prompt, res.Tokens, b); !errors.Is(err, fingerprint.ErrMalformed) {
			t.Errorf("%d-byte proof: err %v", len(b), err)
		}
	}
	if _, err := s.Eval(prompt); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Generate(context.Background(), prompt, fpParams(3), nil); err == nil {
		t.Error("fingerprinted generation on a non-empty session")
	}
	// a generation that fills the context still commits every token
	small := session(t, m, engine.Options{Context: len(prompt) + 4})
	r, err := small.Generate(context.Background(), prompt, fpParams(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Tokens) != 4 || r.Fingerprint == nil {
		t.Fatalf("%d tokens, fingerprint %v", len(r.Tokens), r.Fingerprint != nil)
	}
	if rep := fpVerify(t, m, engine.Options{}, prompt, r.Tokens, r.Fingerprint); !rep.OK {
		t.Error(rep.Reason)
	}
}

// TestFingerprintStories260K: the real model's Q8_0 and Q4_0 variants. (F32
// served for Q8_0 is within the honest noise of quantized activations and
// may pass: it costs the node more, not less.)
func TestFingerprintStories260K(t *testing.T) {
	dir := sharedModels(t)
	q8 := load(t, filepath.Join(dir, "derived", "stories260K-q8_0.gguf"))
	q4 := load(t, filepath.Join(dir, "derived", "stories260K-q4_0.gguf"))
	f32 := load(t, filepath.Join(dir, "stories260K.gguf"))
	prompt := q8.Tok.Encode("Once upon a time, there was a little girl", true, true)
	res := fpGenerate(t, q8, engine.Options{Threads: 1}, prompt, fpParams(64))
	if r := fpVerify(t, q8, engine.Options{Threads: 2, Batch: 5}, prompt, res.Tokens, res.Fingerprint); !r.OK {
		t.Errorf("honest proof rejected: %s", r.Reason)
	} else {
		t.Logf("honest: %+v", r)
	}
	for name, m := range map[string]*engine.Model{"q4_0": q4, "f32": f32} {
		cheat := fpGenerate(t, m, engine.Options{Threads: 1}, prompt, fpParams(64))
		r := fpVerify(t, q8, engine.Options{Threads: 2}, prompt, cheat.Tokens, cheat.Fingerprint)
		t.Logf("%s served for q8_0: OK %v %s (median %.1f, misses %d/%d)", name, r.OK, r.Reason, r.WorstMedian, r.Misses, r.Entries)
		if name == "q4_0" && r.OK {
			t.Errorf("q4_0 served for q8_0: accepted (%+v)", r)
		}
	}
}

// TestFingerprintPackedVerifies: a node that packs its matrices
// (stoke node reads the model into memory and packs it on the CPU) and a
// verifier that maps the file compute the same products summed in
// another order; honest proofs must verify both ways.
func TestFingerprintPackedVerifies(t *testing.T) {
	for _, dt := range []dtype.Type{dtype.Q4_0, dtype.Q8_0, dtype.Q4_K} {
		path := synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dt, Seed: 3})
		rows, packed := load(t, path), loadPacked(t, path)
		prompt := rows.Tok.Encode("Once upon a time, a packed fingerprint", true, true)
		for _, c := range []struct {
			name           string
			prover, verify *engine.Model
		}{{"packed prover", packed, rows}, {"packed verifier", rows, packed}} {
			res := fpGenerate(t, c.prover, engine.Options{Threads: 2}, prompt, fpParams(40))
			if r := fpVerify(t, c.verify, engine.Options{Threads: 2}, prompt, res.Tokens, res.Fingerprint); !r.OK {
				t.Errorf("%s, %s: honest proof rejected: %s (%+v)", dt, c.name, r.Reason, r)
			}
		}
	}
}
