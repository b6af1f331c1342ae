package engine_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/models/synth"
	"github.com/stokehq/stoke/offload"
	"github.com/stokehq/stoke/predictor"
)

// benchModel returns a synthetic llama for benchmarks (cachedModel).
func benchModel(b testing.TB, t dtype.Type) string {
	return cachedModel(b, "llama", synth.Config{Arch: "llama", Type: t, Seed: 1})
}

// sparseBenchModel is benchModel's ReLU llama in PowerInfer's layout:
// planted firing (5% hot neurons, cold rate 0.02, the generator's
// defaults), transposed downs and the exact planted predictor, as
// `stoke synth --relu --powerinfer` writes it.
func sparseBenchModel(b testing.TB, t dtype.Type) string {
	return cachedModel(b, "relu-powerinfer", synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Type: t, Seed: 1})
}

// cachedModel returns the synthetic model c with STOKE_BENCH_PARAMS
// parameters (default 1e9), cached across runs in the user cache
// directory as <name>-<params>-<type>-seed1.gguf (a 1B model takes a
// while to write) and written there first when absent.
func cachedModel(b testing.TB, name string, c synth.Config) string {
	b.Helper()
	c.Params = int64(1e9)
	if s := os.Getenv("STOKE_BENCH_PARAMS"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			b.Fatalf("STOKE_BENCH_PARAMS=%q: %v", s, err)
		}
		c.Params = int64(v)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "stoke", "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("%s-%d-%s-seed%d.gguf", name, c.Params, c.Type, c.Seed))
	if _, err := os.Stat(p); err == nil {
		return p
	}
	b.Logf("writing %s (once)", p)
	tmp := p + ".tmp"
	if err := synth.Write(tmp, c); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkDecode measures one decode step (the forward pass of one token
// at a short context) on a ~1B synthetic llama. Reported: tokens/s and the
// weight bytes streamed per second (weights ÷ time per token), to compare
// with BenchmarkReadBandwidth in kernels/cpu. The …/no-mmap runs load
// the model with LoadOptions.NoMmap (stoke --no-mmap).
func BenchmarkDecode(b *testing.B) {
	for _, dt := range []dtype.Type{dtype.Q8_0, dtype.Q4_0} {
		for _, lo := range []engine.LoadOptions{{}, {NoMmap: true}, {NoMmap: true, PackQ4: true}} {
			if lo.PackQ4 && !(dt == dtype.Q4_0 && cpu.Q4x16Pays() || dt == dtype.Q8_0 && cpu.Q8x16Pays()) {
				continue
			}
			m, err := engine.LoadWith(benchModel(b, dt), lo)
			if err != nil {
				b.Fatal(err)
			}
			for _, threads := range []int{1, 2} {
				name := fmt.Sprintf("%s/threads=%d", dt, threads)
				if lo.NoMmap {
					if threads == 1 {
						continue
					}
					name += "/no-mmap" // the weights in huge pages, not the page cache
					if lo.PackQ4 {
						name += "/packed" // and the matrices packed (cpu.PackQ4x16, PackQ8x16)
					}
				}
				b.Run(name, func(b *testing.B) {
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
}

// BenchmarkSparseDecode measures one decode step of sparseBenchModel's
// 1B ReLU Q4_0 model, dense and with the sparse FFN (the file's own
// predictor; about 9% of neurons computed), with the model mapped and
// read into memory (…/no-mmap, huge pages), and read into memory with
// attention and the output head packed (…/packed-attention, the FFN in
// rows): what `stoke run --sparse` does with --mmap, with --no-mmap
// before packing, and by default. Each step feeds the next token of a
// fixed sequence, so that the active sets change as in generation.
//
//	go test ./engine -run '^$' -bench SparseDecode -benchtime 64x
func BenchmarkSparseDecode(b *testing.B) {
	path := sparseBenchModel(b, dtype.Q4_0)
	hot := hotFirstModel(b, path)
	for _, lo := range []engine.LoadOptions{{}, {NoMmap: true}, {NoMmap: true, PackQ4: true, KeepFFNRows: true}} {
		if lo.PackQ4 && !cpu.Q4x16Pays() {
			continue
		}
		for _, run := range []struct {
			path          string
			sparse        bool
			variant, kind string
		}{{path, false, "dense", ""}, {path, true, "sparse", ""}, {hot, true, "sparse", "/hot-first"}} {
			if run.path == hot && !lo.NoMmap {
				continue // in memory only: the renumbering's gain is in the reads
			}
			m, err := engine.LoadWith(run.path, lo)
			if err != nil {
				b.Fatal(err)
			}
			sparse := run.sparse
			name := run.variant
			if lo.NoMmap {
				name += "/no-mmap"
			}
			if lo.PackQ4 {
				name += "/packed-attention" // as stoke run --sparse loads it
			}
			name += run.kind
			b.Run(name, func(b *testing.B) {
				s, err := m.NewSession(engine.Options{Threads: 2, Context: 512})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if sparse {
					p, err := m.FilePredictor()
					if err != nil || p == nil {
						b.Fatalf("the model's predictor: %v", err)
					}
					if err := s.Runner().EnableSparse(engine.Sparsity{Predictor: p, OnResidual: true}); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := s.Eval([]int32{1, 400, 500}); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					if s.Pos() >= 500 {
						s.Truncate(3)
					}
					if _, err := s.Eval([]int32{int32(300 + 37*n%1000)}); err != nil {
						b.Fatal(err)
					}
					n++
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tok/s")
				if a, p := s.Runner().SparseStats(); p > 0 {
					b.ReportMetric(100*float64(a)/float64(p), "%active")
				}
			})
			m.Close()
		}
	}
}

// hotFirstModel returns (writing once, beside path) path's model with its
// FFN neurons renumbered hot first, as `stoke profile` then `stoke
// reorder` write it: the counts come from profiling 512 tokens of a fixed
// sequence other than the one BenchmarkSparseDecode decodes.
func hotFirstModel(b testing.TB, path string) string {
	b.Helper()
	hot := strings.TrimSuffix(path, ".gguf") + "-hot.gguf"
	if _, err := os.Stat(hot); err == nil {
		return hot
	}
	b.Logf("writing %s (once)", hot)
	m, err := engine.LoadWith(path, engine.LoadOptions{NoMmap: true})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	s, err := m.NewSession(engine.Options{Context: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &m.Config
	prof := predictor.NewProfile(c.Layers, c.Dim, c.FFN, 0, 1)
	toks := make([]int32, 512)
	for i := range toks {
		toks[i] = int32(7 + 53*i%c.Vocab)
	}
	if err := s.Profile(context.Background(), toks, 1, prof, nil); err != nil {
		b.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w, _, err := arch.PermuteFFN(f, prof.HotFirst(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := gguf.WriteFile(hot, w); err != nil {
		b.Fatal(err)
	}
	return hot
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
// until compute, not bandwidth, is the limit. TestStreamsTable gives the
// ratios from interleaved rounds, which is what to compare on a shared
// machine.
func BenchmarkSchedulerStreams(b *testing.B) {
	m, err := engine.LoadWith(benchModel(b, dtype.Q4_0), engine.LoadOptions{NoMmap: true, PackQ4: true}) // as stoke serve loads it on the CPU
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for _, streams := range streamCounts {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			benchScheduler(b, m, engine.SchedulerOptions{Parallel: streams, Context: 128, Batch: 64}, streams)
		})
	}
}

// BenchmarkOffloadStreams measures aggregate decode tokens/s of 1 and 4
// concurrent streams on the scheduler with a hybrid plan of 400 MiB on the
// byte-capped CPU backend standing in for the device (--device
// cpu-capped), dense and with the sparse FFN (the file's predictor), on
// sparseBenchModel's 1B ReLU Q4_0 model: what `stoke serve --vram 400MiB
// --device cpu-capped --parallel 4 [--sparse]` runs. The stand-in computes
// its half on the same two cores, so the figures say how the host's work
// changes, not what a GPU gives.
//
//	go test ./engine -run '^$' -bench OffloadStreams -benchtime 4x
func BenchmarkOffloadStreams(b *testing.B) {
	m, err := engine.LoadWith(sparseBenchModel(b, dtype.Q4_0), engine.LoadOptions{NoMmap: true})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	desc, err := m.OffloadDesc(nil)
	if err != nil {
		b.Fatal(err)
	}
	plan, err := offload.Solve(desc, offload.Options{Mode: offload.ModeHybrid, Budget: 400 << 20, Context: 128, Seqs: 4, Batch: 64, Layers: -1})
	if err != nil {
		b.Fatal(err)
	}
	for _, sparse := range []bool{false, true} {
		for _, streams := range []int{1, 4} {
			name := "dense"
			if sparse {
				name = "sparse"
			}
			b.Run(fmt.Sprintf("%s/streams=%d", name, streams), func(b *testing.B) {
				benchScheduler(b, m, engine.SchedulerOptions{Parallel: 4, Context: 128, Batch: 64,
					Setup: func(r *engine.Runner) error {
						if err := r.EnableOffload(cpu.NewBackend(r.Pool(), plan.TotalBytes), plan); err != nil {
							return err
						}
						if !sparse {
							return nil
						}
						p, err := m.FilePredictor()
						if err != nil {
							return err
						}
						return r.EnableSparse(engine.Sparsity{Predictor: p, OnResidual: true})
					}}, streams)
			})
		}
	}
}

// BenchmarkSchedulerStreamsQ8 is BenchmarkSchedulerStreams at 1 and 8
// streams on the 1B Q8_0 model read into memory, in GGUF's rows and
// packed (LoadOptions.PackQ4; it packs Q8_0 where AVX-512 VNNI runs).
//
//	go test ./engine -run '^$' -bench SchedulerStreamsQ8 -benchtime 10x
func BenchmarkSchedulerStreamsQ8(b *testing.B) { benchStreamsPacked(b, benchModel(b, dtype.Q8_0)) }

// BenchmarkSchedulerStreamsQ4K is BenchmarkSchedulerStreamsQ8 for the 1B
// Q4_K model and the 1B models in llama.cpp's Q4_K_M and Q5_K_M mixes
// (Q4_K or Q5_K, and Q6_K for the output head and some layers' attn_v
// and ffn_down: synth.Config Mix), the types most GGUF downloads have;
// PackQ4 packs each type where its assembly kernels pay (cpu.X16Pays).
//
//	go test ./engine -run '^$' -bench SchedulerStreamsQ4K -benchtime 10x
func BenchmarkSchedulerStreamsQ4K(b *testing.B) {
	b.Run("Q4_K", func(b *testing.B) { benchStreamsPacked(b, benchModel(b, dtype.Q4_K)) })
	b.Run("Q4_K_M", func(b *testing.B) { benchStreamsPacked(b, benchModelMix(b, synth.MixQ4KM)) })
	b.Run("Q5_K_M", func(b *testing.B) { benchStreamsPacked(b, benchModelMix(b, synth.MixQ5KM)) })
}

// benchScheduler reports the aggregate decode tokens/s of streams
// concurrent clients (runStreams) on a scheduler of m with options o.
func benchScheduler(b *testing.B, m *engine.Model, o engine.SchedulerOptions, streams int) {
	sc, err := engine.NewScheduler(m, o)
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	total := 0
	for b.Loop() {
		total += runStreams(b, sc, streams)
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "tok/s")
}

// benchModelMix is benchModel in one of llama.cpp's mixes (synth.MixQ4KM,
// synth.MixQ5KM).
func benchModelMix(b testing.TB, mix string) string {
	t := dtype.Q4_K
	if mix == synth.MixQ5KM {
		t = dtype.Q5_K
	}
	return cachedModel(b, "llama-"+strings.ToLower(mix), synth.Config{Arch: "llama", Type: t, Mix: mix, Seed: 1})
}

func benchStreamsPacked(b *testing.B, path string) {
	for _, pack := range []bool{false, true} {
		m, err := engine.LoadWith(path, engine.LoadOptions{NoMmap: true, PackQ4: pack})
		if err != nil {
			b.Fatal(err)
		}
		for _, streams := range []int{1, 8} {
			b.Run(fmt.Sprintf("packed=%v/streams=%d", pack, streams), func(b *testing.B) {
				benchScheduler(b, m, engine.SchedulerOptions{Parallel: streams, Context: 128, Batch: 64}, streams)
			})
		}
		m.Close()
	}
}

var (
	streamCounts = []int{1, 4, 8, 16}
	streamsTable = flag.Bool("streams-table", false, "TestStreamsTable: print aggregate decode tokens/s per stream count")
)

// streamGen is the tokens each stream generates in a round.
const streamGen = 16

// runStreams has streams clients generate streamGen tokens each at once
// (a two-token prompt each, all different) and returns the tokens made.
func runStreams(tb testing.TB, sc *engine.Scheduler, streams int) int {
	p := engine.GenerateParams{MaxTokens: streamGen, IgnoreEOS: true, Sampler: engine.SamplerParams{TopP: 1, RepeatPenalty: 1}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := sc.Generate(context.Background(), []int32{1, int32(300 + i)}, p, nil)
			if err != nil {
				tb.Error(err)
				return
			}
			mu.Lock()
			total += len(res.Tokens)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return total
}

// TestStreamsTable prints BenchmarkSchedulerStreams' aggregate tokens/s
// per stream count and its ratio to one stream, from rounds that take
// every stream count in turn (medians kept), so that the machine's drift
// moves them all alike (goal: 8 streams ≥ 4× one). It fails nothing: it
// measures.
//
//	go test ./engine -run TestStreamsTable -streams-table -v
func TestStreamsTable(t *testing.T) {
	if !*streamsTable {
		t.Skip("run with -streams-table")
	}
	m, err := engine.LoadWith(benchModel(t, dtype.Q4_0), engine.LoadOptions{NoMmap: true, PackQ4: true}) // as stoke serve loads it on the CPU
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	scs := make([]*engine.Scheduler, len(streamCounts))
	for i, n := range streamCounts {
		sc, err := engine.NewScheduler(m, engine.SchedulerOptions{Parallel: n, Context: 128, Batch: 64})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		scs[i] = sc
		runStreams(t, sc, n) // warm up
	}
	const rounds = 7
	rates := make([][]float64, len(streamCounts))
	for range rounds {
		for i, n := range streamCounts {
			t0 := time.Now()
			made := runStreams(t, scs[i], n)
			rates[i] = append(rates[i], float64(made)/time.Since(t0).Seconds())
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "aggregate decode tok/s, %d tokens a stream, median of %d rounds\n", streamGen, rounds)
	base := 0.0
	for i, n := range streamCounts {
		slices.Sort(rates[i])
		med := rates[i][rounds/2]
		if i == 0 {
			base = med
		}
		fmt.Fprintf(&sb, "  streams=%-3d %7.1f tok/s  %5.2f×  (min %.1f, max %.1f)\n", n, med, med/base, rates[i][0], rates[i][rounds-1])
	}
	t.Log("\n" + sb.String())
}
