package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/predictor"
)

func greedyParams(n int) engine.GenerateParams {
	return engine.GenerateParams{MaxTokens: n, IgnoreEOS: true, Sampler: engine.SamplerParams{TopP: 1, RepeatPenalty: 1}}
}

// TestSchedulerMatchesSequential: many concurrent requests, batched
// together with staggered prompts, each get exactly the tokens a lone
// session produces for the same prompt.
//
// Q4_0, Q8_0, Q4_K, Q5_K, Q6_K and the Q4_K_M mix run packed too (LoadOptions.PackQ4), as stoke serve loads
// them on the CPU: the packed drivers must give one token and a batch the
// same bits.
func TestSchedulerMatchesSequential(t *testing.T) {
	for _, c := range []struct {
		dt     dtype.Type
		mix    string // a llama.cpp mix (its attn_v, of another type, leaves Q, K and V unshared)
		packed bool
	}{{dtype.Q8_0, "", false}, {dtype.Q4_0, "", true}, {dtype.Q8_0, "", true}, {dtype.Q4_K, "", true}, {dtype.Q5_K, "", true}, {dtype.Q6_K, "", true},
		{dtype.Q4_K, synth.MixQ4KM, true}} {
		name := c.dt.String()
		if c.mix != "" {
			name = c.mix
		}
		t.Run(fmt.Sprintf("%s/packed=%v", name, c.packed), func(t *testing.T) {
			path := synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: c.dt, Mix: c.mix, Seed: 3})
			m := load(t, path)
			if c.packed {
				m = loadPacked(t, path)
			}
			schedulerMatchesSequential(t, m)
		})
	}
}

