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

// randKQuant returns a rows×cols matrix of k-quant type t (Q4_K, Q5_K or
// Q6_K) of random bytes but for its f16 scales (d and dmin, or Q6_K's d),
// which are random in ±[0.0001, 0.0021), a few of them zero and a few
// negative: random quants, sub-block scales and mins.
func randKQuant(rng *rand.Rand, t dtype.Type, rows, cols int) []byte {
	bs := t.TypeSize()
	scales := []int{0, 2} // where the block's f16 scales lie
	if t == dtype.Q6_K {
		scales = []int{208}
	}
	w := make([]byte, rows*cols/256*bs)
	for i := range w {
		w[i] = byte(rng.Uint32())
	}
	for b := 0; b < len(w); b += bs {
		for _, o := range scales {
			d := float32(rng.Float64()*0.002 + 0.0001)
			switch rng.IntN(16) {
			case 0:
				d = 0
			case 1, 2:
				d = -d
			}
			binary.LittleEndian.PutUint16(w[b+o:], dtype.F32ToF16(d))
		}
	}
	return w
}

func randQ4_K(rng *rand.Rand, rows, cols int) []byte { return randKQuant(rng, dtype.Q4_K, rows, cols) }
func randQ5_K(rng *rand.Rand, rows, cols int) []byte { return randKQuant(rng, dtype.Q5_K, rows, cols) }
func randQ6_K(rng *rand.Rand, rows, cols int) []byte { return randKQuant(rng, dtype.Q6_K, rows, cols) }

// TestPackQ5Kx16RoundTrip: Q5_K's qh land in their planes, the rest as
// Q4_K's, and unpacking restores the rows.
func TestPackQ5Kx16RoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 3))
	const rows, cols = 32, 512
	w := randQ5_K(rng, rows, cols)
	orig := bytes.Clone(w)
	cpu.PackQ5Kx16(w, rows, cols)
	nb, rb := cols/256, cols/256*176
	for range 40 {
		r, b := rng.IntN(rows), rng.IntN(nb)
		src := orig[r*rb+176*b : r*rb+176*b+176]
		u := w[(r/16*nb+b)*2816 : (r/16*nb+b+1)*2816]
		lane := r % 16
		if !bytes.Equal(u[2*lane:2*lane+2], src[0:2]) || !bytes.Equal(u[32+2*lane:34+2*lane], src[2:4]) || u[64+16*11+lane] != src[15] {
			t.Fatalf("row %d super-block %d: scales misplaced", r, b)
		}
		for v := range 8 {
			if !bytes.Equal(u[256+64*v+4*lane:260+64*v+4*lane], src[16+4*v:20+4*v]) {
				t.Fatalf("row %d super-block %d: qh %d misplaced", r, b, v)
			}
		}
		for c := range 4 {
			for k := range 8 {
				if !bytes.Equal(u[768+512*c+64*k+4*lane:772+512*c+64*k+4*lane], src[48+32*c+4*k:52+32*c+4*k]) {
					t.Fatalf("row %d super-block %d: chunk %d quants %d misplaced", r, b, c, k)
				}
			}
		}
	}
	cpu.UnpackQ5Kx16(w, rows, cols)
	if !bytes.Equal(w, orig) {
		t.Fatal("unpack(pack(w)) != w")
	}
}

func TestPackQ4Kx16RoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, shape := range [][2]int{{16, 256}, {32, 512}, {48, 2048}} {
		rows, cols := shape[0], shape[1]
		w := randQ4_K(rng, rows, cols)
		orig := bytes.Clone(w)
		cpu.PackQ4Kx16(w, rows, cols)
		if bytes.Equal(w, orig) {
			t.Fatalf("%v: packing changed nothing", shape)
		}
		// Spot-check the layout: row r's super-block b in group g.
		nb := cols / 256
		rb := nb * 144
		for range 40 {
			r, b := rng.IntN(rows), rng.IntN(nb)
			src := orig[r*rb+144*b : r*rb+144*b+144]
			u := w[(r/16*nb+b)*2304 : (r/16*nb+b+1)*2304]
			lane := r % 16
			if !bytes.Equal(u[2*lane:2*lane+2], src[0:2]) || !bytes.Equal(u[32+2*lane:34+2*lane], src[2:4]) {
				t.Fatalf("%v: row %d super-block %d: scales misplaced", shape, r, b)
			}
			for k := range 12 {
				if u[64+16*k+lane] != src[4+k] {
					t.Fatalf("%v: row %d super-block %d: scale byte %d misplaced", shape, r, b, k)
				}
			}
			for c := range 4 {
				for k := range 8 {
					if !bytes.Equal(u[256+512*c+64*k+4*lane:256+512*c+64*k+4*lane+4], src[16+32*c+4*k:20+32*c+4*k]) {
						t.Fatalf("%v: row %d super-block %d: chunk %d quants %d–%d misplaced", shape, r, b, c, 4*k, 4*k+3)
					}
				}
			}
		}
		cpu.UnpackQ4Kx16(w, rows, cols)
		if !bytes.Equal(w, orig) {
			t.Fatalf("%v: unpack(pack(w)) != w", shape)
		}
	}
	for _, c := range []struct {
		rows, cols int
		ok         bool
	}{{16, 256, true}, {4096, 11008, true}, {16, 384, false}, {8, 256, false}, {16, 32, false}} {
		if got := cpu.PackableX16(dtype.Q4_K, c.rows, c.cols); got != c.ok {
			t.Errorf("PackableX16(Q4_K, %d, %d) = %v, want %v", c.rows, c.cols, got, c.ok)
		}
	}
}

