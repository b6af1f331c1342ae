package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// cacheValue reads value i of a cache as the kernel sees it.
func cacheValue(c cpu.KV, i int) float64 {
	if c.F16 != nil {
		return float64(dtype.F16ToF32(c.F16[i]))
	}
	return float64(c.F32[i])
}

func newKV(f16 bool, n int) cpu.KV {
	if f16 {
		return cpu.KV{F16: make([]uint16, n)}
	}
	return cpu.KV{F32: make([]float32, n)}
}

// attentionRef is the formula of Attention's doc comment in float64.
func attentionRef(q []float32, nTok, startPos int, k, v cpu.KV, nHeads, nKVHeads, hd int, scale float32) []float64 {
	out := make([]float64, len(q))
	width := nKVHeads * hd
	for i := range nTok {
		for h := range nHeads {
			g := h / (nHeads / nKVHeads)
			qv := q[(i*nHeads+h)*hd:]
			n := startPos + i + 1
			s := make([]float64, n)
			m := math.Inf(-1)
			for j := range s {
				var d float64
				for e := range hd {
					d += float64(qv[e]) * cacheValue(k, j*width+g*hd+e)
				}
				s[j] = float64(scale) * d
				m = math.Max(m, s[j])
			}
			var sum float64
			for j := range s {
				s[j] = math.Exp(s[j] - m)
				sum += s[j]
			}
			o := out[(i*nHeads+h)*hd:]
			for j := range s {
				for e := range hd {
					o[e] += s[j] / sum * cacheValue(v, j*width+g*hd+e)
				}
			}
		}
	}
	return out
}

func TestAttention(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 9))
		pools := []*cpu.Pool{cpu.NewPool(1), cpu.NewPool(3)}
		defer func() {
			for _, p := range pools {
				p.Close()
			}
		}()
		type shape struct{ nTok, startPos int }
		for _, hd := range []int{8, 16, 64, 128} {
			for _, heads := range [][2]int{{4, 4}, {4, 2}, {8, 2}} { // GQA ratios 1, 2, 4
				for _, f16 := range []bool{false, true} {
					for _, sh := range []shape{{1, 0}, {1, 9}, {5, 0}, {4, 7}} {
						nHeads, nKVHeads := heads[0], heads[1]
						ctx := sh.startPos + sh.nTok + 3 // unused positions at the end
						width := nKVHeads * hd
						k, v := newKV(f16, ctx*width), newKV(f16, ctx*width)
						// Fill the cache: the earlier tokens, then this batch.
						k.Store(0, width, randSlice(rng, (sh.startPos+sh.nTok)*width, 1))
						v.Store(0, width, randSlice(rng, (sh.startPos+sh.nTok)*width, 1))
						q := randSlice(rng, sh.nTok*nHeads*hd, 1)
						scale := float32(1 / math.Sqrt(float64(hd)))
						want := attentionRef(q, sh.nTok, sh.startPos, k, v, nHeads, nKVHeads, hd, scale)
						for _, p := range pools {
							name := fmt.Sprintf("hd %d heads %d/%d f16 %v tok %d at %d threads %d",
								hd, nHeads, nKVHeads, f16, sh.nTok, sh.startPos, p.Threads())
							ow, out := guarded(len(q), guard)
							p.Attention(out, q, sh.nTok, sh.startPos, k, v, nHeads, nKVHeads, hd, scale)
							checkGuards(t, name, ow, len(q), guard)
							for i := range out {
								if math.Abs(float64(out[i])-want[i]) > 2e-5 {
									t.Fatalf("%s: out[%d] = %g, want %g", name, i, out[i], want[i])
								}
							}
						}
					}
				}
			}
		}
	})
}

// TestAttentionBatch: sequences of different lengths and positions (one
// with no tokens) in one AttentionBatch give each the bits Attention
// gives it alone, with F32 and F16 caches, on one thread and three.
func TestAttentionBatch(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(2, 9))
		const hd, nHeads, nKVHeads = 16, 8, 2
		width := nKVHeads * hd
		scale := float32(0.25)
		for _, f16 := range []bool{false, true} {
			for _, threads := range []int{1, 3} {
				p := cpu.NewPool(threads)
				var seqs []cpu.AttnSeq
				for _, sh := range [][2]int{{1, 0}, {3, 5}, {0, 2}, {1, 17}, {6, 0}} {
					nTok, start := sh[0], sh[1]
					ctx := start + nTok + 2
					k, v := newKV(f16, ctx*width), newKV(f16, ctx*width)
					k.Store(0, width, randSlice(rng, (start+nTok)*width, 1))
					v.Store(0, width, randSlice(rng, (start+nTok)*width, 1))
					q := randSlice(rng, nTok*nHeads*hd, 1)
					seqs = append(seqs, cpu.AttnSeq{Out: make([]float32, len(q)), Q: q, NTok: nTok, Start: start, K: k, V: v})
				}
				p.AttentionBatch(seqs, nHeads, nKVHeads, hd, scale)
				for i, sq := range seqs {
					want := make([]float32, len(sq.Q))
					p.Attention(want, sq.Q, sq.NTok, sq.Start, sq.K, sq.V, nHeads, nKVHeads, hd, scale)
					for j := range want {
						if math.Float32bits(want[j]) != math.Float32bits(sq.Out[j]) {
							t.Fatalf("f16 %v threads %d seq %d: out[%d] = %v batched, %v alone", f16, threads, i, j, sq.Out[j], want[j])
						}
					}
				}
				p.Close()
			}
		}
	})
}

