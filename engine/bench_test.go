package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
)

// benchModel returns a synthetic model for benchmarks, cached across runs in
// the user cache directory (a 1B model takes a while to write). The size
// comes from STOKE_BENCH_PARAMS (default 1e9).
func benchModel(b *testing.B, t dtype.Type) string {
	b.Helper()
	params := int64(1e9)
	if s := os.Getenv("STOKE_BENCH_PARAMS"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			b.Fatalf("STOKE_BENCH_PARAMS=%q: %v", s, err)
		}
		params = int64(v)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "stoke", "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("llama-%d-%s-seed1.gguf", params, t))
	if _, err := os.Stat(p); err == nil {
		return p
	}
	b.Logf("writing %s (once)", p)
	if err := synth.Write(p, synth.Config{Arch: "llama", Params: params, Type: t, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkDecode measures one decode step (the forward pass of one token
// at a short context) on a ~1B synthetic llama. Reported: tokens/s and the
// weight bytes streamed per second (weights ÷ time per token), to compare
// with BenchmarkReadBandwidth in kernels/cpu.
func BenchmarkDecode(b *testing.B) {
	for _, dt := range []dtype.Type{dtype.Q8_0, dtype.Q4_0} {
		m, err := engine.Load(benchModel(b, dt))
		if err != nil {
			b.Fatal(err)
		}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", dt, threads), func(b *testing.B) {
				s, err := m.NewSession(engine.Options{Threads: threads, Context: 512})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if _, err := s.Eval([]int32{1, 400, 500}); err != nil {
					b.Fatal(err)
				}
				tok := []int32{600}
				b.ReportAllocs()
				b.SetBytes(m.WeightBytes())
				n := 0
				for b.Loop() {
					if s.Pos() >= 500 {
						s.Truncate(3)
					}
					if _, err := s.Eval(tok); err != nil {
						b.Fatal(err)
					}
					n++
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tok/s")
			})
		}
		m.Close()
	}
}

// BenchmarkPrefill measures a 128-token prompt in one batched pass.
func BenchmarkPrefill(b *testing.B) {
	for _, dt := range []dtype.Type{dtype.Q8_0, dtype.Q4_0} {
		m, err := engine.Load(benchModel(b, dt))
		if err != nil {
			b.Fatal(err)
		}
		prompt := make([]int32, 128)
		for i := range prompt {
			prompt[i] = int32(300 + i)
		}
		b.Run(dt.String(), func(b *testing.B) {
			s, err := m.NewSession(engine.Options{Context: 512, Batch: 128})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				s.Reset()
				if _, err := s.Eval(prompt); err != nil {
					b.Fatal(err)
				}
				n += len(prompt)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tok/s")
		})
		m.Close()
	}
}

// BenchmarkSchedulerStreams measures aggregate decode tokens/s with 1, 4, 8
// and 16 concurrent streams under continuous batching: each step reads the
// weights once for every stream, so the aggregate should grow with streams
// until compute, not bandwidth, is the limit.
func BenchmarkSchedulerStreams(b *testing.B) {
	m, err := engine.Load(benchModel(b, dtype.Q4_0))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	const gen = 16
	for _, streams := range []int{1, 4, 8, 16} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			sc, err := engine.NewScheduler(m, engine.SchedulerOptions{Parallel: streams, Context: 128, Batch: 64})
			if err != nil {
				b.Fatal(err)
			}
			defer sc.Close()
			p := engine.GenerateParams{MaxTokens: gen, IgnoreEOS: true, Sampler: engine.SamplerParams{TopP: 1, RepeatPenalty: 1}}
			total := 0
			for b.Loop() {
				var wg sync.WaitGroup
				var mu sync.Mutex
				for i := range streams {
					wg.Add(1)
					go func() {
						defer wg.Done()
						res, err := sc.Generate(context.Background(), []int32{1, int32(300 + i)}, p, nil)
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						total += len(res.Tokens)
						mu.Unlock()
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