// q4kx16Exact returns, for every row of the row-layout Q4_K matrix w and
// input v (quantized to Q8_K), the packed arithmetic in float64 (no
// rounding but the input's quantization) and Σ_b (|t_b| + |u_b|), the
// scale of its rounding error.
func q4kx16Exact(t dtype.Type, w []byte, rows, cols int, v *cpu.QVec) (exact, scale []float64) {
	blocks := v.Blocks()
	bs := t.TypeSize()
	nb, rb := cols/256, cols/256*bs
	qs := 16 // the quant bytes; Q5_K's qh come before them
	if t == dtype.Q5_K {
		qs = 48
	}
	for r := range rows {
		var e, s float64
		for b := range nb {
			wb := w[r*rb+bs*b : r*rb+bs*b+bs]
			yb := blocks[292*b : 292*b+292]
			dy := float64(math.Float32frombits(binary.LittleEndian.Uint32(yb)))
			var sc, m [8]int
			q := wb[4:16]
			for j := range 4 {
				sc[j], m[j] = int(q[j]&63), int(q[j+4]&63)
				sc[j+4] = int(q[j+8]&15 | (q[j]>>6)<<4)
				m[j+4] = int(q[j+8]>>4 | (q[j+4]>>6)<<4)
			}
			var I, M int
			for s := range 8 {
				c, hi := s/2, s%2
				ss, bs := 0, 0
				for e := range 32 {
					qv := int(wb[qs+32*c+e] & 15)
					if hi == 1 {
						qv = int(wb[qs+32*c+e] >> 4)
					}
					if t == dtype.Q5_K {
						qv |= int(wb[16+e]>>s&1) << 4
					}
					y := int(int8(yb[4+32*s+e]))
					ss += qv * y
					bs += y
				}
				I += sc[s] * ss
				M += m[s] * bs
			}
			d := float64(dtype.F16ToF32(binary.LittleEndian.Uint16(wb)))
			dm := float64(dtype.F16ToF32(binary.LittleEndian.Uint16(wb[2:])))
			tt, u := float64(I)*d*dy, float64(M)*dm*dy
			e += tt - u
			s += math.Abs(tt) + math.Abs(u)
		}
		exact, scale = append(exact, e), append(scale, s)
	}
	return
}

// TestMatMulQ4Kx16 checks the packed k-quant drivers (Q4_K, Q5_K, Q6_K)
// against the packed arithmetic done exactly and against the row
// layout's MatMul, and that every way of computing a row gives the same
// bits: n inputs at once or one at a time, assembly or pure Go, any
// thread count. The row layout rounds its lanes otherwise and sums them
// after: within 1e-4 of the error scale for Q4_K and Q5_K, and for Q6_K,
// whose row kernels round each 16-element sub-block, within 1e-6 of the
// sub-blocks' scale (kx16RowTol). It runs the assembly of every
// instruction set the CPU has (impls: AVX-512 VNNI, AVX-VNNI, AVX2), which
// must give the same bits.
func TestMatMulQ4Kx16(t *testing.T) {
	for _, m := range impls() {
		if m.generic {
			continue // testMatMulQ4Kx16 compares the assembly with it
		}
		for _, typ := range []dtype.Type{dtype.Q4_K, dtype.Q5_K, dtype.Q6_K} {
			t.Run(m.name+"/"+typ.String(), func(t *testing.T) {
				defer m.use()()
				testMatMulQ4Kx16(t, typ)
			})
		}
	}
}

// kx16Exact is q4kx16Exact or q6kx16Exact as typ says, with each row's
// tolerance against the row layout.
func kx16Exact(typ dtype.Type, w []byte, rows, cols int, v *cpu.QVec) (exact, scale, rowTol []float64) {
	if typ == dtype.Q6_K {
		exact, scale, fine := q6kx16Exact(w, rows, cols, v)
		for _, f := range fine {
			rowTol = append(rowTol, 1e-6*f)
		}
		return exact, scale, rowTol
	}
	exact, scale = q4kx16Exact(typ, w, rows, cols, v)
	for _, sc := range scale {
		rowTol = append(rowTol, 1e-4*sc)
	}
	return exact, scale, rowTol
}

