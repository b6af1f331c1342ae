package dtype

import (
	"math"
	"testing"
)

// Golden blocks built byte by byte from the format definitions in
// ggml-common.h. The scales are powers of two, so every expected value is
// exact and is computed here in float64 from the formula, restated in the
// simplest form rather than the decoder's loop structure.

func f16bytes(h uint16) []byte { return []byte{byte(h), byte(h >> 8)} }

func checkDecode(t *testing.T, typ Type, block []byte, want []float64) {
	t.Helper()
	if len(block) != typ.TypeSize() || len(want) != typ.BlockSize() {
		t.Fatalf("%s golden: %d bytes / %d values, want %d / %d", typ, len(block), len(want), typ.TypeSize(), typ.BlockSize())
	}
	got := make([]float32, len(want))
	if err := Dequantize(typ, block, got); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if float64(got[i]) != want[i] {
			t.Fatalf("%s element %d = %v, want %v", typ, i, got[i], want[i])
		}
	}
}

func TestGoldenPlain(t *testing.T) {
	checkDecode(t, F32, []byte{0x00, 0x00, 0xc0, 0x3f}, []float64{1.5})
	checkDecode(t, F32, []byte{0x00, 0x00, 0x80, 0xff}, []float64{math.Inf(-1)})
	checkDecode(t, F16, []byte{0x00, 0x3c}, []float64{1})
	checkDecode(t, F16, []byte{0x00, 0xc0}, []float64{-2})
	checkDecode(t, F16, []byte{0xff, 0x7b}, []float64{65504})
	checkDecode(t, F16, []byte{0x01, 0x00}, []float64{math.Ldexp(1, -24)})
	checkDecode(t, F16, []byte{0x55, 0x35}, []float64{0.333251953125}) // 0x3555
	checkDecode(t, BF16, []byte{0x80, 0x3f}, []float64{1})
	checkDecode(t, BF16, []byte{0x49, 0x40}, []float64{3.140625})
	checkDecode(t, BF16, []byte{0x80, 0xc2}, []float64{-64})
}

func TestGoldenQ4_0(t *testing.T) {
	// d = 0.5 (f16 0x3800); qs[j] = j | (15−j)<<4.
	b := f16bytes(0x3800)
	for j := 0; j < 16; j++ {
		b = append(b, byte(j|(15-j)<<4))
	}
	want := make([]float64, 32)
	for j := 0; j < 16; j++ {
		want[j] = 0.5 * float64(j-8)    // low nibble
		want[j+16] = 0.5 * float64(7-j) // high nibble 15−j, minus 8
	}
	// spot values by hand: nibble 0 → −4, nibble 15 → 3.5
	if want[0] != -4 || want[15] != 3.5 || want[16] != 3.5 || want[31] != -4 {
		t.Fatal("golden table wrong")
	}
	checkDecode(t, Q4_0, b, want)
}

func TestGoldenQ4_1(t *testing.T) {
	// d = 0.25 (0x3400), m = −1 (0xbc00); qs[j] = j | (15−j)<<4.
	b := append(f16bytes(0x3400), f16bytes(0xbc00)...)
	for j := 0; j < 16; j++ {
		b = append(b, byte(j|(15-j)<<4))
	}
	want := make([]float64, 32)
	for j := 0; j < 16; j++ {
		want[j] = 0.25*float64(j) - 1
		want[j+16] = 0.25*float64(15-j) - 1
	}
	if want[0] != -1 || want[15] != 2.75 {
		t.Fatal("golden table wrong")
	}
	checkDecode(t, Q4_1, b, want)
}

