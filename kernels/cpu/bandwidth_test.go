package cpu_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// Decode is bound by memory bandwidth: a mat-vec reads each weight byte
// once. These benchmarks put the two side by side:
//
//	go test ./kernels/cpu -run '^$' -bench 'ReadBandwidth|MatVec'
//
// BenchmarkReadBandwidth's GB/s is the machine's DRAM read bandwidth (the
// buffer is far larger than any cache); BenchmarkMatVec/<dtype>/<threads>
// reports the weight bytes streamed per second, so its GB/s over the
// bandwidth figure is the fraction of the roofline a kernel reaches. Both
// also report MB/s (SetBytes). On a shared machine compare only figures
// from one run.

const (
	bandwidthBytes = 512 << 20
	matVecBytes    = 256 << 20
	matVecCols     = 4096
)

var benchThreads = []int{1, 2}

// sumTask sums a buffer with several independent accumulators, so the loop
// is bound by loads rather than by the add latency.
type sumBufTask struct {
	buf  []uint64
	sums [][8]uint64 // per worker; [0] used, the rest pads a cache line
}

func (s *sumBufTask) RunWorker(w, lo, hi int) {
	x := s.buf[lo:hi]
	var a, b, c, d uint64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		a += v[0]
		b += v[1]
		c += v[2]
		d += v[3]
	}
	for ; i < len(x); i++ {
		a += x[i]
	}
	s.sums[w][0] += a + b + c + d
}

var sink uint64

// reportGBs reports the bytes per second moved by the benchmark's loop as
// GB/s (10⁹ bytes), the unit memory bandwidth is quoted in.
func reportGBs(b *testing.B, bytesPerOp int) {
	if sec := b.Elapsed().Seconds(); sec > 0 && b.N > 0 {
		b.ReportMetric(float64(bytesPerOp)*float64(b.N)/sec/1e9, "GB/s")
	}
}

func BenchmarkReadBandwidth(b *testing.B) {
	buf := make([]uint64, bandwidthBytes/8)
	for i := range buf { // touch every page: untouched pages all map the zero page
		buf[i] = uint64(i)
	}
	defer runtime.GC()
	for _, threads := range benchThreads {
		b.Run(strconv.Itoa(threads), func(b *testing.B) {
			p := cpu.NewPool(threads)
			defer p.Close()
			t := &sumBufTask{buf: buf, sums: make([][8]uint64, threads)}
			b.SetBytes(bandwidthBytes)
			for b.Loop() {
				p.ParallelWorkers(len(buf), 64<<10, t) // 512 KB chunks
			}
			reportGBs(b, bandwidthBytes)
			for _, s := range t.sums {
				sink += s[0]
			}
		})
	}
}

func BenchmarkMatVec(b *testing.B) {
	for _, typ := range computable() {
		b.Run(typ.String(), func(b *testing.B) {
			rb, err := typ.RowBytes(matVecCols)
			if err != nil {
				b.Fatal(err)
			}
			rows := matVecBytes / int(rb)
			w := randomWeights(b, typ, rows, matVecCols)
			defer runtime.GC()
			rng := rand.New(rand.NewPCG(1, 1))
			x := randSlice(rng, matVecCols, 1)
			dst := make([]float32, rows)
			for _, threads := range benchThreads {
				b.Run(strconv.Itoa(threads), func(b *testing.B) {
					p := cpu.NewPool(threads)
					defer p.Close()
					b.SetBytes(int64(len(w)))
					b.ReportAllocs()
					p.MatVec(dst, w, typ, rows, matVecCols, x) // grows the pool's scratch
					for b.Loop() {
						p.MatVec(dst, w, typ, rows, matVecCols, x)
					}
					reportGBs(b, len(w))
				})
			}
		})
	}
}

// halfFields lists, per quantized type, the byte offsets within a block of
// its f16 scale fields, which random bytes could make Inf, NaN or
// subnormal (slow paths that real weights never take).
var halfFields = map[dtype.Type][]int{
	dtype.Q4_0: {0},
	dtype.Q4_1: {0, 2},
	dtype.Q5_0: {0},
	dtype.Q5_1: {0, 2},
	dtype.Q8_0: {0},
	dtype.Q4_K: {0, 2},
	dtype.Q5_K: {0, 2},
	dtype.Q6_K: {208},
}