// TestAttentionConcurrent: goroutines sharing a pool each get their own
// results (the pool's task state is set only under its lock; run with
// -race).
func TestAttentionConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 9))
	const hd, nHeads, nKVHeads, nTok, start = 16, 4, 2, 3, 5
	width := nKVHeads * hd
	p := cpu.NewPool(2)
	defer p.Close()
	type job struct {
		q, want []float32
		k, v    cpu.KV
	}
	jobs := make([]job, 4)
	for i := range jobs {
		j := &jobs[i]
		j.k, j.v = newKV(false, (start+nTok)*width), newKV(false, (start+nTok)*width)
		j.k.Store(0, width, randSlice(rng, (start+nTok)*width, 1))
		j.v.Store(0, width, randSlice(rng, (start+nTok)*width, 1))
		j.q = randSlice(rng, nTok*nHeads*hd, 1)
		j.want = make([]float32, len(j.q))
		p.Attention(j.want, j.q, nTok, start, j.k, j.v, nHeads, nKVHeads, hd, 0.25)
	}
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() {
			j := &jobs[i]
			out := make([]float32, len(j.q))
			for range 50 {
				p.Attention(out, j.q, nTok, start, j.k, j.v, nHeads, nKVHeads, hd, 0.25)
				for e := range out {
					if out[e] != j.want[e] {
						t.Errorf("goroutine %d: out[%d] = %v, want %v", i, e, out[e], j.want[e])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// Unused cache positions past startPos+nTok must not be read: poison them.
func TestAttentionIsCausal(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(2, 9))
		p := cpu.NewPool(2)
		defer p.Close()
		const hd, heads, ctx = 16, 2, 12
		width := heads * hd
		for _, f16 := range []bool{false, true} {
			k, v := newKV(f16, ctx*width), newKV(f16, ctx*width)
			k.Store(0, width, randSlice(rng, ctx*width, 1))
			v.Store(0, width, randSlice(rng, ctx*width, 1))
			nan := make([]float32, 4*width)
			for i := range nan {
				nan[i] = float32(math.NaN())
			}
			k.Store(ctx-4, width, nan)
			v.Store(ctx-4, width, nan)
			q := randSlice(rng, 3*heads*hd, 1)
			out := make([]float32, len(q))
			p.Attention(out, q, 3, ctx-7, k, v, heads, heads, hd, 0.25)
			want := attentionRef(q, 3, ctx-7, k, v, heads, heads, hd, 0.25)
			for i := range out {
				if math.Abs(float64(out[i])-want[i]) > 2e-5 {
					t.Fatalf("f16 %v: out[%d] = %g, want %g", f16, i, out[i], want[i])
				}
			}
		}
	})
}

func TestKVStore(t *testing.T) {
	src := []float32{1, -2.5, 1e-8, 70000, 0.1, 3}
	c16, c32 := newKV(true, 12), newKV(false, 12)
	c16.Store(1, 3, src)
	c32.Store(1, 3, src)
	for i, v := range src {
		if got, want := c16.F16[3+i], dtype.F32ToF16(v); got != want {
			t.Errorf("F16[%d] = %#04x, want %#04x", 3+i, got, want)
		}
		if c32.F32[3+i] != v {
			t.Errorf("F32[%d] = %g, want %g", 3+i, c32.F32[3+i], v)
		}
	}
	for _, i := range []int{0, 1, 2, 9, 10, 11} {
		if c16.F16[i] != 0 || c32.F32[i] != 0 {
			t.Errorf("value %d outside the stored positions changed", i)
		}
	}
	for name, f := range map[string]func(){
		"partial position": func() { c32.Store(0, 4, src) },
		"past the end":     func() { c16.Store(3, 3, src) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestAttentionNoAllocs(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 9))
		p := cpu.NewPool(2)
		defer p.Close()
		const hd, heads, kvHeads, ctx = 64, 8, 2, 100
		width := kvHeads * hd
		for _, f16 := range []bool{false, true} {
			k, v := newKV(f16, ctx*width), newKV(f16, ctx*width)
			k.Store(0, width, randSlice(rng, ctx*width, 1))
			v.Store(0, width, randSlice(rng, ctx*width, 1))
			q := randSlice(rng, 4*heads*hd, 1)
			out := make([]float32, len(q))
			p.Attention(out, q, 4, ctx-4, k, v, heads, kvHeads, hd, 0.125) // warm-up grows the scratch
			a := testing.AllocsPerRun(10, func() {
				p.Attention(out, q, 4, ctx-4, k, v, heads, kvHeads, hd, 0.125)
				p.Attention(out[:heads*hd], q[:heads*hd], 1, 50, k, v, heads, kvHeads, hd, 0.125)
			})
			if a != 0 {
				t.Errorf("f16 %v: %v allocations", f16, a)
			}
		}
	})
}
