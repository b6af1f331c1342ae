package dtype

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

var codecTypes = []Type{F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K}

// relBound is the largest |x − Dequantize(Quantize(x))| allowed, as a
// fraction of the block's largest magnitude. Derivations (step = the
// quantization step of the format):
//
//	F16 2⁻¹¹, BF16 2⁻⁸: half an ulp.
//	Q8_0  d = amax/127, error ≤ d/2 plus 127·|d − f16(d)| ≈ 0.56/127.
//	Q4_0  d = max/−8: values at −max clamp from 16 to 15, an error of one
//	      full step, 1/8 of amax.
//	Q4_1  step (max−min)/15 ≤ 2·amax/15, error half a step (1/15) plus the
//	      f16 rounding of d·15 and of m.
//	Q5_0  like Q4_0 with 16 levels a side: 1/16.
//	Q5_1  half of 2·amax/31.
//	Q8_K  d = max/−127 in float32, half a step: 0.5/127.
//	Q4_K  sub-block step ≤ 2·amax/15, but the weighted least-squares
//	      scale search may pick a smaller scale that clamps the extremes,
//	      and the scales and mins are then rounded to 6 bits against the
//	      block maxima (up to 15 levels × max_scale/126): measured worst
//	      0.093 on the stress inputs below; bound 0.15.
//	Q5_K  the same with 31 levels: measured 0.059; bound 0.08.
//	Q6_K  sub-block step amax/32 (half a step), plus the 8-bit scale
//	      rounding (32 levels × max_scale/256): measured 0.016; bound 0.03.
//
// absSlack covers blocks so small that d lands among the f16 subnormals
// (step 2⁻²⁴): 63 scale levels × 31 quant levels × 2⁻²⁴ for the K-quants.
var relBound = map[Type]float64{
	F32: 0, F16: 1.0 / 2048, BF16: 1.0 / 256,
	Q8_0: 0.6 / 127, Q4_0: 0.13, Q4_1: 0.071, Q5_0: 0.066, Q5_1: 0.034,
	Q8_K: 0.501 / 127, Q4_K: 0.15, Q5_K: 0.08, Q6_K: 0.03,
}

const absSlack = 2e-4

// checkRoundTrip quantizes x, fails the test if any block's max |x − x̂|
// exceeds relBound·amax + slack, and returns the worst ratio seen.
func checkRoundTrip(t testing.TB, typ Type, x []float32) (worst float64) {
	t.Helper()
	rb, err := typ.RowBytes(uint64(len(x)))
	if err != nil {
		t.Fatal(err)
	}
	q := make([]byte, rb)
	if err := Quantize(typ, x, q); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, len(x))
	if err := Dequantize(typ, q, y); err != nil {
		t.Fatal(err)
	}
	bs := typ.BlockSize()
	if typ == F32 || typ == F16 || typ == BF16 {
		bs = 1
	}
	for b := 0; b < len(x); b += bs {
		var amax, emax float64
		for i := b; i < b+bs; i++ {
			amax = math.Max(amax, math.Abs(float64(x[i])))
			emax = math.Max(emax, math.Abs(float64(x[i])-float64(y[i])))
		}
		if emax > relBound[typ]*amax+slackFor(typ) {
			t.Fatalf("%s block at %d: error %g > %g·%g (+%g); x = %v\ny = %v", typ, b, emax, relBound[typ], amax, absSlack, x[b:b+bs], y[b:b+bs])
		}
		if amax > 1e-2 { // where the slack does not matter
			worst = math.Max(worst, emax/amax)
		}
	}
	return worst
}

// slackFor is absSlack for the block types and half the smallest f16
// subnormal (2⁻²⁵) for the plain types.
func slackFor(typ Type) float64 {
	switch typ {
	case F32, F16, BF16:
		return 0x1p-25
	}
	return absSlack
}

