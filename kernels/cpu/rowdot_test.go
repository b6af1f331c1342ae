package cpu_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
)

// rowTypes are the computable types, the ones the row kernels handle.
var rowTypes = []dtype.Type{
	dtype.F32, dtype.F16, dtype.BF16,
	dtype.Q4_0, dtype.Q4_1, dtype.Q5_0, dtype.Q5_1, dtype.Q8_0,
	dtype.Q4_K, dtype.Q5_K, dtype.Q6_K, dtype.Q8_K,
}

// dotTol is the allowed |DotRow − exact| as a fraction of Σ|w·x|. The
// kernels sum float32 products: within a block through a chain of at most
// 8 additions per accumulator plus a 3-level reduction, then one addition
// per block, so for the row lengths tested (≤ 1032 blocks) the rounding
// error is below (8 + 3 + 1032 + a few for the scale products)·2⁻²⁴ ≈
// 6e-5 of Σ|w·x| in the worst case, and typically far less (errors are
// random-signed). Factoring the block scale out (d·Σ q·x instead of
// Σ (d·q)·x) and the min (m·Σ x) changes only rounding, not this order.
// 1e-4 leaves room for the worst case yet catches any wrong element: one
// misdecoded weight in a row of 4096 moves the result by ~1/4096 ≈ 2.4e-4
// of Σ|w·x|.
const dotTol = 1e-4

// rdRef returns the exact-ish (float64) Σ w·x and Σ|w·x| with w decoded by
// the reference dtype.Dequantize.
func rdRef(t testing.TB, typ dtype.Type, row []byte, x []float32) (dot, abs float64) {
	t.Helper()
	w := make([]float32, len(x))
	if err := dtype.Dequantize(typ, row, w); err != nil {
		t.Fatal(err)
	}
	for i := range w {
		p := float64(w[i]) * float64(x[i])
		dot += p
		abs += math.Abs(p)
	}
	return dot, abs
}

func rdRowBytes(typ dtype.Type, n int) int {
	rb, err := typ.RowBytes(uint64(n))
	if err != nil {
		panic(err)
	}
	return int(rb)
}

// rdQuantRow returns a row of n elements made by quantizing random floats.
func rdQuantRow(r *rand.Rand, typ dtype.Type, n int) []byte {
	w := make([]float32, n)
	scale := math.Pow(10, float64(r.IntN(5)-2))
	for i := range w {
		w[i] = float32(scale * r.NormFloat64())
		if r.IntN(20) == 0 {
			w[i] *= 8 // some outliers
		}
	}
	row := make([]byte, rdRowBytes(typ, n))
	if err := dtype.Quantize(typ, w, row); err != nil {
		panic(err)
	}
	return row
}

// rdHalf returns a random finite half (any sign, exponent 0..30).
func rdHalf(r *rand.Rand) uint16 {
	for {
		h := uint16(r.Uint32())
		if h&0x7c00 != 0x7c00 {
			return h
		}
	}
}

// rdRawRow returns a row of random bytes, a valid block for every type:
// only the float fields are patched so that they hold finite values (f16
// scales and elements, Q8_K's float32 scale, F32 elements).
func rdRawRow(r *rand.Rand, typ dtype.Type, n int) []byte {
	row := make([]byte, rdRowBytes(typ, n))
	for i := range row {
		row[i] = byte(r.Uint32())
	}
	put16 := func(off int) { binary.LittleEndian.PutUint16(row[off:], rdHalf(r)) }
	ts := typ.TypeSize()
	for off := 0; off < len(row); off += ts {
		switch typ {
		case dtype.F32:
			binary.LittleEndian.PutUint32(row[off:], math.Float32bits(float32(r.NormFloat64()*100)))
		case dtype.F16, dtype.Q4_0, dtype.Q5_0, dtype.Q8_0:
			put16(off)
		case dtype.BF16: // random sign and mantissa, exponent 2^±20
			h := uint16(r.Uint32())&0x807f | uint16(127+r.IntN(41)-20)<<7
			binary.LittleEndian.PutUint16(row[off:], h)
		case dtype.Q4_1, dtype.Q5_1, dtype.Q4_K, dtype.Q5_K:
			put16(off)
			put16(off + 2)
		case dtype.Q6_K:
			put16(off + 208)
		case dtype.Q8_K:
			binary.LittleEndian.PutUint32(row[off:], math.Float32bits(float32(r.NormFloat64())))
		}
	}
	return row
}