func TestGoldenQ5_0(t *testing.T) {
	// d = 1 (0x3c00); qh = 0xaaaa5555 little-endian: bit j is set for even
	// j < 16 and for odd j ≥ 16; qs[j] = j | (15−j)<<4.
	b := append(f16bytes(0x3c00), 0x55, 0x55, 0xaa, 0xaa)
	for j := 0; j < 16; j++ {
		b = append(b, byte(j|(15-j)<<4))
	}
	want := make([]float64, 32)
	for i := 0; i < 32; i++ {
		var nib int
		if i < 16 {
			nib = i
		} else {
			nib = 15 - (i - 16)
		}
		if (i < 16 && i%2 == 0) || (i >= 16 && i%2 == 1) {
			nib += 16
		}
		want[i] = float64(nib - 16)
	}
	if want[0] != 0 || want[1] != -15 || want[16] != -1 || want[17] != 14 {
		t.Fatal("golden table wrong")
	}
	checkDecode(t, Q5_0, b, want)
}

func TestGoldenQ5_1(t *testing.T) {
	// d = 0.5 (0x3800), m = 2 (0x4000); qh = 0xffff0000: only the upper 16
	// elements get the fifth bit.
	b := append(f16bytes(0x3800), f16bytes(0x4000)...)
	b = append(b, 0x00, 0x00, 0xff, 0xff)
	for j := 0; j < 16; j++ {
		b = append(b, byte(j|(15-j)<<4))
	}
	want := make([]float64, 32)
	for j := 0; j < 16; j++ {
		want[j] = 0.5*float64(j) + 2
		want[j+16] = 0.5*float64(15-j+16) + 2
	}
	if want[0] != 2 || want[16] != 17.5 {
		t.Fatal("golden table wrong")
	}
	checkDecode(t, Q5_1, b, want)
}

func TestGoldenQ8_0(t *testing.T) {
	// d = 0.125 (0x3000); qs[j] = 8j − 128 as int8.
	b := f16bytes(0x3000)
	want := make([]float64, 32)
	for j := 0; j < 32; j++ {
		q := 8*j - 128
		b = append(b, byte(int8(q)))
		want[j] = 0.125 * float64(q)
	}
	if want[0] != -16 || want[31] != 15 {
		t.Fatal("golden table wrong")
	}
	checkDecode(t, Q8_0, b, want)
}

// The 12 packed scale bytes for sub-block scales sc = {1, 2, 3, 4, 17, 33,
// 49, 63} and mins m = {5, 6, 7, 8, 20, 40, 60, 0}, packed by hand:
//
//	bytes 0..3  = sc[0..3] | (sc[4..7] >> 4) << 6 = 1|1<<6, 2|2<<6, 3|3<<6, 4|3<<6
//	bytes 4..7  = m[0..3]  | (m[4..7] >> 4) << 6  = 5|1<<6, 6|2<<6, 7|3<<6, 8|0<<6
//	bytes 8..11 = (sc[4..7] & 15) | (m[4..7] & 15) << 4 = 1|4<<4, 1|8<<4, 1|12<<4, 15|0<<4
var (
	goldenK4Scales = []byte{0x41, 0x82, 0xc3, 0xc4, 0x45, 0x86, 0xc7, 0x08, 0x41, 0x81, 0xc1, 0x0f}
	goldenK4Sc     = []int{1, 2, 3, 4, 17, 33, 49, 63}
	goldenK4M      = []int{5, 6, 7, 8, 20, 40, 60, 0}
)

func TestScaleMinK4(t *testing.T) {
	for j := 0; j < 8; j++ {
		sc, m := scaleMinK4(j, goldenK4Scales)
		if int(sc) != goldenK4Sc[j] || int(m) != goldenK4M[j] {
			t.Errorf("sub-block %d: sc, m = %d, %d, want %d, %d", j, sc, m, goldenK4Sc[j], goldenK4M[j])
		}
	}
	var packed [12]byte
	for j := 0; j < 8; j++ {
		putScaleMinK4(j, packed[:], uint8(goldenK4Sc[j]), uint8(goldenK4M[j]))
	}
	if string(packed[:]) != string(goldenK4Scales) {
		t.Errorf("putScaleMinK4 packed % x, want % x", packed, goldenK4Scales)
	}
}

