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

// randQ6_K returns a rows×cols Q6_K matrix of random quants and int8
// sub-block scales, whose d are random in ±[0.0001, 0.0021), a few zero
// and a few negative.
func randQ6_K(rng *rand.Rand, rows, cols int) []byte {
	w := make([]byte, rows*cols/256*210)
	for i := range w {
		w[i] = byte(rng.Uint32())
	}
	for b := 0; b < len(w); b += 210 {
		d := float32(rng.Float64()*0.002 + 0.0001)
		switch rng.IntN(16) {
		case 0:
			d = 0
		case 1, 2:
			d = -d
		}
		binary.LittleEndian.PutUint16(w[b+208:], dtype.F32ToF16(d))
	}
	return w
}

// q6kRowQuants returns the 256 unsigned 6-bit quants of the row-layout
// Q6_K block wb (ggml's dequantize_row_q6_K order).
func q6kRowQuants(wb []byte) (q [256]int) {
	ql, qh := wb[:128], wb[128:192]
	for h := range 2 {
		for l := range 32 {
			a, b, c := ql[64*h+l], ql[64*h+32+l], qh[32*h+l]
			q[128*h+l] = int(a&15) | int(c&3)<<4
			q[128*h+32+l] = int(b&15) | int(c>>2&3)<<4
			q[128*h+64+l] = int(a>>4) | int(c>>4&3)<<4
			q[128*h+96+l] = int(b>>4) | int(c>>6&3)<<4
		}
	}
	return q
}

func TestPackQ6Kx16RoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, shape := range [][2]int{{16, 256}, {32, 512}, {48, 2048}} {
		rows, cols := shape[0], shape[1]
		w := randQ6_K(rng, rows, cols)
		orig := bytes.Clone(w)
		cpu.PackQ6Kx16(w, rows, cols)
		if bytes.Equal(w, orig) {
			t.Fatalf("%v: packing changed nothing", shape)
		}
		nb := cols / 256
		rb := nb * 210
		for range 40 {
			r, b := rng.IntN(rows), rng.IntN(nb)
			src := orig[r*rb+210*b : r*rb+210*b+210]
			u := w[(r/16*nb+b)*3360 : (r/16*nb+b+1)*3360]
			lane := r % 16
			if !bytes.Equal(u[2*lane:2*lane+2], src[208:210]) {
				t.Fatalf("%v: row %d super-block %d: d misplaced", shape, r, b)
			}
			for k := range 16 {
				if u[32+16*k+lane] != src[192+k] {
					t.Fatalf("%v: row %d super-block %d: scale %d misplaced", shape, r, b, k)
				}
			}
			for v := range 32 {
				if !bytes.Equal(u[288+64*v+4*lane:292+64*v+4*lane], src[4*v:4*v+4]) {
					t.Fatalf("%v: row %d super-block %d: ql %d misplaced", shape, r, b, v)
				}
			}
			for v := range 16 {
				if !bytes.Equal(u[2336+64*v+4*lane:2340+64*v+4*lane], src[128+4*v:132+4*v]) {
					t.Fatalf("%v: row %d super-block %d: qh %d misplaced", shape, r, b, v)
				}
			}
		}
		cpu.UnpackQ6Kx16(w, rows, cols)
		if !bytes.Equal(w, orig) {
			t.Fatalf("%v: unpack(pack(w)) != w", shape)
		}
	}
	if !cpu.PackableX16(dtype.Q6_K, 32, 512) || cpu.PackableX16(dtype.Q6_K, 32, 384) {
		t.Error("PackableX16(Q6_K) wrong")
	}
}