func rdVec(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func rdCheckDot(t testing.TB, typ dtype.Type, row []byte, x []float32, got float32, what string) {
	t.Helper()
	want, abs := rdRef(t, typ, row, x)
	if d := math.Abs(float64(got) - want); !(d <= dotTol*abs+1e-30) {
		t.Fatalf("%s %s n=%d: DotRow = %g, want %g (error %.3g of Σ|w·x| = %g)", typ, what, len(x), got, want, d/abs, abs)
	}
}

// rdLengths are row lengths to test for a type: one block, a few, odd
// counts, and one long row (past DotRows' stack-kept block sums).
func rdLengths(typ dtype.Type) []int {
	bs := max(typ.BlockSize(), 32)
	out := []int{bs, 3 * bs, 7 * bs, 4096}
	if bs == 1 {
		out = append(out, 1, 5, 13, 37)
	}
	out = append(out, 129*256) // 1032 blocks of 32
	return out
}

func TestDotRowAgainstReference(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, typ := range rowTypes {
			for _, n := range rdLengths(typ) {
				for trial := 0; trial < 3; trial++ {
					x := rdVec(r, n)
					row := rdQuantRow(r, typ, n)
					rdCheckDot(t, typ, row, x, cpu.DotRow(typ, row, x), "quantized")
					raw := rdRawRow(r, typ, n)
					rdCheckDot(t, typ, raw, x, cpu.DotRow(typ, raw, x), "raw bytes")
				}
			}
		}
	})
}

func TestDotRowEmpty(t *testing.T) {
	for _, typ := range rowTypes {
		if got := cpu.DotRow(typ, nil, nil); got != 0 {
			t.Errorf("%s: empty DotRow = %v", typ, got)
		}
	}
}

// rdSameFloat reports whether a and b are the same bits, or both NaN (NaN
// payloads may legitimately differ when two NaNs meet in one operation).
func rdSameFloat(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

func TestDequantizeRowBitExact(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, typ := range rowTypes {
		for _, n := range rdLengths(typ) {
			rows := [][]byte{rdQuantRow(r, typ, n), rdRawRow(r, typ, n)}
			// fully random bytes too: NaN and Inf scales must decode alike
			full := make([]byte, rdRowBytes(typ, n))
			for i := range full {
				full[i] = byte(r.Uint32())
			}
			rows = append(rows, full)
			for k, row := range rows {
				want := make([]float32, n)
				if err := dtype.Dequantize(typ, row, want); err != nil {
					t.Fatal(err)
				}
				got := make([]float32, n)
				cpu.DequantizeRow(typ, row, got)
				for i := range got {
					if !rdSameFloat(got[i], want[i]) {
						t.Fatalf("%s n=%d row %d: element %d = %v (%#08x), dtype.Dequantize gives %v (%#08x)",
							typ, n, k, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
					}
				}
			}
		}
	}
}

// The guard-band tests place each operand inside a larger buffer whose
// other elements are NaN (float32) or 0xff bytes (a NaN f16 wherever a
// scale would be read), at unaligned offsets, and check that results do
// not change and nothing outside the destination is written.

var rdOffsets = []int{0, 1, 3}

func TestDotRowGuardBands(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(15, 16))
		for _, typ := range rowTypes {
			for _, n := range []int{max(typ.BlockSize(), 32), 3 * max(typ.BlockSize(), 32)} {
				row := rdQuantRow(r, typ, n)
				x := rdVec(r, n)
				want := cpu.DotRow(typ, row, x)
				for _, ro := range rdOffsets {
					for _, xo := range rdOffsets {
						rbuf := make([]byte, ro+len(row)+64)
						for i := range rbuf {
							rbuf[i] = 0xff
						}
						grow := rbuf[ro : ro+len(row)]
						copy(grow, row)
						xbuf := make([]float32, xo+n+16)
						for i := range xbuf {
							xbuf[i] = float32(math.NaN())
						}
						gx := xbuf[xo : xo+n]
						copy(gx, x)
						if got := cpu.DotRow(typ, grow, gx); math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("%s n=%d row offset %d x offset %d: %v, want %v", typ, n, ro, xo, got, want)
						}
					}
				}
			}
		}
	})
}

func TestDequantizeRowGuardBands(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, typ := range rowTypes {
		n := 3 * max(typ.BlockSize(), 32)
		row := rdQuantRow(r, typ, n)
		want := make([]float32, n)
		cpu.DequantizeRow(typ, row, want)
		for _, ro := range rdOffsets {
			for _, do := range rdOffsets {
				rbuf := make([]byte, ro+len(row)+64)
				for i := range rbuf {
					rbuf[i] = 0xff
				}
				copy(rbuf[ro:], row)
				dbuf := make([]float32, do+n+16)
				for i := range dbuf {
					dbuf[i] = float32(math.NaN())
				}
				cpu.DequantizeRow(typ, rbuf[ro:ro+len(row)], dbuf[do:do+n])
				for i, v := range dbuf {
					inside := i >= do && i < do+n
					if inside && math.Float32bits(v) != math.Float32bits(want[i-do]) {
						t.Fatalf("%s offsets %d/%d: element %d = %v, want %v", typ, ro, do, i-do, v, want[i-do])
					}
					if !inside && v == v {
						t.Fatalf("%s offsets %d/%d: wrote guard element %d", typ, ro, do, i)
					}
				}
			}
		}
	}
}