func testMatMulQ4Kx16(t *testing.T, typ dtype.Type) {
	rng := rand.New(rand.NewPCG(3, 4))
	p1, p3 := cpu.NewPool(1), cpu.NewPool(3)
	defer p1.Close()
	defer p3.Close()
	for _, shape := range [][2]int{{16, 256}, {48, 512}, {64, 2048}, {160, 5632}} {
		rows, cols := shape[0], shape[1]
		w := randPacked[typ](rng, rows, cols)
		packed := bytes.Clone(w)
		cpu.PackX16(typ, packed, rows, cols)
		for _, n := range []int{1, 2, 3, 7, 8, 13, 19} {
			t.Run(fmt.Sprintf("%dx%d/n=%d", rows, cols, n), func(t *testing.T) {
				x := randSlice(rng, n*cols, 1)
				got := make([]float32, n*rows)
				p3.MatMulPackedSet(typ, []cpu.Q4x16Product{{Dst: got, W: packed, Rows: rows}}, cols, x, n)
				rowsRes := make([]float32, n*rows)
				p3.MatMul(rowsRes, w, typ, rows, cols, x, n)
				for i := range n {
					var v cpu.QVec
					v.Quantize(typ, x[i*cols:(i+1)*cols])
					exact, scale, rowTol := kx16Exact(typ, w, rows, cols, &v)
					one := make([]float32, rows)
					p1.MatMulPackedSet(typ, []cpu.Q4x16Product{{Dst: one, W: packed, Rows: rows}}, cols, x[i*cols:(i+1)*cols], 1)
					for r := range rows {
						g := got[i*rows+r]
						if math.Float32bits(g) != math.Float32bits(one[r]) {
							t.Fatalf("input %d row %d: %v with %d inputs, %v alone", i, r, g, n, one[r])
						}
						if d := math.Abs(float64(g) - exact[r]); d > 1e-6*scale[r]+1e-30 {
							t.Fatalf("input %d row %d: %v, exact %v (scale %v)", i, r, g, exact[r], scale[r])
						}
						if d := math.Abs(float64(g) - float64(rowsRes[i*rows+r])); d > rowTol[r]+1e-30 {
							t.Fatalf("input %d row %d: packed %v, row layout %v (tolerance %v)", i, r, g, rowsRes[i*rows+r], rowTol[r])
						}
					}
				}
				restore := cpu.SetGeneric(true)
				gen := make([]float32, n*rows)
				p3.MatMulPackedSet(typ, []cpu.Q4x16Product{{Dst: gen, W: packed, Rows: rows}}, cols, x, n)
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

// TestMatMulKx16Extreme: every quant at its largest (15, 31, 63), every
// scale and min at its largest, against inputs whose quants are all −127
// or all 127, so that the kernels' int16 partial sums reach their bounds
// (the AVX2 kernels add VPMADDUBSW words in int16 before widening; one
// step too many overflows here where random weights never do). The
// packed results must still be the exact arithmetic's, on every ISA.
func TestMatMulKx16Extreme(t *testing.T) {
	const rows, cols = 16, 512
	for _, typ := range []dtype.Type{dtype.Q4_K, dtype.Q5_K, dtype.Q6_K} {
		bs := typ.TypeSize()
		w := bytes.Repeat([]byte{0xff}, rows*cols/256*bs)
		for b := 0; b < len(w); b += bs {
			dAt := 0
			if typ == dtype.Q6_K {
				dAt = 208
				for k := range 16 {
					w[b+192+k] = 0x7f // int8 scales at their largest
				}
			}
			binary.LittleEndian.PutUint16(w[b+dAt:], dtype.F32ToF16(0.001))
			if typ != dtype.Q6_K {
				binary.LittleEndian.PutUint16(w[b+2:], dtype.F32ToF16(0.0005))
			}
		}
		packed := bytes.Clone(w)
		cpu.PackX16(typ, packed, rows, cols)
		for _, m := range impls() {
			for _, sign := range []float32{1, -1} {
				x := make([]float32, cols)
				for i := range x {
					x[i] = sign
				}
				var v cpu.QVec
				v.Quantize(typ, x)
				var exact, scale []float64
				if typ == dtype.Q6_K {
					exact, scale, _ = q6kx16Exact(w, rows, cols, &v)
				} else {
					exact, scale = q4kx16Exact(typ, w, rows, cols, &v)
				}
				restore := m.use()
				p := cpu.NewPool(1)
				got := make([]float32, 8*rows)
				x8 := make([]float32, 8*cols)
				for j := range 8 {
					copy(x8[j*cols:], x)
				}
				p.MatMulPackedSet(typ, []cpu.Q4x16Product{{Dst: got, W: packed, Rows: rows}}, cols, x8, 8)
				p.Close()
				restore()
				for k, g := range got {
					r := k % rows
					if d := math.Abs(float64(g) - exact[r]); d > 1e-6*scale[r]+1e-30 {
						t.Fatalf("%s %s sign %v: result %d = %v, exact %v", typ, m.name, sign, k, g, exact[r])
					}
				}
			}
		}
	}
}
