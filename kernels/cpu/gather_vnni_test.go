package cpu_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// TestDotRowsGroupVNNI checks MatVecRows' four-row Q4_0 kernel with VNNI
// on (dotQ4_0Q8_0r4VNNI) against the VNNI row kernel, bit for bit, on
// random rows at random (odd) offsets, for 1 to 40 blocks and longer rows
// (every quad loop and tail), with some block scales made +0, −0, tiny or
// large and some inputs zero, and with the same row more than once.
func TestDotRowsGroupVNNI(t *testing.T) {
	if !cpu.HaveVNNI() || !cpu.HaveAsm() {
		t.Skip("no VNNI kernels on this CPU or build")
	}
	defer cpu.SetGeneric(false)()
	defer cpu.SetVNNI(true)()
	rng := rand.New(rand.NewPCG(71, 72))
	nbs := []int{128, 129, 131, 255, 256}
	for nb := 1; nb <= 40; nb++ {
		nbs = append(nbs, nb)
	}
	specials := []uint16{0x0000, 0x8000, 0x0001, 0x7bff, 0xfbff, 0x3c00}
	for _, nb := range nbs {
		for trial := range 6 {
			n := 32 * nb
			rb := rdRowBytes(dtype.Q4_0, n)
			const nrows = 7
			stride := rb + 1 + rng.IntN(9)
			w := make([]byte, 1+nrows*stride)
			for r := range nrows {
				row := rdRawRow(rng, dtype.Q4_0, n)
				if trial%2 == 1 {
					for b := range nb {
						if rng.IntN(4) == 0 {
							binary.LittleEndian.PutUint16(row[18*b:], specials[rng.IntN(len(specials))])
						}
					}
				}
				copy(w[1+r*stride:], row)
			}
			x := rdVec(rng, n)
			if trial >= 4 {
				for i := range x {
					if rng.IntN(3) == 0 {
						x[i] = 0
					}
				}
			}
			v := new(cpu.QVec)
			v.Quantize(dtype.Q4_0, x)
			offs := make([]int, 8)
			for j := range offs {
				offs[j] = 1 + rng.IntN(nrows)*stride
			}
			if trial == 0 {
				offs[3] = 1 + (nrows-1)*stride // the last bytes of w
			}
			dst := make([]float32, 4)
			if g := cpu.DotRowsGroup(dtype.Q4_0, dst, w[:len(w)-(stride-rb)], offs, x, v); g != 4 {
				t.Fatalf("nb=%d: a group of %d Q4_0 rows, want 4", nb, g)
			}
			for j := range 4 {
				want := cpu.DotRowQ8(dtype.Q4_0, w[offs[j]:offs[j]+rb], v)
				if math.Float32bits(dst[j]) != math.Float32bits(want) {
					t.Fatalf("nb=%d trial %d: row %d at %d: %g (%#x), the row kernel gives %g (%#x)",
						nb, trial, j, offs[j], dst[j], math.Float32bits(dst[j]), want, math.Float32bits(want))
				}
			}
		}
	}
}