// loadPacked loads the model at path read into memory with its packable
// matrices packed, on any CPU (engine.SetPackAlways).
func loadPacked(t *testing.T, path string) *engine.Model {
	t.Helper()
	defer engine.SetPackAlways(true)()
	m, err := engine.LoadWith(path, engine.LoadOptions{NoMmap: true, PackQ4: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if m.PackedMatrices() == 0 {
		t.Fatal("PackQ4 packed no matrix")
	}
	return m
}

func schedulerMatchesSequential(t *testing.T, m *engine.Model) {
	const clients = 24
	prompts := make([][]int32, clients)
	want := make([][]int32, clients)
	for i := range prompts {
		prompts[i] = m.Tok.Encode(fmt.Sprintf("Request %d: %s", i, strings.Repeat("tell me a story ", i%5+1)), true, true)
		s := session(t, m, engine.Options{Context: 256})
		res, err := s.Generate(context.Background(), prompts[i], greedyParams(10+i%7), nil)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res.Tokens
	}
	sc, err := engine.NewScheduler(m, engine.SchedulerOptions{Parallel: 6, Context: 256, Queue: clients, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var streamed []int32
			var text strings.Builder
			res, err := sc.Generate(context.Background(), prompts[i], greedyParams(10+i%7), func(tk engine.Token) error {
				if tk.ID >= 0 { // -1 carries text held back until the end
					streamed = append(streamed, tk.ID)
				}
				text.WriteString(tk.Text)
				return nil
			})
			switch {
			case err != nil:
				errs[i] = err
			case !slices.Equal(res.Tokens, want[i]):
				errs[i] = fmt.Errorf("client %d: got %v, want %v", i, res.Tokens, want[i])
			case !slices.Equal(streamed, want[i]):
				errs[i] = fmt.Errorf("client %d: streamed %v, want %v", i, streamed, want[i])
			case text.String() != res.Text:
				errs[i] = fmt.Errorf("client %d: streamed text %q, result %q", i, text.String(), res.Text)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := sc.Stats()
	if st.Active != 0 || st.Queued != 0 || st.GenTokens == 0 {
		t.Errorf("after all requests: %+v", st)
	}
	// prefix reuse: the same prompt again hits a slot that holds it
	res, err := sc.Generate(context.Background(), prompts[3], greedyParams(10+3%7), nil)
	if err != nil || !slices.Equal(res.Tokens, want[3]) {
		t.Errorf("repeat request: %v %v, want %v", res, err, want[3])
	}
}

func TestSchedulerCancelFreesSlot(t *testing.T) {
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Params: 3e6, Type: dtype.Q8_0, Seed: 3}))
	sc, err := engine.NewScheduler(m, engine.SchedulerOptions{Parallel: 1, Context: 512, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		var once sync.Once
		_, err := sc.Generate(ctx, m.Tok.Encode("hello", true, true), greedyParams(400), func(engine.Token) error {
			once.Do(func() { close(started) })
			return nil
		})
		done <- err
	}()
	<-started
	// slot busy, queue of 1: the second request waits, the third is refused
	go sc.Generate(context.Background(), m.Tok.Encode("queued", true, true), greedyParams(2), nil)
	deadline := time.Now().Add(5 * time.Second)
	for sc.Stats().Queued != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if _, err := sc.Generate(context.Background(), m.Tok.Encode("x", true, true), greedyParams(2), nil); !errors.Is(err, engine.ErrQueueFull) {
		t.Errorf("third request: err %v, want ErrQueueFull", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request returned %v", err)
	}
	for (sc.Stats().Cancelled != 1 || sc.Stats().Active != 0 || sc.Stats().Queued != 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := sc.Stats(); st.Cancelled != 1 || st.Active != 0 {
		t.Errorf("after cancel: %+v", st)
	}
	if _, err := sc.Generate(context.Background(), make([]int32, 600), greedyParams(1), nil); !errors.Is(err, engine.ErrContextFull) {
		t.Errorf("over-long prompt: %v", err)
	}
}

// TestSchedulerSparseMatchesSequential: with the sparse FFN on, every
// decode step of a batched pass, alone or beside other sequences' prompt
// chunks, computes its own predicted neurons, so each of many concurrent
// requests gets exactly the tokens a lone sparse session produces. The
// predictor is a PowerInfer file's with its threshold raised until it
// misses many firing neurons, so that sparse and dense decoding part
// ways (checked): a batched pass that fell back to the dense FFN would
// show.
func TestSchedulerSparseMatchesSequential(t *testing.T) {
	m, weak := weakPredictorModel(t)
	sp := engine.Sparsity{Predictor: weak, OnResidual: true}
	const clients = 12
	prompts := make([][]int32, clients)
	want := make([][]int32, clients)
	differ := 0
	for i := range prompts {
		prompts[i] = m.Tok.Encode(fmt.Sprintf("Request %d: %s", i, strings.Repeat("tell me a story ", i%4+1)), true, true)
		s := session(t, m, engine.Options{Context: 256})
		dense, err := s.Generate(context.Background(), prompts[i], greedyParams(12+i%5), nil)
		if err != nil {
			t.Fatal(err)
		}
		s = session(t, m, engine.Options{Context: 256})
		if err := s.Runner().EnableSparse(sp); err != nil {
			t.Fatal(err)
		}
		res, err := s.Generate(context.Background(), prompts[i], greedyParams(12+i%5), nil)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res.Tokens
		if !slices.Equal(res.Tokens, dense.Tokens) {
			differ++
		}
	}
	if differ < clients/2 {
		t.Fatalf("only %d of %d requests decode differently sparse and dense: the check could not tell them apart", differ, clients)
	}
	sc, err := engine.NewScheduler(m, engine.SchedulerOptions{Parallel: 4, Context: 256, Queue: clients, Batch: 16,
		Setup: func(r *engine.Runner) error { return r.EnableSparse(sp) }})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	generateConcurrently(t, sc, prompts, want)
	if st := sc.Stats(); st.SparsePossible == 0 || st.Steps >= st.GenTokens {
		t.Errorf("stats %+v: want sparse steps, and passes that decoded several sequences at once", st)
	}
}

// generateConcurrently has one client per prompt generate at once on sc,
// greedily, 12 + i%5 tokens for prompt i, and reports each client whose
// tokens are not want[i].
func generateConcurrently(t *testing.T, sc *engine.Scheduler, prompts, want [][]int32) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(prompts))
	for i := range prompts {
		wg.Go(func() {
			res, err := sc.Generate(context.Background(), prompts[i], greedyParams(12+i%5), nil)
			switch {
			case err != nil:
				errs[i] = err
			case !slices.Equal(res.Tokens, want[i]):
				errs[i] = fmt.Errorf("client %d: got %v, want %v", i, res.Tokens, want[i])
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// weakPredictorModel loads a small PowerInfer-layout ReLU model and
// returns it with its file's predictor, the threshold raised to 2 so that
// it misses many firing neurons: sparse decoding then parts ways with
// dense, and a pass that fell back to every neuron would show. Its
// weights are the file's, which a device holding them computes.
func weakPredictorModel(t *testing.T) (*engine.Model, *predictor.Predictor) {
	t.Helper()
	m := load(t, synthModel(t, synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Type: dtype.Q8_0, Params: 3e6, Seed: 6}))
	fp, err := m.FilePredictor()
	if err != nil || fp == nil {
		t.Fatalf("the file's predictor: %v", err)
	}
	weak := &predictor.Predictor{ActThreshold: fp.ActThreshold}
	for _, lp := range fp.Layers {
		lp.Threshold = 2
		weak.Layers = append(weak.Layers, lp)
	}
	return m, weak
}