func TestGoldenQ4_K(t *testing.T) {
	// d = 0.5 (0x3800), dmin = 0.25 (0x3400), the hand-packed scales, and
	// qs[k] = k*7 mod 256. Element i lies in sub-block s = i/32; its nibble
	// is the low half of qs[32·(i/64) + i%32] when s is even, the high half
	// when s is odd. x = 0.5·sc[s]·q − 0.25·m[s].
	b := append(f16bytes(0x3800), f16bytes(0x3400)...)
	b = append(b, goldenK4Scales...)
	qs := make([]byte, 128)
	for k := range qs {
		qs[k] = byte(k * 7)
	}
	b = append(b, qs...)
	want := make([]float64, 256)
	for i := range want {
		s := i / 32
		byt := qs[32*(i/64)+i%32]
		q := int(byt & 15)
		if s%2 == 1 {
			q = int(byt >> 4)
		}
		want[i] = 0.5*float64(goldenK4Sc[s])*float64(q) - 0.25*float64(goldenK4M[s])
	}
	// by hand: element 1 is sub-block 0, qs[1] = 7, low nibble 7 → 0.5·1·7 − 0.25·5
	if want[1] != 2.25 {
		t.Fatal("golden table wrong")
	}
	checkDecode(t, Q4_K, b, want)
}

func TestGoldenQ5_K(t *testing.T) {
	// As Q4_K with d = 0.25 (0x3400), dmin = 0.5 (0x3800), qh[l] = l·37 mod
	// 256, qs[k] = k·11 mod 256. Element i (sub-block s = i/32) takes its
	// fifth bit from bit s of qh[i%32].
	b := append(f16bytes(0x3400), f16bytes(0x3800)...)
	b = append(b, goldenK4Scales...)
	qh := make([]byte, 32)
	for l := range qh {
		qh[l] = byte(l * 37)
	}
	qs := make([]byte, 128)
	for k := range qs {
		qs[k] = byte(k * 11)
	}
	b = append(b, qh...)
	b = append(b, qs...)
	want := make([]float64, 256)
	for i := range want {
		s := i / 32
		byt := qs[32*(i/64)+i%32]
		q := int(byt & 15)
		if s%2 == 1 {
			q = int(byt >> 4)
		}
		q += 16 * int(qh[i%32]>>s&1)
		want[i] = 0.25*float64(goldenK4Sc[s])*float64(q) - 0.5*float64(goldenK4M[s])
	}
	checkDecode(t, Q5_K, b, want)
}

func TestGoldenQ6_K(t *testing.T) {
	// ql[k] = k·13, qh[k] = k·29 + 7, scales alternate in sign and include
	// −128, d = 0.25 (0x3400) at the end. Element i: half h = i/128, r =
	// i%128, quarter k = r/32, l = r%32; low 4 bits from ql[64h + 32·(k%2) +
	// l] (low nibble for k < 2, high for k ≥ 2), high 2 bits are bits 2k,
	// 2k+1 of qh[32h + l]; value (q − 32)·d·scales[i/16].
	ql := make([]byte, 128)
	for k := range ql {
		ql[k] = byte(k * 13)
	}
	qh := make([]byte, 64)
	for k := range qh {
		qh[k] = byte(k*29 + 7)
	}
	scales := []int8{1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 127, -128}
	b := append([]byte{}, ql...)
	b = append(b, qh...)
	for _, s := range scales {
		b = append(b, byte(s))
	}
	b = append(b, f16bytes(0x3400)...)
	want := make([]float64, 256)
	for i := range want {
		h, r := i/128, i%128
		k, l := r/32, r%32
		src := ql[64*h+32*(k%2)+l]
		lowBits := int(src & 15)
		if k >= 2 {
			lowBits = int(src >> 4)
		}
		highBits := int(qh[32*h+l]>>(2*k)) & 3
		q := lowBits | highBits<<4
		want[i] = 0.25 * float64(scales[i/16]) * float64(q-32)
	}
	checkDecode(t, Q6_K, b, want)
}