func TestDotRows(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(19, 20))
		for _, typ := range rowTypes {
			for _, n := range []int{max(typ.BlockSize(), 32), 4 * max(typ.BlockSize(), 32), 129 * 256} {
				rb := rdRowBytes(typ, n)
				x := rdVec(r, n)
				var content [7][]byte
				for k := range content {
					if n > 4096 && k >= 3 {
						break
					}
					content[k] = rdQuantRow(r, typ, n)
				}
				for _, nrows := range []int{1, 3, 7} {
					if n > 4096 && nrows > 3 {
						continue
					}
					for _, ro := range rdOffsets {
						// rows inside a 0xff-filled buffer with one spare row after
						rows := make([]byte, ro+(nrows+1)*rb+16)
						for i := range rows {
							rows[i] = 0xff
						}
						for k := 0; k < nrows; k++ {
							copy(rows[ro+k*rb:], content[k])
						}
						dbuf := make([]float32, nrows+2)
						for i := range dbuf {
							dbuf[i] = float32(math.NaN())
						}
						dst := dbuf[1 : 1+nrows]
						cpu.DotRows(typ, dst, rows[ro:], rb, x)
						if dbuf[0] == dbuf[0] || dbuf[nrows+1] == dbuf[nrows+1] {
							t.Fatalf("%s: DotRows wrote outside dst", typ)
						}
						for k := range dst {
							row := rows[ro+k*rb : ro+(k+1)*rb]
							if want := cpu.DotRow(typ, row, x); math.Float32bits(dst[k]) != math.Float32bits(want) {
								t.Fatalf("%s n=%d row %d of %d: DotRows = %v, DotRow = %v (must be bit-identical)", typ, n, k, nrows, dst[k], want)
							}
							rdCheckDot(t, typ, row, x, dst[k], "DotRows")
						}
					}
				}
			}
			cpu.DotRows(typ, nil, nil, 0, nil) // no rows: nothing to do
		}
	})
}

func TestRowKernelsNoAllocs(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		for _, typ := range rowTypes {
			n := 1024
			rb := rdRowBytes(typ, n)
			rows := make([]byte, 4*rb)
			for k := 0; k < 4; k++ {
				copy(rows[k*rb:], rdQuantRow(r, typ, n))
			}
			x := rdVec(r, n)
			dst := make([]float32, 4)
			buf := make([]float32, n)
			if a := testing.AllocsPerRun(10, func() {
				cpu.DotRows(typ, dst, rows, rb, x)
				_ = cpu.DotRow(typ, rows[:rb], x)
				cpu.DequantizeRow(typ, rows[:rb], buf)
			}); a != 0 {
				t.Errorf("%s: %v allocations per call", typ, a)
			}
		}
	})
}

func TestRowKernelsPanics(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	x := make([]float32, 256)
	mustPanic("DotRow Q2_K", func() { cpu.DotRow(dtype.Q2_K, make([]byte, 84), x) })
	mustPanic("DotRow unknown", func() { cpu.DotRow(dtype.Type(99), make([]byte, 1024), x) })
	mustPanic("DotRows Q3_K", func() { cpu.DotRows(dtype.Q3_K, make([]float32, 1), make([]byte, 110), 110, x) })
	mustPanic("DequantizeRow IQ4_NL", func() { cpu.DequantizeRow(dtype.IQ4_NL, make([]byte, 144), x) })
	mustPanic("short row", func() { cpu.DotRow(dtype.Q4_0, make([]byte, 17*8), x) })
	mustPanic("short rows", func() { cpu.DotRows(dtype.Q8_0, make([]float32, 2), make([]byte, 34*8), 34*8, x) })
}