// q6kx16Exact is q4kx16Exact for Q6_K: I = Σ_k sc_k·Σ_{e∈k} (q−32)·y
// times d·d_y per super-block, in float64, and Σ_b |term_b|; and fine,
// Σ over sub-blocks of |sc_k·Σ_{e∈k} (q−32)·y·d·d_y|, the scale of the
// row layout's rounding, which rounds sub-block sums before adding them.
func q6kx16Exact(w []byte, rows, cols int, v *cpu.QVec) (exact, scale, fine []float64) {
	blocks := v.Blocks()
	nb, rb := cols/256, cols/256*210
	for r := range rows {
		var e, s, f float64
		for b := range nb {
			wb := w[r*rb+210*b : r*rb+210*b+210]
			yb := blocks[292*b : 292*b+292]
			dy := float64(math.Float32frombits(binary.LittleEndian.Uint32(yb)))
			q := q6kRowQuants(wb)
			I := 0
			for k := range 16 {
				ss := 0
				for i := range 16 {
					ss += (q[16*k+i] - 32) * int(int8(yb[4+16*k+i]))
				}
				I += int(int8(wb[192+k])) * ss
				f += math.Abs(float64(int(int8(wb[192+k]))*ss) * float64(dtype.F16ToF32(binary.LittleEndian.Uint16(wb[208:]))) * dy)
			}
			term := float64(I) * float64(dtype.F16ToF32(binary.LittleEndian.Uint16(wb[208:]))) * dy
			e += term
			s += math.Abs(term)
		}
		exact, scale, fine = append(exact, e), append(scale, s), append(fine, f)
	}
	return
}

// TestMatMulQ6Kx16 is TestMatMulQ4Kx16 for packed Q6_K, the VNNI and the
// AVX2 kernels alike.
func TestMatMulQ6Kx16(t *testing.T) {
	isas := []bool{true}
	if cpu.HaveVNNI() {
		isas = append(isas, false)
	}
	for _, vnni := range isas {
		name := "avx2"
		if vnni && cpu.HaveVNNI() {
			name = "vnni"
		}
		t.Run(name, func(t *testing.T) {
			defer cpu.SetVNNI(vnni)()
			testMatMulQ6Kx16(t)
		})
	}
}

func testMatMulQ6Kx16(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p1, p3 := cpu.NewPool(1), cpu.NewPool(3)
	defer p1.Close()
	defer p3.Close()
	for _, shape := range [][2]int{{16, 256}, {48, 512}, {64, 2048}, {160, 5632}} {
		rows, cols := shape[0], shape[1]
		w := randQ6_K(rng, rows, cols)
		packed := bytes.Clone(w)
		cpu.PackQ6Kx16(packed, rows, cols)
		for _, n := range []int{1, 2, 3, 7, 8, 13, 19} {
			t.Run(fmt.Sprintf("%dx%d/n=%d", rows, cols, n), func(t *testing.T) {
				x := randSlice(rng, n*cols, 1)
				got := make([]float32, n*rows)
				p3.MatMulPackedSet(dtype.Q6_K, []cpu.Q4x16Product{{Dst: got, W: packed, Rows: rows}}, cols, x, n)
				rowsRes := make([]float32, n*rows)
				p3.MatMul(rowsRes, w, dtype.Q6_K, rows, cols, x, n)
				for i := range n {
					var v cpu.QVec
					v.Quantize(dtype.Q6_K, x[i*cols:(i+1)*cols])
					exact, scale, fine := q6kx16Exact(w, rows, cols, &v)
					one := make([]float32, rows)
					p1.MatMulPackedSet(dtype.Q6_K, []cpu.Q4x16Product{{Dst: one, W: packed, Rows: rows}}, cols, x[i*cols:(i+1)*cols], 1)
					for r := range rows {
						g := got[i*rows+r]
						if math.Float32bits(g) != math.Float32bits(one[r]) {
							t.Fatalf("input %d row %d: %v with %d inputs, %v alone", i, r, g, n, one[r])
						}
						if d := math.Abs(float64(g) - exact[r]); d > 1e-6*scale[r]+1e-30 {
							t.Fatalf("input %d row %d: %v, exact %v (scale %v)", i, r, g, exact[r], scale[r])
						}
						if d := math.Abs(float64(g) - float64(rowsRes[i*rows+r])); d > 1e-6*fine[r]+1e-30 {
							t.Fatalf("input %d row %d: packed %v, row layout %v (scale %v)", i, r, g, rowsRes[i*rows+r], fine[r])
						}
					}
				}
				restore := cpu.SetGeneric(true)
				gen := make([]float32, n*rows)
				p3.MatMulPackedSet(dtype.Q6_K, []cpu.Q4x16Product{{Dst: gen, W: packed, Rows: rows}}, cols, x, n)
				restore()
				for k := range gen {
					if math.Float32bits(gen[k]) != math.Float32bits(got[k]) {
						t.Fatalf("result %d: pure Go %v, assembly %v", k, gen[k], got[k])
					}
				}
			})
		}
	}
}
