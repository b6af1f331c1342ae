package cpu_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// BenchmarkMatMul/<dtype>/n=<inputs> runs MatMul on a 512×2048 matrix with
// n inputs on one thread: compute-bound, the weights (0.3–4 MiB) stay in
// cache. Reported: multiply-adds per second
// (weights × inputs). multi=false runs the row kernel per input (SetMulti),
// the comparison within one run that a shared machine allows; on a busy
// machine compare the best of several runs (-count).
//
//	go test ./kernels/cpu -run '^$' -bench MatMul -benchtime 20x
func BenchmarkMatMul(b *testing.B) {
	const rows, cols = 512, 2048
	for _, typ := range []dtype.Type{dtype.Q4_0, dtype.Q8_0, dtype.Q4_K, dtype.Q6_K, dtype.Q4_1, dtype.Q5_0, dtype.F16, dtype.F32} {
		w := randomWeights(b, typ, rows, cols)
		rng := rand.New(rand.NewPCG(3, 4))
		for _, n := range []int{1, 2, 4, 8, 32} {
			for _, multi := range []bool{false, true} {
				b.Run(fmt.Sprintf("%s/n=%d/multi=%v", typ, n, multi), func(b *testing.B) {
					defer cpu.SetMulti(multi)()
					p := cpu.NewPool(1)
					defer p.Close()
					x := randSlice(rng, n*cols, 1)
					dst := make([]float32, n*rows)
					p.MatMul(dst, w, typ, rows, cols, x, n)
					b.ReportAllocs()
					for b.Loop() {
						p.MatMul(dst, w, typ, rows, cols, x, n)
					}
					sec := b.Elapsed().Seconds()
					b.ReportMetric(float64(rows*cols*n)*float64(b.N)/sec/1e9, "GMAC/s")
				})
			}
		}
	}
}

// BenchmarkMatMulDRAM runs MatMul with 1, 2, 4 and 8 inputs on 2 threads
// over 48 Q4_0 matrices of a 1B model's FFN shapes, 5632×2048 (gate, up)
// and 2048×5632 (down, whose eight-input products go in tiles), 311 MiB
// in all, one after another, so that the weights come from DRAM as in a
// decode step, and over one of them (6.5 MiB, from cache). With several
// inputs the kernels are compute-bound; the gap between the two is time
// lost waiting on memory (see matMulAhead).
//
//	go test ./kernels/cpu -run '^$' -bench MatMulDRAM -benchtime 40x
func BenchmarkMatMulDRAM(b *testing.B) {
	const mats = 48
	ws := make([][]byte, mats)
	for i := range ws {
		ws[i] = randomWeights(b, dtype.Q4_0, 5632, 2048)
	}
	p := cpu.NewPool(2)
	defer p.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, shape := range [][2]int{{5632, 2048}, {2048, 5632}} {
		rows, cols := shape[0], shape[1]
		for _, n := range []int{1, 2, 4, 8} {
			for _, set := range [][][]byte{ws, ws[:1]} {
				where := "dram"
				if len(set) == 1 {
					where = "cache"
				}
				b.Run(fmt.Sprintf("%dx%d/n=%d/%s", rows, cols, n, where), func(b *testing.B) {
					x := randSlice(rng, n*cols, 1)
					dst := make([]float32, n*rows)
					k := 0
					for b.Loop() {
						p.MatMul(dst, set[k%len(set)], dtype.Q4_0, rows, cols, x, n)
						k++
					}
					b.ReportMetric(float64(rows*cols*n*k)/b.Elapsed().Seconds()/1e9, "GMAC/s")
				})
			}
		}
	}
}

// BenchmarkMatMulQ4x16 puts the packed Q4_0 drivers (MatMulQ4x16) against
// the row layout's (MatVec for one input, MatMul for more) on the 1B
// model's FFN shapes, in cache (one matrix) and from memory (48 matrices,
// 311 MB, cycled), on 2 threads. GMAC/s is rows·cols·n per second.
//
//	go test ./kernels/cpu -run '^$' -bench MatMulQ4x16
func BenchmarkMatMulQ4x16(b *testing.B) { benchMatMulPacked(b, dtype.Q4_0) }

// BenchmarkMatMulQ8x16 is BenchmarkMatMulQ4x16 for packed Q8_0
// (MatMulQ8x16; 48 matrices are 587 MB).
func BenchmarkMatMulQ8x16(b *testing.B) { benchMatMulPacked(b, dtype.Q8_0) }

// BenchmarkMatMulQ4Kx16 is BenchmarkMatMulQ4x16 for packed Q4_K
// (MatMulPackedSet; 48 matrices are 311 MB).
func BenchmarkMatMulQ4Kx16(b *testing.B) { benchMatMulPacked(b, dtype.Q4_K) }

// BenchmarkMatMulQ5Kx16 is BenchmarkMatMulQ4x16 for packed Q5_K
// (MatMulPackedSet; 48 matrices are 380 MB).
func BenchmarkMatMulQ5Kx16(b *testing.B) { benchMatMulPacked(b, dtype.Q5_K) }

// BenchmarkMatMulQ6Kx16 is BenchmarkMatMulQ4x16 for packed Q6_K
// (MatMulPackedSet; 48 matrices are 454 MB).
func BenchmarkMatMulQ6Kx16(b *testing.B) { benchMatMulPacked(b, dtype.Q6_K) }

// randPacked makes a random rows×cols matrix of each packed type.
var randPacked = map[dtype.Type]func(*rand.Rand, int, int) []byte{
	dtype.Q4_0: randQ4_0, dtype.Q8_0: randQ8_0, dtype.Q4_K: randQ4_K, dtype.Q5_K: randQ5_K, dtype.Q6_K: randQ6_K,
}

func benchMatMulPacked(b *testing.B, t dtype.Type) {
	const mats = 48
	rng := rand.New(rand.NewPCG(3, 4))
	p := cpu.NewPool(2)
	defer p.Close()
	for _, shape := range [][2]int{{5632, 2048}, {2048, 5632}} {
		rows, cols := shape[0], shape[1]
		ws := make([][]byte, mats)
		pks := make([][]byte, mats)
		for i := range ws {
			ws[i] = randPacked[t](rng, rows, cols)
			pks[i] = bytes.Clone(ws[i])
			cpu.PackX16(t, pks[i], rows, cols)
		}
		for _, n := range []int{1, 8} {
			for _, where := range []string{"cache", "dram"} {
				for _, layout := range []string{"rows", "x16"} {
					set := ws
					if layout == "x16" {
						set = pks
					}
					if where == "cache" {
						set = set[:1]
					}
					b.Run(fmt.Sprintf("%dx%d/n=%d/%s/%s", rows, cols, n, where, layout), func(b *testing.B) {
						x := randSlice(rng, n*cols, 1)
						dst := make([]float32, n*rows)
						ps := []cpu.Q4x16Product{{Dst: dst, Rows: rows}}
						k := 0
						for b.Loop() {
							w := set[k%len(set)]
							switch {
							case layout == "x16":
								ps[0].W = w
								p.MatMulPackedSet(t, ps, cols, x, n)
							case n == 1:
								p.MatVec(dst, w, t, rows, cols, x)
							default:
								p.MatMul(dst, w, t, rows, cols, x, n)
							}
							k++
						}
						b.ReportMetric(float64(rows*cols*n*k)/b.Elapsed().Seconds()/1e9, "GMAC/s")
					})
				}
			}
		}
	}
}