// FuzzDotRow compares DotRow with the float64 reference, and DequantizeRow
// with dtype.Dequantize, on rows of fuzzed bytes (float fields patched to
// finite values as rdRawRow does) and a fuzzed-seed x.
func FuzzDotRow(f *testing.F) {
	r := rand.New(rand.NewPCG(23, 24))
	for i, typ := range rowTypes {
		f.Add(uint8(i), uint8(2), uint64(i), rdQuantRow(r, typ, 2*max(typ.BlockSize(), 32)))
	}
	f.Fuzz(func(t *testing.T, sel, blocks uint8, xseed uint64, data []byte) {
		typ := rowTypes[int(sel)%len(rowTypes)]
		bs := max(typ.BlockSize(), 32)
		n := (int(blocks)%16 + 1) * bs
		rb := rdRowBytes(typ, n)
		if len(data) < rb {
			return
		}
		rr := rand.New(rand.NewPCG(xseed, 1))
		row := rdRawRow(rr, typ, n) // patched float fields
		ts := typ.TypeSize()
		for off := 0; off < rb; off += ts {
			// keep the fuzzer's bytes except where rdRawRow put finite floats
			for i := off; i < off+ts; i++ {
				if !rdIsFloatField(typ, i-off) {
					row[i] = data[i]
				}
			}
		}
		x := rdVec(rr, n)
		rdCheckDot(t, typ, row, x, cpu.DotRow(typ, row, x), "fuzz")
		want := make([]float32, n)
		if err := dtype.Dequantize(typ, row, want); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, n)
		cpu.DequantizeRow(typ, row, got)
		for i := range got {
			if !rdSameFloat(got[i], want[i]) {
				t.Fatalf("%s: DequantizeRow element %d = %v, want %v", typ, i, got[i], want[i])
			}
		}
	})
}

// rdIsFloatField reports whether byte i of a block of typ belongs to a
// float field (scale or element) that rdRawRow sets.
func rdIsFloatField(typ dtype.Type, i int) bool {
	switch typ {
	case dtype.F32, dtype.F16, dtype.BF16:
		return true
	case dtype.Q4_0, dtype.Q5_0, dtype.Q8_0:
		return i < 2
	case dtype.Q4_1, dtype.Q5_1, dtype.Q4_K, dtype.Q5_K:
		return i < 4
	case dtype.Q6_K:
		return i >= 208
	case dtype.Q8_K:
		return i < 4
	}
	return false
}

// BenchmarkDotRows streams a ~64 MiB weight matrix (far larger than any
// cache) of each type through DotRows on one goroutine; the reported MB/s
// is weight bytes per second.
func BenchmarkDotRows(b *testing.B) {
	const cols = 4096
	const target = 64 << 20
	for _, typ := range rowTypes {
		b.Run(typ.String(), func(b *testing.B) {
			rb := rdRowBytes(typ, cols)
			rows := target / rb
			r := rand.New(rand.NewPCG(1, 2))
			w := make([]byte, rows*rb)
			tmpl := rdRawRow(r, typ, cols*4) // 4 rows of valid random blocks
			for off := 0; off < len(w); off += len(tmpl) {
				copy(w[off:], tmpl)
				// vary the bytes so rows differ, keeping float fields
				for k := off; k < min(off+len(tmpl), len(w)); k += 97 {
					if !rdIsFloatField(typ, (k-off)%typ.TypeSize()) {
						w[k] ^= byte(k)
					}
				}
			}
			x := rdVec(r, cols)
			dst := make([]float32, rows)
			b.SetBytes(int64(len(w)))
			b.ReportAllocs()
			for b.Loop() {
				cpu.DotRows(typ, dst, w, rb, x)
			}
		})
	}
}

func ExampleDotRow() {
	w := []float32{1, 2, 3, 4}
	row := make([]byte, 8) // four F16 elements
	_ = dtype.Quantize(dtype.F16, w, row)
	fmt.Println(cpu.DotRow(dtype.F16, row, []float32{1, 1, 1, 0.5}))
	// Output: 8
}

// BenchmarkDotRowsQ8 runs the integer-activation row kernels over a small
// matrix that stays in cache (L2) and over 64 MiB (DRAM) on one goroutine:
// the first shows the kernel's compute speed, the second what memory
// allows. MB/s is weight bytes per second.
func BenchmarkDotRowsQ8(b *testing.B) {
	const cols = 4096
	for _, typ := range q8Types {
		for _, size := range []struct {
			name  string
			bytes int
		}{{"L2", 256 << 10}, {"DRAM", 64 << 20}} {
			b.Run(typ.String()+"/"+size.name, func(b *testing.B) {
				rb := rdRowBytes(typ, cols)
				rows := size.bytes / rb
				r := rand.New(rand.NewPCG(1, 2))
				w := make([]byte, rows*rb)
				tmpl := rdRawRow(r, typ, cols*4)
				for off := 0; off < len(w); off += len(tmpl) {
					copy(w[off:], tmpl)
				}
				var v cpu.QVec
				v.Quantize(typ, rdVec(r, cols))
				dst := make([]float32, rows)
				b.SetBytes(int64(len(w)))
				b.ReportAllocs()
				for b.Loop() {
					cpu.DotRowsQ8(typ, dst, w, rb, &v)
				}
			})
		}
	}
}