// testInputs returns rows of 1024 values from several distributions,
// including ones that stress the scale searches.
func testInputs(seed uint64) map[string][]float32 {
	r := rand.New(rand.NewPCG(seed, 99))
	gen := func(f func(i int) float64) []float32 {
		x := make([]float32, 1024)
		for i := range x {
			x[i] = float32(f(i))
		}
		return x
	}
	return map[string][]float32{
		"normal":   gen(func(int) float64 { return r.NormFloat64() }),
		"uniform":  gen(func(int) float64 { return 2*r.Float64() - 1 }),
		"positive": gen(func(int) float64 { return 5 + r.Float64() }),
		"negative": gen(func(int) float64 { return -3 - 2*r.Float64() }),
		"outliers": gen(func(i int) float64 {
			if r.IntN(50) == 0 {
				return 40 * r.NormFloat64()
			}
			return 0.1 * r.NormFloat64()
		}),
		// sub-blocks of wildly different magnitudes inside one super-block
		"mixed": gen(func(i int) float64 {
			return math.Pow(10, -float64((i/16)%5)) * r.NormFloat64()
		}),
		"offsets": gen(func(i int) float64 {
			return float64((i/32)%7-3) + 0.01*r.NormFloat64()
		}),
		"sparse": gen(func(int) float64 {
			if r.IntN(10) == 0 {
				return r.NormFloat64()
			}
			return 0
		}),
		"zeros":    make([]float32, 1024),
		"constant": gen(func(int) float64 { return -0.75 }),
		"tiny":     gen(func(int) float64 { return 1e-6 * r.NormFloat64() }),
		"large":    gen(func(int) float64 { return 3000 * r.NormFloat64() }),
		"ints":     gen(func(int) float64 { return float64(r.IntN(15) - 7) }),
	}
}

func TestRoundTripBounds(t *testing.T) {
	for _, typ := range codecTypes {
		worst := 0.0
		for seed := uint64(0); seed < 4; seed++ {
			for _, x := range testInputs(seed) {
				worst = math.Max(worst, checkRoundTrip(t, typ, x))
			}
		}
		t.Logf("%-5s worst error / block max = %.4f (bound %.4f)", typ, worst, relBound[typ])
	}
}

func TestExactRoundTrips(t *testing.T) {
	// Values already on a format's grid survive a round trip unchanged.
	x := make([]float32, 256)
	for i := range x {
		x[i] = float32(i%16) - 8 // −8..7: Q4_0 grid with d = 1
	}
	for _, typ := range []Type{F32, F16, BF16, Q4_0, Q4_1, Q5_0} {
		y := roundTrip(t, typ, x)
		for i := range x {
			if x[i] != y[i] {
				t.Errorf("%s: x[%d] = %v came back as %v", typ, i, x[i], y[i])
				break
			}
		}
	}
	zero := make([]float32, 256)
	for _, typ := range codecTypes {
		rb, _ := typ.RowBytes(256)
		q := make([]byte, rb)
		for i := range q {
			q[i] = 0xa5 // must be overwritten
		}
		if err := Quantize(typ, zero, q); err != nil {
			t.Fatal(err)
		}
		// Q4_0 and Q5_0 store zero as the middle level (8 or 16) with d = 0.
		for i, c := range q {
			if c != 0 && typ != Q4_0 && typ != Q5_0 {
				t.Errorf("%s: zero input encodes byte %d as %#x, want all zero", typ, i, c)
				break
			}
		}
		y := make([]float32, 256)
		_ = Dequantize(typ, q, y)
		for i, v := range y {
			if v != 0 {
				t.Errorf("%s: zero input decodes element %d as %v", typ, i, v)
				break
			}
		}
	}
}

func roundTrip(t *testing.T, typ Type, x []float32) []float32 {
	t.Helper()
	rb, _ := typ.RowBytes(uint64(len(x)))
	q := make([]byte, rb)
	if err := Quantize(typ, x, q); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, len(x))
	if err := Dequantize(typ, q, y); err != nil {
		t.Fatal(err)
	}
	return y
}

// TestQuantizeDeterministic guards the encoders against reading
// uninitialised state: the same input into dirty and clean buffers gives
// the same bytes.
func TestQuantizeDeterministic(t *testing.T) {
	x := testInputs(7)["normal"]
	for _, typ := range codecTypes {
		rb, _ := typ.RowBytes(uint64(len(x)))
		a, b := make([]byte, rb), make([]byte, rb)
		for i := range b {
			b[i] = byte(i*31 + 7)
		}
		_ = Quantize(typ, x, a)
		_ = Quantize(typ, x, b)
		if string(a) != string(b) {
			t.Errorf("%s: output depends on the destination's old contents", typ)
		}
	}
}

