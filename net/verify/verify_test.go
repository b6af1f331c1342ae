package verify_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/net/verify"
)

func load(t *testing.T, seed uint64) *engine.Model {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := synth.Write(p, synth.Config{Arch: "llama", Params: 2e6, Type: dtype.Q8_0, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	m, err := engine.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); os.Remove(p) })
	return m
}

// generate runs a job as a node would: on a scheduler, fingerprinted.
func generate(t *testing.T, m *engine.Model, prompt []int32, p engine.GenerateParams) *engine.Result {
	t.Helper()
	s, err := engine.NewScheduler(m, engine.SchedulerOptions{Parallel: 1, Context: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p.Fingerprint = true
	res, err := s.Generate(context.Background(), prompt, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Fingerprint) == 0 {
		t.Fatal("no fingerprint")
	}
	return res
}

func greedy(n int) engine.GenerateParams {
	return engine.GenerateParams{MaxTokens: n, IgnoreEOS: true, Sampler: engine.SamplerParams{TopP: 1, RepeatPenalty: 1}}
}

func TestFingerprintCheck(t *testing.T) {
	m := load(t, 1)
	other := load(t, 2)
	prompt := m.Tok.Encode("A verifier re-runs the prompt", true, true)
	res := generate(t, m, prompt, greedy(40))
	v := verify.NewEngine(m, engine.Options{Context: 256, Threads: 1})
	defer v.Close()
	v.RequireProof(true)
	ctx := context.Background()
	check := func(name string, c verify.Check, wantOK bool) {
		t.Helper()
		got, err := v.Verify(ctx, c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.OK != wantOK {
			t.Fatalf("%s: OK %v (%s), want %v", name, got.OK, got.Reason, wantOK)
		}
		t.Logf("%s: %v: %s", name, got.OK, got.Reason)
	}
	honest := verify.Check{Prompt: prompt, Output: res.Tokens, Params: greedy(40), Proof: res.Fingerprint}
	check("honest", honest, true)

	altered := honest
	altered.Output = append([]int32(nil), res.Tokens...)
	altered.Output[len(altered.Output)/2] = (altered.Output[len(altered.Output)/2] + 1) % int32(m.Config.Vocab)
	check("one altered token", altered, false)

	wrongPrompt := honest
	wrongPrompt.Prompt = m.Tok.Encode("A verifier re-runs the promp", true, true)
	check("altered prompt", wrongPrompt, false)

	cheat := generate(t, other, prompt, greedy(40))
	check("other model", verify.Check{Prompt: prompt, Output: cheat.Tokens, Params: greedy(40), Proof: cheat.Fingerprint}, false)

	noProof := honest
	noProof.Proof = nil
	check("no proof", noProof, false)

	garbage := honest
	garbage.Proof = []byte("not a proof")
	check("garbage proof", garbage, false)

	outside := honest
	outside.Output = []int32{int32(m.Config.Vocab)}
	check("token outside the vocabulary", outside, false)
}

// TestLogitCheck: without fingerprints, claimed tokens must be ones the
// job's sampler could have drawn.
func TestLogitCheck(t *testing.T) {
	m := load(t, 1)
	other := load(t, 2)
	v := verify.NewEngine(m, engine.Options{Context: 256, Threads: 1})
	defer v.Close()
	ctx := context.Background()
	prompt := m.Tok.Encode("Without a fingerprint", true, true)
	for _, p := range []engine.GenerateParams{
		greedy(30),
		{MaxTokens: 30, IgnoreEOS: true, Sampler: engine.SamplerParams{TopP: 1, RepeatPenalty: 1.3, RepeatLastN: 16, PresencePenalty: 0.5}},
		{MaxTokens: 30, IgnoreEOS: true, Sampler: engine.SamplerParams{Temperature: 0.8, TopK: 20, TopP: 0.95, RepeatPenalty: 1, Seed: 9}},
	} {
		honest := generate(t, m, prompt, p)
		got, err := v.Verify(ctx, verify.Check{Prompt: prompt, Output: honest.Tokens, Params: p})
		if err != nil || !got.OK {
			t.Fatalf("honest %+v: %v %+v", p.Sampler, err, got)
		}
		cheat := generate(t, other, prompt, p)
		got, err = v.Verify(ctx, verify.Check{Prompt: prompt, Output: cheat.Tokens, Params: p})
		if err != nil {
			t.Fatal(err)
		}
		if p.Sampler.Temperature == 0 && got.OK {
			t.Fatalf("another model's greedy tokens passed: %+v", got)
		}
		t.Logf("T=%g other model: %v %s", p.Sampler.Temperature, got.OK, got.Reason)
	}
	// fabricated tokens
	fab := make([]int32, 20)
	for i := range fab {
		fab[i] = int32(i*37) % int32(m.Config.Vocab)
	}
	got, err := v.Verify(ctx, verify.Check{Prompt: prompt, Output: fab, Params: greedy(20)})
	if err != nil || got.OK || !strings.Contains(got.Reason, "greedy") {
		t.Fatalf("fabricated tokens: %v %+v", err, got)
	}
}
