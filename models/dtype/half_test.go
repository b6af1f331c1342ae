package dtype

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The references below decide rounding by comparing exact distances in
// float64 against the sorted list of representable values, so they share
// no code or bit tricks with half.go.

// halfValue is the value of a non-negative, finite half bit pattern
// (0..0x7bff), or 65536 for 0x7c00: the "next value" above the largest
// finite half, which is where round-to-nearest overflows to Inf.
func halfValue(h uint16) float64 {
	if h >= 0x7c00 {
		return 65536
	}
	e := int(h >> 10)
	m := float64(h & 0x3ff)
	if e == 0 {
		return math.Ldexp(m, -24)
	}
	return math.Ldexp(1024+m, e-25)
}

// refF32ToF16 rounds a non-NaN float32 to the nearest half, ties to the even
// bit pattern, overflowing to Inf.
func refF32ToF16(f float32) uint16 {
	a := math.Abs(float64(f))
	var sign uint16
	if math.Signbit(float64(f)) {
		sign = 0x8000
	}
	if math.IsInf(a, 0) {
		return sign | 0x7c00
	}
	// largest h in [0, 0x7c00] with halfValue(h) <= a
	lo, hi := uint16(0), uint16(0x7c00)
	if a >= halfValue(hi) {
		return sign | 0x7c00
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if halfValue(mid) <= a {
			lo = mid
		} else {
			hi = mid
		}
	}
	dlo, dhi := a-halfValue(lo), halfValue(hi)-a // exact: few significant bits
	switch {
	case dlo < dhi:
		return sign | lo
	case dhi < dlo:
		return sign | hi
	case lo&1 == 0:
		return sign | lo
	}
	return sign | hi
}

func TestF16RoundTripAllHalves(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToF32(h)
		isNaN := h&0x7c00 == 0x7c00 && h&0x3ff != 0
		if isNaN {
			if f == f {
				t.Fatalf("F16ToF32(%#04x) = %v, want NaN", h, f)
			}
			// NaN keeps its sign and payload; narrowing sets the quiet bit.
			if got, want := F32ToF16(f), h|0x0200; got != want {
				t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x, want %#04x", h, got, want)
			}
			continue
		}
		if want := halfValue(h & 0x7fff); h&0x7fff != 0x7c00 && float64(abs32(f)) != want {
			t.Fatalf("F16ToF32(%#04x) = %v, want magnitude %v", h, f, want)
		}
		if got := F32ToF16(f); got != h {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x", h, got)
		}
	}
	if !math.IsInf(float64(F16ToF32(0x7c00)), 1) || !math.IsInf(float64(F16ToF32(0xfc00)), -1) {
		t.Fatal("half infinities do not widen to infinities")
	}
	if F16ToF32(0x8000) != 0 || !math.Signbit(float64(F16ToF32(0x8000))) {
		t.Fatal("half -0 does not widen to -0")
	}
}

