package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// Tests of MatMul's multi-input kernels (multi.go): every (row, input)
// result must be the bits MatVec gives for that input, on both
// implementations, and the assembly must agree with the generic twins
// (bit for bit for the integer-activation kernels).

// multiCols returns row lengths for t that exercise every loop tail of the
// kernels: 1–33 blocks of 32 (batches of 8, 4 and the last 1–3 blocks),
// 1–5 super-blocks, and odd float lengths.
func multiCols(t dtype.Type) []int {
	switch bs := t.BlockSize(); {
	case bs == 256:
		return []int{256, 512, 768, 1280}
	case bs == 32:
		var cols []int
		for _, nb := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17, 33} {
			cols = append(cols, 32*nb)
		}
		return cols
	}
	return []int{1, 7, 8, 31, 32, 33, 64, 100, 301}
}

// rawMatrix returns rows rows of random valid blocks of t (rdRawRow), at
// offset off from an allocation, the bytes around it 0xff.
func rawMatrix(r *rand.Rand, t dtype.Type, rows, cols, off int) []byte {
	rb := rdRowBytes(t, cols)
	buf := make([]byte, off+rows*rb+8)
	for i := range buf {
		buf[i] = 0xff
	}
	w := buf[off : off+rows*rb : off+rows*rb]
	for k := 0; k < rows; k++ {
		copy(w[k*rb:], rdRawRow(r, t, cols))
	}
	return w
}

func TestMatMulMulti(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	p := cpu.NewPool(3)
	defer p.Close()
	for _, typ := range computable() {
		for _, cols := range multiCols(typ) {
			for _, rows := range []int{1, 3, 37} {
				w := rawMatrix(r, typ, rows, cols, rows%2)
				for _, n := range []int{1, 2, 3, 5, 7, 8, 13} {
					name := fmt.Sprintf("%s/%dx%d/n%d", typ, rows, cols, n)
					x := make([]float32, n*cols)
					randVec(r, x)
					results := map[string][]float32{}
					for _, m := range impls() {
						func() {
							defer m.use()()
							dw, dst := guarded(n*rows, guard)
							p.MatMul(dst, w, typ, rows, cols, x, n)
							checkGuards(t, name+" dst", dw, n*rows, guard)
							mv := make([]float32, rows)
							for i := range n {
								p.MatVec(mv, w, typ, rows, cols, x[i*cols:(i+1)*cols])
								for k := range rows {
									if got, want := dst[i*rows+k], mv[k]; math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
										t.Fatalf("%s %s: dst[%d·%d+%d] = %v, MatVec gives %v (must be the same bits)", name, m.name, i, rows, k, got, want)
									}
								}
							}
							results[m.name] = dst
						}()
					}
					if avx2, ok := results["avx2"]; ok && cpu.ActivationType(typ) != dtype.F32 {
						for i, a := range results["asm"] {
							if math.Float32bits(a) != math.Float32bits(avx2[i]) && !(a != a && avx2[i] != avx2[i]) {
								t.Fatalf("%s: element %d: VNNI vs AVX2 output mismatch: %v vs %v", name, i, a, avx2[i])
							}
						}
					}
					asm, gen := results[impls()[0].name], results["generic"]
					rb := rdRowBytes(typ, cols)
					for i := range asm {
						if cpu.ActivationType(typ) == dtype.F32 { // the FMA kernels agree to rounding
							in, k := i/rows, i%rows
							_, mag := rdRef(t, typ, w[k*rb:(k+1)*rb], x[in*cols:(in+1)*cols])
							if d := math.Abs(float64(asm[i]) - float64(gen[i])); !(d <= 2e-5*mag+1e-37) {
								t.Fatalf("%s: element %d: asm %v, generic %v (Σ|w·x| %g)", name, i, asm[i], gen[i], mag)
							}
						} else if math.Float32bits(asm[i]) != math.Float32bits(gen[i]) && !(asm[i] != asm[i] && gen[i] != gen[i]) {
							t.Fatalf("%s: element %d: asm vs non-asm output mismatch: %v vs %v", name, i, asm[i], gen[i])
						}
					}
				}
			}
		}
	}
}