// randomWeights returns rows×cols weights of type t that decode to finite,
// modest values, fast: random bytes with the scale fields overwritten
// (plain float types get random values in [−1, 1)). A type this function
// does not know the layout of gets a quantized random block tiled.
func randomWeights(b *testing.B, t dtype.Type, rows, cols int) []byte {
	b.Helper()
	rb, _ := t.RowBytes(uint64(cols))
	w := make([]byte, rows*int(rb))
	rng := rand.New(rand.NewPCG(uint64(t), 42))
	small := func() uint16 { return dtype.F32ToF16(float32(rng.Float64()*0.02 + 0.001)) }
	switch t {
	case dtype.F32:
		for i := 0; i < len(w); i += 4 {
			binary.LittleEndian.PutUint32(w[i:], math.Float32bits(float32(rng.Float64()*2-1)))
		}
		return w
	case dtype.F16, dtype.BF16:
		for i := 0; i < len(w); i += 2 {
			v := float32(rng.Float64()*2 - 1)
			h := dtype.F32ToF16(v)
			if t == dtype.BF16 {
				h = dtype.F32ToBF16(v)
			}
			binary.LittleEndian.PutUint16(w[i:], h)
		}
		return w
	}
	for i := 0; i+8 <= len(w); i += 8 {
		binary.LittleEndian.PutUint64(w[i:], rng.Uint64())
	}
	ts := t.TypeSize()
	switch offs, ok := halfFields[t]; {
	case ok:
		for blk := 0; blk < len(w); blk += ts {
			for _, o := range offs {
				binary.LittleEndian.PutUint16(w[blk+o:], small())
			}
		}
	case t == dtype.Q8_K: // f32 scale first
		for blk := 0; blk < len(w); blk += ts {
			binary.LittleEndian.PutUint32(w[blk:], math.Float32bits(0.01))
		}
	default:
		tile := make([]byte, rb)
		src := randSlice(rng, cols, 1)
		if err := dtype.Quantize(t, src, tile); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < len(w); i += len(tile) {
			copy(w[i:], tile)
		}
	}
	return w
}

// BenchmarkRoofline/<dtype>/<threads> alternates, in every iteration, one
// read of the bandwidth buffer and one MatVec, and reports both rates and
// their ratio (the fraction of the measured read bandwidth the mat-vec
// reaches). Interleaving makes the ratio robust against other tenants of
// a shared machine, whose load shifts within a run:
//
//	go test ./kernels/cpu -run '^$' -bench Roofline -benchtime 10x
func BenchmarkRoofline(b *testing.B) {
	buf := make([]uint64, bandwidthBytes/8)
	for i := range buf {
		buf[i] = uint64(i)
	}
	for _, typ := range []dtype.Type{dtype.Q4_0, dtype.Q8_0, dtype.Q4_K, dtype.Q6_K, dtype.F16, dtype.F32} {
		b.Run(typ.String(), func(b *testing.B) {
			rb, err := typ.RowBytes(matVecCols)
			if err != nil {
				b.Fatal(err)
			}
			rows := matVecBytes / int(rb)
			w := randomWeights(b, typ, rows, matVecCols)
			defer runtime.GC()
			x := randSlice(rand.New(rand.NewPCG(1, 1)), matVecCols, 1)
			dst := make([]float32, rows)
			for _, threads := range benchThreads {
				b.Run(strconv.Itoa(threads), func(b *testing.B) {
					p := cpu.NewPool(threads)
					defer p.Close()
					t := &sumBufTask{buf: buf, sums: make([][8]uint64, threads)}
					p.MatVec(dst, w, typ, rows, matVecCols, x)
					var tRead, tMV time.Duration
					for b.Loop() {
						t0 := time.Now()
						p.ParallelWorkers(len(buf), 64<<10, t)
						t1 := time.Now()
						p.MatVec(dst, w, typ, rows, matVecCols, x)
						tRead += t1.Sub(t0)
						tMV += time.Since(t1)
					}
					read := float64(bandwidthBytes) * float64(b.N) / tRead.Seconds() / 1e9
					mv := float64(len(w)) * float64(b.N) / tMV.Seconds() / 1e9
					b.ReportMetric(read, "read-GB/s")
					b.ReportMetric(mv, "matvec-GB/s")
					b.ReportMetric(mv/read, "ratio")
					for _, s := range t.sums {
						sink += s[0]
					}
				})
			}
		})
	}
}