func TestF32ToF16Rounding(t *testing.T) {
	check := func(f float32) {
		t.Helper()
		if got, want := F32ToF16(f), refF32ToF16(f); got != want {
			t.Fatalf("F32ToF16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
	// Hand-picked cases, with the answer spelled out.
	cases := []struct {
		f    float32
		want uint16
	}{
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},                             // largest half
		{65519.996, 0x7bff},                         // just below the midpoint to Inf
		{65520, 0x7c00},                             // midpoint 65504|65536: ties to even = Inf
		{1e6, 0x7c00},                               // overflow
		{float32(math.Ldexp(1, -24)), 0x0001},       // smallest subnormal
		{float32(math.Ldexp(1, -25)), 0x0000},       // half of it: tie, to even (0)
		{float32(math.Ldexp(1.0000001, -25)), 0x01}, // just above the tie
		{float32(math.Ldexp(3, -25)), 0x0002},       // 1.5 × smallest: tie, to even (2)
		{float32(math.Ldexp(5, -25)), 0x0002},       // 2.5 × smallest: tie, to even (2)
		{float32(math.Ldexp(1023, -24)), 0x03ff},    // largest subnormal
		{float32(math.Ldexp(2047, -25)), 0x0400},    // rounds up into the normals
		{1 + 1.0/2048, 0x3c00},                      // tie between 1 and 1+2⁻¹⁰: even = 1
		{1 + 3.0/2048, 0x3c02},                      // tie between 1+2⁻¹⁰ and 1+2⁻⁹: even
		{float32(math.Ldexp(1, -26)), 0x0000},       // underflow
		{float32(math.Inf(-1)), 0xfc00},
	}
	for _, c := range cases {
		if got := F32ToF16(c.f); got != c.want {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", c.f, got, c.want)
		}
		check(c.f)
	}
	if got := F32ToF16(float32(math.Copysign(0, -1))); got != 0x8000 {
		t.Errorf("F32ToF16(-0) = %#04x", got)
	}
	// NaN stays NaN with its sign.
	for _, bits := range []uint32{0x7fc00000, 0xffc00001, 0x7f800001, 0x7fbfffff} {
		h := F32ToF16(math.Float32frombits(bits))
		if h&0x7c00 != 0x7c00 || h&0x3ff == 0 || h>>15 != uint16(bits>>31) {
			t.Errorf("F32ToF16(NaN %#08x) = %#04x, want a NaN of the same sign", bits, h)
		}
	}
	// Every half, the midpoints between neighbours (exact ties) and one
	// float32 ulp either side of each midpoint.
	for h := uint16(0); h < 0x7c00; h++ {
		mid := float32((halfValue(h) + halfValue(h+1)) / 2)
		for _, f := range []float32{float32(halfValue(h)), mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e9)} {
			check(f)
			check(-f)
		}
	}
	// Every exponent and top mantissa pattern with assorted low bits.
	lows := []uint32{0, 1, 0x0fff, 0x1000, 0x1001, 0x1fff}
	for hi := uint32(0); hi < 1<<19; hi += 3 {
		for _, lo := range lows {
			bits := hi<<13 | lo
			if bits&0x7f800000 == 0x7f800000 && bits&0x7fffff != 0 {
				continue // NaN, checked above
			}
			check(math.Float32frombits(bits))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1<<18; i++ {
		bits := r.Uint32()
		if bits&0x7f800000 == 0x7f800000 && bits&0x7fffff != 0 {
			continue
		}
		check(math.Float32frombits(bits))
	}
}

// refF32ToBF16 rounds a non-NaN float32 to the nearest bfloat16 (the top 16
// bits), ties to even, overflowing to Inf.
func refF32ToBF16(f float32) uint16 {
	bits := math.Float32bits(f)
	lo := bits &^ 0xffff
	if bits == lo {
		return uint16(bits >> 16)
	}
	hiBits := lo + 0x10000 // next bf16 away from zero (may be Inf: exponent carry)
	a := math.Abs(float64(f))
	vlo := math.Abs(float64(math.Float32frombits(lo)))
	var vhi float64
	if hiBits&0x7fffffff == 0x7f800000 {
		vhi = math.Ldexp(1, 128) // the "value" of Inf as the next step
	} else {
		vhi = math.Abs(float64(math.Float32frombits(hiBits)))
	}
	dlo, dhi := a-vlo, vhi-a
	switch {
	case dlo < dhi:
		return uint16(lo >> 16)
	case dhi < dlo:
		return uint16(hiBits >> 16)
	case (lo>>16)&1 == 0:
		return uint16(lo >> 16)
	}
	return uint16(hiBits >> 16)
}

func TestBF16(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := BF16ToF32(h)
		if math.Float32bits(f) != uint32(h)<<16 {
			t.Fatalf("BF16ToF32(%#04x) bits = %#08x", h, math.Float32bits(f))
		}
		isNaN := h&0x7f80 == 0x7f80 && h&0x7f != 0
		got := F32ToBF16(f)
		if isNaN {
			if got != h|0x40 {
				t.Fatalf("F32ToBF16(BF16ToF32(NaN %#04x)) = %#04x, want %#04x", h, got, h|0x40)
			}
			continue
		}
		if got != h {
			t.Fatalf("F32ToBF16(BF16ToF32(%#04x)) = %#04x", h, got)
		}
	}
	check := func(f float32) {
		t.Helper()
		if got, want := F32ToBF16(f), refF32ToBF16(f); got != want {
			t.Fatalf("F32ToBF16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
	cases := []struct {
		bits uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // just above the tie
		{0x7f7fffff, 0x7f80}, // max float rounds to Inf
		{0x7f7f7fff, 0x7f7f}, // stays finite
		{0x00008000, 0x0000}, // subnormal tie to even (zero)
		{0x00018000, 0x0002}, // subnormal tie up to even
		{0x80000001, 0x8000}, // tiny negative rounds to -0
		{0xff800000, 0xff80}, // -Inf
	}
	for _, c := range cases {
		if got := F32ToBF16(math.Float32frombits(c.bits)); got != c.want {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", c.bits, got, c.want)
		}
		check(math.Float32frombits(c.bits))
	}
	for _, bits := range []uint32{0x7fc00000, 0xff800001, 0x7f800100} {
		h := F32ToBF16(math.Float32frombits(bits))
		if h&0x7f80 != 0x7f80 || h&0x40 == 0 || h>>15 != uint16(bits>>31) {
			t.Errorf("F32ToBF16(NaN %#08x) = %#04x, want a quiet NaN of the same sign", bits, h)
		}
	}
	lows := []uint32{0, 1, 0x7fff, 0x8000, 0x8001, 0xffff}
	for hi := uint32(0); hi < 1<<16; hi++ {
		for _, lo := range lows {
			bits := hi<<16 | lo
			if bits&0x7f800000 == 0x7f800000 && bits&0x7fffff != 0 {
				continue
			}
			check(math.Float32frombits(bits))
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 1<<18; i++ {
		bits := r.Uint32()
		if bits&0x7f800000 == 0x7f800000 && bits&0x7fffff != 0 {
			continue
		}
		check(math.Float32frombits(bits))
	}
}