func TestGoldenQ8_K(t *testing.T) {
	// d = 0.0625 as float32 (0x3d800000), qs[j] = j − 128 as int8, bsums
	// arbitrary (not used to decode).
	b := []byte{0x00, 0x00, 0x80, 0x3d}
	want := make([]float64, 256)
	for j := 0; j < 256; j++ {
		b = append(b, byte(int8(j-128)))
		want[j] = 0.0625 * float64(j-128)
	}
	for k := 0; k < 32; k++ {
		b = append(b, byte(k*3))
	}
	checkDecode(t, Q8_K, b, want)
}

// Golden encodings: small inputs whose quantization can be worked out by
// hand from the reference algorithms.
func TestGoldenEncode(t *testing.T) {
	// Q8_0: amax = 127 → d = 1, q = x.
	x := make([]float32, 32)
	for j := range x {
		x[j] = float32(j*8 - 127)
	}
	x[31] = 127 // amax 127 with both signs present
	b := make([]byte, 34)
	if err := Quantize(Q8_0, x, b); err != nil {
		t.Fatal(err)
	}
	if b[0] != 0x00 || b[1] != 0x3c {
		t.Fatalf("Q8_0 d = % x, want 00 3c (1.0)", b[:2])
	}
	for j := range x {
		if int8(b[2+j]) != int8(x[j]) {
			t.Fatalf("Q8_0 q[%d] = %d, want %v", j, int8(b[2+j]), x[j])
		}
	}
	// Q8_0 rounds half away from zero: amax 127, x = 2.5 → 3, −2.5 → −3.
	x[0], x[1] = 2.5, -2.5
	_ = Quantize(Q8_0, x, b)
	if int8(b[2]) != 3 || int8(b[3]) != -3 {
		t.Fatalf("Q8_0 round(±2.5) = %d, %d, want 3, −3", int8(b[2]), int8(b[3]))
	}

	// Q4_0: max = −8 (largest magnitude, negative) → d = 1, q = x + 8,
	// except the clamp: x = 8 would be 16 → 15.
	for j := range x {
		x[j] = float32(j%16 - 8)
	}
	x[5] = 7.4 // rounds to 7: trunc(7.4 + 8.5) = 15
	x[6] = 0.5 // trunc(9.0) = 9 → value 1 (rounds half up)
	b = make([]byte, 18)
	_ = Quantize(Q4_0, x, b)
	if b[0] != 0x00 || b[1] != 0x3c {
		t.Fatalf("Q4_0 d = % x, want 00 3c", b[:2])
	}
	for j := 0; j < 32; j++ {
		q := int(b[2+j%16] & 15)
		if j >= 16 {
			q = int(b[2+j%16] >> 4)
		}
		want := int(math.Floor(float64(x[j]) + 8.5))
		if q != want {
			t.Fatalf("Q4_0 q[%d] = %d, want %d", j, q, want)
		}
	}

	// Q8_K: max = −127 → d = 1 exactly, bsums are sums of 16.
	x = make([]float32, 256)
	for j := range x {
		x[j] = float32(j%64 - 32)
	}
	x[100] = -127
	b = make([]byte, 292)
	_ = Quantize(Q8_K, x, b)
	if math.Float32frombits(uint32(b[0])|uint32(b[1])<<8|uint32(b[2])<<16|uint32(b[3])<<24) != 1 {
		t.Fatalf("Q8_K d bytes % x, want 1.0", b[:4])
	}
	for k := 0; k < 16; k++ {
		var s int
		for j := 16 * k; j < 16*k+16; j++ {
			s += int(x[j])
		}
		if got := int(int16(uint16(b[260+2*k]) | uint16(b[261+2*k])<<8)); got != s {
			t.Fatalf("Q8_K bsums[%d] = %d, want %d", k, got, s)
		}
	}
}
