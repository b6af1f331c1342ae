//go:build linux

package cuda_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/kernels"
	"github.com/stokehq/stoke/kernels/cuda"
	"github.com/stokehq/stoke/models/dtype"
)

// GPU benchmarks (STOKE_GPU=1; they skip otherwise). Each reports device
// time per op (CUDA events around the whole run), the bytes of weights
// read per second, and that as a share of the device's read bandwidth,
// measured once by a streaming read kernel (BenchmarkReadBandwidth).
//
// Targets (issue 5, H100): dense GEMV ≥ 0.85 of the read bandwidth;
// gathered GEMV ≥ 0.8/share times faster than dense down to 5% active rows
// ("speedup" metric; ideal 1/share).
//
// The "big" matrices hold about 1 GiB of weights (4096 columns), so that
// even 2% of the rows is a few MiB and launch gaps stay small next to the
// transfer; "7b" is a 7B FFN gate/up matrix (11008×4096).

var (
	benchOnce sync.Once
	benchGPU  *cuda.Backend
	benchPeak float64 // bytes/s
	benchErr  error
	benchEmu  bool // STOKE_BENCH_EMU=1: the emulator, tiny shapes (checks the benchmark code only)
)

func gpuForBench(b *testing.B) (*cuda.Backend, float64) {
	benchEmu = os.Getenv("STOKE_GPU") != "1" && os.Getenv("STOKE_BENCH_EMU") == "1"
	if os.Getenv("STOKE_GPU") != "1" && !benchEmu {
		b.Skip("set STOKE_GPU=1 to run the GPU benchmarks (needs an NVIDIA GPU)")
	}
	benchOnce.Do(func() {
		if benchEmu {
			lib, err := cuda.BuildEmulator()
			if err != nil {
				benchErr = err
				return
			}
			benchGPU, benchErr = cuda.OpenEmulator(lib, 4, false)
		} else {
			benchGPU, benchErr = cuda.Open(cuda.Config{})
		}
		if benchErr != nil {
			return
		}
		n := min(benchGPU.Info().FreeBytes/8, 2<<30)
		if benchEmu {
			n = 1 << 20
		}
		benchPeak, benchErr = benchGPU.ReadBandwidth(n, 20)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchGPU, benchPeak
}

func BenchmarkReadBandwidth(b *testing.B) {
	_, peak := gpuForBench(b)
	b.ReportMetric(peak/1e9, "GB/s")
}

// randomBytes fills n bytes quickly; the values do not matter for speed.
func randomBytes(n int64, seed uint64) []byte {
	buf := make([]byte, n)
	c := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = c.Read(buf)
	return buf
}

type benchMat struct {
	w          kernels.Buffer
	rows, cols int
	rb         int64
}

var benchMats = map[string]*benchMat{}

// matrix returns (and keeps) a device matrix of type t.
func matrix(b *testing.B, g *cuda.Backend, t dtype.Type, shape string) *benchMat {
	key := t.String() + "/" + shape
	if m := benchMats[key]; m != nil {
		return m
	}
	cols := 4096
	if benchEmu {
		cols = 256
	}
	rb, _ := t.RowBytes(uint64(cols))
	rows := 11008
	if shape == "big" {
		rows = int((1 << 30) / rb)
	}
	if benchEmu {
		rows = 100
	}
	w, err := g.Alloc(int64(rows) * int64(rb))
	if err != nil {
		b.Fatal(err)
	}
	g.Upload(w, randomBytes(int64(rows)*int64(rb), uint64(t)))
	if err := g.Sync(); err != nil {
		b.Fatal(err)
	}
	m := &benchMat{w: w, rows: rows, cols: cols, rb: int64(rb)}
	benchMats[key] = m
	return m
}

func alloc(b *testing.B, g *cuda.Backend, data []byte) kernels.Buffer {
	buf, err := g.Alloc(int64(len(data)))
	if err != nil {
		b.Fatal(err)
	}
	g.Upload(buf, data)
	if err := g.Sync(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Free(buf) })
	return buf
}

// activeRows returns share·rows distinct sorted row numbers.
func activeRows(rows int, share float64, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	perm := rng.Perm(rows)[:max(1, int(share*float64(rows)))]
	idx := make([]int32, len(perm))
	for i, p := range perm {
		idx[i] = int32(p)
	}
	slices.Sort(idx)
	return idx
}

// deviceTime runs op b.N times between device events and returns the
// device time per op. The benchmark timer covers the same span (Time waits
// for the end event), so ns/op is wall time including completion.
func deviceTime(b *testing.B, g *cuda.Backend, op func()) time.Duration {
	op() // warm up
	if err := g.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	d, err := g.Time(func() {
		for range b.N {
			op()
		}
	})
	b.StopTimer()
	if err == nil {
		err = g.Sync()
	}
	if err != nil {
		b.Fatal(err)
	}
	return d / time.Duration(max(b.N, 1))
}

func report(b *testing.B, per time.Duration, bytes int64, peak float64) {
	bw := float64(bytes) / per.Seconds()
	b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/op")
	b.ReportMetric(bw/1e9, "GB/s")
	b.ReportMetric(bw/peak, "peak-share")
}

var benchShares = []float64{0.5, 0.25, 0.1, 0.05, 0.02}

// BenchmarkGEMV: dense MatMul (n=1) and MatVecRows over active shares.
func BenchmarkGEMV(b *testing.B) {
	for _, t := range matTypes {
		for _, shape := range []string{"big", "7b"} {
			b.Run(fmt.Sprintf("%s/%s", t, shape), func(b *testing.B) {
				g, peak := gpuForBench(b)
				m := matrix(b, g, t, shape)
				x := alloc(b, g, f32b(make([]float32, m.cols)))
				dst := alloc(b, g, make([]byte, 4*m.rows))
				var dense time.Duration
				b.Run("dense", func(b *testing.B) {
					dense = deviceTime(b, g, func() { g.MatMul(dst, m.w, t, m.rows, m.cols, x, 1) })
					report(b, dense, int64(m.rows)*m.rb, peak)
				})
				for _, s := range benchShares {
					b.Run(fmt.Sprintf("gathered-%g%%", s*100), func(b *testing.B) {
						idx := activeRows(m.rows, s, 3)
						ib := alloc(b, g, i32b(idx))
						per := deviceTime(b, g, func() { g.MatVecRows(dst, m.w, t, m.cols, ib, len(idx), x) })
						report(b, per, int64(len(idx))*m.rb, peak)
						if dense > 0 {
							b.ReportMetric(dense.Seconds()/per.Seconds(), "speedup")
							b.ReportMetric(0.8/s, "speedup-target")
						}
					})
				}
			})
		}
	}
}

// BenchmarkMatMul8: eight inputs at once (weights read once per call).
func BenchmarkMatMul8(b *testing.B) {
	for _, t := range matTypes {
		b.Run(t.String(), func(b *testing.B) {
			g, peak := gpuForBench(b)
			m := matrix(b, g, t, "7b")
			x := alloc(b, g, f32b(make([]float32, 8*m.cols)))
			dst := alloc(b, g, make([]byte, 4*8*m.rows))
			per := deviceTime(b, g, func() { g.MatMul(dst, m.w, t, m.rows, m.cols, x, 8) })
			report(b, per, int64(m.rows)*m.rb, peak)
		})
	}
}

// BenchmarkAxpyRows: the sparse down projection over active
// neuron-major rows (4096 columns).
func BenchmarkAxpyRows(b *testing.B) {
	for _, t := range matTypes {
		b.Run(t.String(), func(b *testing.B) {
			g, peak := gpuForBench(b)
			m := matrix(b, g, t, "7b")
			dst := alloc(b, g, make([]byte, 4*m.cols))
			for _, s := range append([]float64{1}, benchShares...) {
				b.Run(fmt.Sprintf("active-%g%%", s*100), func(b *testing.B) {
					idx := activeRows(m.rows, s, 5)
					ib := alloc(b, g, i32b(idx))
					cb := alloc(b, g, f32b(make([]float32, len(idx))))
					per := deviceTime(b, g, func() { g.AxpyRows(dst, m.w, t, m.cols, ib, len(idx), cb) })
					report(b, per, int64(len(idx))*m.rb, peak)
				})
			}
		})
	}
}

// BenchmarkAttention: one decode token against a 4096-position f16 cache
// (32 heads, 8 KV heads, 128 values).
func BenchmarkAttention(b *testing.B) {
	g, peak := gpuForBench(b)
	ctx, heads, kvh, hd := 4096, 32, 8, 128
	if benchEmu {
		ctx = 64
	}
	k := alloc(b, g, make([]byte, 2*ctx*kvh*hd))
	v := alloc(b, g, make([]byte, 2*ctx*kvh*hd))
	q := alloc(b, g, make([]byte, 4*heads*hd))
	out := alloc(b, g, make([]byte, 4*heads*hd))
	per := deviceTime(b, g, func() { g.Attention(out, q, 1, ctx-1, k, v, dtype.F16, heads, kvh, hd, 0.088) })
	report(b, per, int64(2*2*ctx*kvh*hd), peak)
}
