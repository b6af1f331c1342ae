package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// TestMatMulQ4Tile checks MatMul's Q4_0 tiles (q4tile.go): rows longer
// than one slice of 64 blocks (whole slices, a partial last slice, every
// tail of 1–3 blocks), odd row counts that no chunk or tile divides, 1 to
// 17 inputs (groups of eight in tiles, the rest by the other kernels),
// misaligned weights and guarded dst. Every (row, input) result must be
// the bits MatVec gives, on both implementations, and the same bits
// with the tiles switched off.
func TestMatMulQ4Tile(t *testing.T) {
	r := rand.New(rand.NewPCG(71, 72))
	p := cpu.NewPool(3)
	defer p.Close()
	const typ = dtype.Q4_0
	for _, nb := range []int{64, 65, 66, 67, 68, 128, 129, 131, 200} {
		cols := 32 * nb
		for _, rows := range []int{1, 7, 33, 70} {
			w := rawMatrix(r, typ, rows, cols, rows%2)
			for n := 1; n <= 17; n++ {
				if rows == 70 && n%4 != 0 && n != 17 {
					continue // keep the test short: 4, 8, 12, 16, 17
				}
				name := fmt.Sprintf("%dx%d/n%d", rows, cols, n)
				x := make([]float32, n*cols)
				randVec(r, x)
				ms := impls()
				results := make([][]float32, len(ms))
				for gi, m := range ms {
					func() {
						defer m.use()()
						dw, dst := guarded(n*rows, guard)
						p.MatMul(dst, w, typ, rows, cols, x, n)
						checkGuards(t, name+" dst", dw, n*rows, guard)
						mv := make([]float32, rows)
						for i := range n {
							p.MatVec(mv, w, typ, rows, cols, x[i*cols:(i+1)*cols])
							for k := range rows {
								if got, want := dst[i*rows+k], mv[k]; !sameBits(got, want) {
									t.Fatalf("%s %s: dst[%d·%d+%d] = %v, MatVec gives %v (must be the same bits)", name, m.name, i, rows, k, got, want)
								}
							}
						}
						off := make([]float32, n*rows)
						func() {
							defer cpu.SetQ4Tile(false)()
							p.MatMul(off, w, typ, rows, cols, x, n)
						}()
						for i := range off {
							if !sameBits(dst[i], off[i]) {
								t.Fatalf("%s %s: element %d: %v in tiles, %v without", name, m.name, i, dst[i], off[i])
							}
						}
						results[gi] = dst
					}()
				}
				for gi := 1; gi < len(ms); gi++ {
					for i := range results[0] {
						if a, g := results[0][i], results[gi][i]; !sameBits(a, g) {
							t.Fatalf("%s: element %d: %s vs %s output mismatch: %v vs %v", name, i, ms[0].name, ms[gi].name, a, g)
						}
					}
				}
			}
		}
	}
}

// sameBits reports whether a and b are the same float32 bits, or both NaN.
func sameBits(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// BenchmarkMatMulQ4Tile runs MatMul on a 512×8192 Q4_0 matrix (the shape
// of a 1B model's FFN down projection, rows cut by four) with 8 and 32
// inputs on one thread, with and without the tiles (SetQ4Tile).
//
//	go test ./kernels/cpu -run '^$' -bench MatMulQ4Tile
func BenchmarkMatMulQ4Tile(b *testing.B) {
	const rows, cols = 512, 8192
	w := randomWeights(b, dtype.Q4_0, rows, cols)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{8, 32} {
		for _, tile := range []bool{false, true} {
			b.Run(fmt.Sprintf("n=%d/tile=%v", n, tile), func(b *testing.B) {
				defer cpu.SetQ4Tile(tile)()
				p := cpu.NewPool(1)
				defer p.Close()
				x := randSlice(rng, n*cols, 1)
				dst := make([]float32, n*rows)
				p.MatMul(dst, w, dtype.Q4_0, rows, cols, x, n)
				b.ReportAllocs()
				for b.Loop() {
					p.MatMul(dst, w, dtype.Q4_0, rows, cols, x, n)
				}
				b.ReportMetric(float64(rows*cols*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
		}
	}
}
