package cpu_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// randQ8_0 returns a rows×cols Q8_0 matrix of random quants (−128 and
// 127 included) and scales as randQ4_0's.
func randQ8_0(rng *rand.Rand, rows, cols int) []byte {
	w := make([]byte, rows*cols/32*34)
	for i := range w {
		w[i] = byte(rng.Uint32())
	}
	for b := 0; b < len(w); b += 34 {
		d := float32(rng.Float64()*0.02 + 0.001)
		if rng.IntN(8) == 0 {
			d = -d
		}
		binary.LittleEndian.PutUint16(w[b:], dtype.F32ToF16(d))
	}
	return w
}

// TestMatMulQ8x16 is TestMatMulQ4x16 for packed Q8_0: the layout round
// trip, the exact arithmetic, and the same bits for n inputs and for
// one, assembly and pure Go, in a set of matrices and alone.
func TestMatMulQ8x16(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	p := cpu.NewPool(3)
	defer p.Close()
	for _, shape := range [][2]int{{16, 32}, {48, 96}, {64, 2048}} {
		rows, cols := shape[0], shape[1]
		w := randQ8_0(rng, rows, cols)
		packed := bytes.Clone(w)
		cpu.PackQ8x16(packed, rows, cols)
		back := bytes.Clone(packed)
		cpu.UnpackQ8x16(back, rows, cols)
		if !bytes.Equal(back, w) || bytes.Equal(packed, w) {
			t.Fatalf("%v: the pack round trip failed", shape)
		}
		rb, nb := cols/32*34, cols/32
		for _, n := range []int{1, 2, 3, 7, 8, 13} {
			t.Run(fmt.Sprintf("%dx%d/n=%d", rows, cols, n), func(t *testing.T) {
				x := randSlice(rng, n*cols, 1)
				got := make([]float32, n*rows)
				p.MatMulQ8x16(got, packed, rows, cols, x, n)
				restore := cpu.SetGeneric(true)
				gen := make([]float32, n*rows)
				p.MatMulQ8x16(gen, packed, rows, cols, x, n)
				restore()
				for i := range n {
					var v cpu.QVec
					v.Quantize(dtype.Q8_0, x[i*cols:(i+1)*cols])
					ys := v.Blocks()
					one := make([]float32, rows)
					p.MatMulQ8x16(one, packed, rows, cols, x[i*cols:(i+1)*cols], 1)
					for r := range rows {
						var exact, scale float64
						for b := range nb {
							wb, yb := w[r*rb+34*b:r*rb+34*b+34], ys[34*b:34*b+34]
							s := 0
							for e := range 32 {
								s += int(int8(wb[2+e])) * int(int8(yb[2+e]))
							}
							term := float64(s) * float64(dtype.F16ToF32(binary.LittleEndian.Uint16(wb))) * float64(dtype.F16ToF32(binary.LittleEndian.Uint16(yb)))
							exact += term
							scale += math.Abs(term)
						}
						g := got[i*rows+r]
						if math.Float32bits(g) != math.Float32bits(one[r]) || math.Float32bits(g) != math.Float32bits(gen[i*rows+r]) {
							t.Fatalf("input %d row %d: %v with %d inputs, %v alone, %v in pure Go", i, r, g, n, one[r], gen[i*rows+r])
						}
						if math.Abs(float64(g)-exact) > 1e-6*scale+1e-30 {
							t.Fatalf("input %d row %d: %v, exact %v", i, r, g, exact)
						}
					}
				}
			})
		}
	}
}