// TestMatMulMultiOff checks that switching the multi-input kernels off
// changes no bit of MatMul's result.
func TestMatMulMultiOff(t *testing.T) {
	r := rand.New(rand.NewPCG(63, 64))
	p := cpu.NewPool(2)
	defer p.Close()
	eachImpl(t, func(t *testing.T) {
		for _, typ := range computable() {
			cols := multiCols(typ)[2]
			rows, n := 45, 11
			w := rawMatrix(r, typ, rows, cols, 0)
			x := make([]float32, n*cols)
			randVec(r, x)
			on := make([]float32, n*rows)
			off := make([]float32, n*rows)
			p.MatMul(on, w, typ, rows, cols, x, n)
			func() {
				defer cpu.SetMulti(false)()
				p.MatMul(off, w, typ, rows, cols, x, n)
			}()
			for i := range on {
				if math.Float32bits(on[i]) != math.Float32bits(off[i]) && !(on[i] != on[i] && off[i] != off[i]) {
					t.Fatalf("%s: element %d: %v with the multi-input kernels, %v without", typ, i, on[i], off[i])
				}
			}
		}
	})
}

// FuzzDotQ8Multi compares the multi-input kernels, assembly and generic,
// with the row kernel on fuzzed weight bytes (scale fields patched to
// finite values) and fuzzed activation quants in [−127, 127].
func FuzzDotQ8Multi(f *testing.F) {
	r := rand.New(rand.NewPCG(65, 66))
	for i, typ := range q8Types {
		n := 3 * max(typ.BlockSize(), 32)
		f.Add(uint8(i), uint8(2), uint8(1), uint64(i), rdQuantRow(r, typ, n))
	}
	f.Fuzz(func(t *testing.T, sel, blocks, inputs uint8, seed uint64, data []byte) {
		typ := q8Types[int(sel)%len(q8Types)]
		sizes := cpu.MultiSizes(typ)
		if len(sizes) == 0 {
			t.Skip()
		}
		ni := sizes[int(inputs)%len(sizes)]
		at := cpu.ActivationType(typ)
		nb := int(blocks)%19 + 1
		if at == dtype.Q8_K {
			nb = nb%5 + 1
		}
		n := nb * at.BlockSize()
		rb := rdRowBytes(typ, n)
		if len(data) < rb {
			return
		}
		rr := rand.New(rand.NewPCG(seed, 5))
		row := rdRawRow(rr, typ, n)
		ts := typ.TypeSize()
		for off := 0; off < rb; off += ts {
			for i := off; i < off+ts; i++ {
				if !rdIsFloatField(typ, i-off) {
					row[i] = data[i]
				}
			}
		}
		rest := data[rb:]
		vs := make([]*cpu.QVec, ni)
		for j := range vs {
			xq := fuzzQuants(at, quantizeQ8(at, rdVec(rr, n)), rest, nb)
			if len(rest) > 0 {
				rest = rest[min(len(rest), 7):] // another input, other quants
			}
			vs[j] = new(cpu.QVec)
			vs[j].SetBlocks(typ, xq)
		}
		for _, m := range impls() {
			func() {
				defer m.use()()
				got := cpu.DotRowQ8Multi(typ, row, vs)
				for j, v := range vs {
					want := cpu.DotRowQ8(typ, row, v)
					if math.Float32bits(got[j]) != math.Float32bits(want) && !(got[j] != got[j] && want != want) {
						t.Fatalf("%s nb=%d inputs=%d %s: input %d: multi-input kernel %v, row kernel %v", typ, nb, ni, m.name, j, got[j], want)
					}
				}
			}()
		}
	})
}
