package cpu_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

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