func TestQ8KBsums(t *testing.T) {
	x := testInputs(3)["normal"]
	b := make([]byte, 4*292)
	_ = Quantize(Q8_K, x, b)
	for blk := 0; blk < 4; blk++ {
		q := b[blk*292:]
		for k := 0; k < 16; k++ {
			var s int
			for j := 0; j < 16; j++ {
				s += int(int8(q[4+16*k+j]))
			}
			if got := int(int16(binary.LittleEndian.Uint16(q[260+2*k:]))); got != s {
				t.Fatalf("block %d bsums[%d] = %d, want %d", blk, k, got, s)
			}
		}
	}
}

func TestCodecErrors(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"unknown", Dequantize(Type(5), nil, nil), "type(5)"},
		{"no codec", Dequantize(Q2_K, make([]byte, 84), make([]float32, 256)), "Q2_K"},
		{"no codec quantize", Quantize(IQ4_NL, make([]float32, 32), make([]byte, 18)), "IQ4_NL"},
		{"partial block", Dequantize(Q4_0, make([]byte, 18), make([]float32, 31)), "multiple"},
		{"short src", Dequantize(Q4_0, make([]byte, 17), make([]float32, 32)), "18 bytes"},
		{"long dst", Quantize(Q8_0, make([]float32, 32), make([]byte, 35)), "34 bytes"},
		{"f32 short", Dequantize(F32, make([]byte, 7), make([]float32, 2)), "8 bytes"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, c.err, c.want)
		}
	}
	if err := Dequantize(Q4_K, nil, nil); err != nil {
		t.Errorf("empty row: %v", err)
	}
}

// TestNonFinite: NaN and ±Inf inputs must not panic and must fill the
// whole output.
func TestNonFinite(t *testing.T) {
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, -math.MaxFloat32, 1e-45}
	r := rand.New(rand.NewPCG(5, 6))
	for _, typ := range codecTypes {
		for _, s := range specials {
			x := make([]float32, 512)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			x[r.IntN(512)] = s
			x[r.IntN(512)] = s
			roundTrip(t, typ, x)
			for i := range x {
				x[i] = s
			}
			roundTrip(t, typ, x)
		}
	}
}

// FuzzQuantRoundTrip: random floats (raw bit patterns, so NaN, Inf and
// extremes occur) → Quantize → Dequantize. Never panics; blocks whose
// values are finite and of moderate size decode within the type's bound.
func FuzzQuantRoundTrip(f *testing.F) {
	seed := make([]byte, 4*256)
	r := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 256; i++ {
		binary.LittleEndian.PutUint32(seed[4*i:], math.Float32bits(float32(r.NormFloat64())))
	}
	for i := range codecTypes {
		f.Add(uint8(i), seed)
	}
	f.Add(uint8(9), make([]byte, 1024))
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		typ := codecTypes[int(sel)%len(codecTypes)]
		bs := typ.BlockSize()
		n := len(data) / 4 / bs * bs
		if n == 0 {
			return
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		y := roundTrip(t, typ, x)
		if len(y) != n {
			t.Fatal("short output")
		}
		for b := 0; b < n; b += bs {
			var amax, emax float64
			ok := true
			for i := b; i < b+bs; i++ {
				v := float64(x[i])
				if math.IsNaN(v) || math.Abs(v) > 1e4 {
					ok = false
					break
				}
				amax = math.Max(amax, math.Abs(v))
				emax = math.Max(emax, math.Abs(v-float64(y[i])))
			}
			if !ok || typ == F32 || typ == F16 || typ == BF16 {
				// plain types: per element
				for i := b; ok && i < b+bs; i++ {
					v := float64(x[i])
					if e := math.Abs(v - float64(y[i])); e > relBound[typ]*math.Abs(v)+slackFor(typ) && math.Abs(v) < 65000 {
						t.Fatalf("%s: %v came back as %v", typ, x[i], y[i])
					}
				}
				continue
			}
			if emax > relBound[typ]*amax+absSlack {
				t.Fatalf("%s block at %d: error %g > %g·%g; x = %v", typ, b, emax, relBound[typ], amax, x[b:b+bs])
			}
		}
	})
}
