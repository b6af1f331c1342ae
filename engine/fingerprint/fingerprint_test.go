package fingerprint

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestInterpolate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 17, 128, 513} {
		seen := map[uint32]bool{}
		var x, y []uint32
		for len(x) < n {
			v := uint32(rng.IntN(Prime))
			if seen[v] {
				continue
			}
			seen[v] = true
			x = append(x, v)
			y = append(y, uint32(rng.IntN(Prime)))
		}
		c := interpolate(x, y)
		if len(c) != n {
			t.Fatalf("n=%d: %d coefficients", n, len(c))
		}
		for i := range x {
			if got := eval(c, x[i]); got != y[i] {
				t.Fatalf("n=%d: P(%d) = %d, want %d", n, x[i], got, y[i])
			}
		}
	}
}

func TestInverses(t *testing.T) {
	inv := inverses()
	for a := uint64(1); a < Prime; a++ {
		if a*uint64(inv[a])%Prime != 1 {
			t.Fatalf("inverse of %d is wrong", a)
		}
	}
}

func TestInjectiveModulus(t *testing.T) {
	var seen []uint16
	idx := []uint64{0, 1, 2, 65520}
	if m := injectiveModulus(idx, &seen); m != Prime {
		t.Errorf("small indices: modulus %d", m)
	}
	// 65521 and 0 collide modulo Prime; the next candidate separates them
	idx = []uint64{0, Prime, 7}
	m := injectiveModulus(idx, &seen)
	if m == 0 || m == Prime {
		t.Fatalf("modulus %d", m)
	}
	if idx[0]%uint64(m) == idx[1]%uint64(m) {
		t.Errorf("modulus %d is not injective", m)
	}
}

func TestQuantize(t *testing.T) {
	e := scaleExp(3) // 3 < 4 = 2²
	if e != 2 {
		t.Fatalf("scaleExp(3) = %d", e)
	}
	for _, v := range []float32{0, 1, -1, 3, -3.999, 1e-9} {
		q := quantize(v, e)
		if got := signed(residue(q)); got != q {
			t.Errorf("residue round trip of %d gave %d", q, got)
		}
		if back := math.Ldexp(float64(q), int(e)-ValueBits); math.Abs(back-float64(v)) > math.Ldexp(1, int(e)-ValueBits-1) {
			t.Errorf("quantize(%g) = %d (%g)", v, q, back)
		}
	}
	if q := quantize(float32(math.Inf(1)), 0); q != QMax {
		t.Errorf("+Inf quantized to %d", q)
	}
	if q := quantize(float32(math.NaN()), 0); q != 0 {
		t.Errorf("NaN quantized to %d", q)
	}
}

// states makes n hidden states of width dim: a few outlier dimensions,
// as trained models have, plus noise.
func states(seed uint64, n, dim int) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	gain := make([]float32, dim)
	for i := range gain {
		gain[i] = 1 + float32(rng.ExpFloat64())
	}
	hs := make([][]float32, n)
	for t := range hs {
		hs[t] = make([]float32, dim)
		for i := range hs[t] {
			hs[t][i] = gain[i] * float32(rng.NormFloat64())
		}
	}
	return hs
}

func prove(t testing.TB, p Params, hs [][]float32, prompt int) *Proof {
	t.Helper()
	e, err := NewEncoder(p, len(hs[0]), prompt)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		e.Add(h)
	}
	pr, err := e.Proof()
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func check(pr *Proof, p Params, hs [][]float32, prompt int) Report {
	k := NewChecker(pr, p, DefaultTolerances, len(hs[0]), prompt, len(hs))
	if !k.Done() {
		for _, h := range hs {
			k.Add(h)
		}
	}
	return k.Report()
}

func perturb(hs [][]float32, rel float64, seed uint64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 9))
	out := make([][]float32, len(hs))
	for t, h := range hs {
		out[t] = make([]float32, len(h))
		for i, v := range h {
			out[t][i] = v * float32(1+rel*rng.NormFloat64())
		}
	}
	return out
}

func TestRoundTripAndSelfCheck(t *testing.T) {
	p := DefaultParams
	for _, tc := range []struct{ n, prompt, dim int }{
		{1, 1, 8}, {5, 5, 3}, {40, 7, 64}, {7 + 64, 7, 64}, {300, 20, 256}, {50, 10, 4096},
	} {
		hs := states(uint64(tc.n), tc.n, tc.dim)
		pr := prove(t, p, hs, tc.prompt)
		b := pr.Encode()
		if len(b) != pr.Size() {
			t.Fatalf("%+v: encoded %d bytes, Size %d", tc, len(b), pr.Size())
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if !bytes.Equal(back.Encode(), b) {
			t.Fatalf("%+v: re-encoding differs", tc)
		}
		r := check(back, p, hs, tc.prompt)
		if !r.OK || r.Misses != 0 || r.MaxErr != 0 {
			t.Errorf("%+v: self-check %+v", tc, r)
		}
		// f32 rounding noise passes
		if r := check(back, p, perturb(hs, 1e-6, 1), tc.prompt); !r.OK {
			t.Errorf("%+v: 1e-6 noise rejected: %s", tc, r.Reason)
		}
		// errors of several percent (a coarser quantization) fail
		if r := check(back, p, perturb(hs, 0.1, 2), tc.prompt); r.OK {
			t.Errorf("%+v: 10%% noise accepted: %+v", tc, r)
		}
	}
}

func TestAlteredToken(t *testing.T) {
	p := DefaultParams
	const n, prompt, dim = 100, 10, 64
	hs := states(3, n, dim)
	pr := prove(t, p, hs, prompt)
	other := states(4, n, dim)
	// one token alone (in a real model later states change too; here the
	// running mean does)
	for _, pos := range []int{0, 5, 9, 10, 41, 73, 99} {
		alt := append([][]float32(nil), hs...)
		alt[pos] = other[pos]
		if r := check(pr, p, alt, prompt); r.OK {
			t.Errorf("token %d replaced: accepted %+v", pos, r)
		}
	}
}

func TestHeaderMismatch(t *testing.T) {
	hs := states(5, 20, 16)
	pr := prove(t, DefaultParams, hs, 4)
	for name, r := range map[string]Report{
		"params": check(pr, Params{Interval: 16, TopK: 4, PromptTopK: 4}, hs, 4),
		"prompt": check(pr, DefaultParams, hs, 5),
		"tokens": check(pr, DefaultParams, hs[:19], 4),
		"dim": func() Report {
			k := NewChecker(pr, DefaultParams, DefaultTolerances, 32, 4, 20)
			return k.Report()
		}(),
	} {
		if r.OK || r.Reason == "" {
			t.Errorf("%s mismatch accepted: %+v", name, r)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	b := prove(t, DefaultParams, states(6, 40, 16), 8).Encode()
	bad := map[string][]byte{
		"empty":     nil,
		"short":     b[:HeaderSize-1],
		"magic":     append([]byte("XXXX"), b[4:]...),
		"truncated": b[:len(b)-1],
		"long":      append(append([]byte(nil), b...), 0),
	}
	v := append([]byte(nil), b...)
	v[4] = 9
	bad["version"] = v
	c := append([]byte(nil), b...)
	c[HeaderSize+3], c[HeaderSize+4] = 0xff, 0xff // first coefficient 65535
	bad["coefficient"] = c
	m := append([]byte(nil), b...)
	m[HeaderSize+1], m[HeaderSize+2] = 1, 0 // modulus 1
	bad["modulus"] = m
	z := append([]byte(nil), b...)
	z[6], z[7] = 0, 0 // interval 0
	bad["interval"] = z
	for name, in := range bad {
		if _, err := Decode(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range []struct{ n, prompt, dim int }{{1, 1, 1}, {3, 1, 2}, {40, 8, 16}, {70, 3, 5}} {
		f.Add(prove(f, DefaultParams, states(uint64(tc.n), tc.n, tc.dim), tc.prompt).Encode())
	}
	f.Add(prove(f, Params{Interval: 1, TopK: 1, PromptTopK: 1}, states(1, 4, 3), 2).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		out := p.Encode()
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip changed %d bytes into %d", len(b), len(out))
		}
		// a decoded proof can always be checked without panicking
		if p.Dim <= 64 && p.Tokens <= 256 {
			hs := states(1, p.Tokens, p.Dim)
			check(p, p.Params, hs, p.Prompt)
		}
	})
}

func BenchmarkEncoder(b *testing.B) {
	hs := states(1, 288, 4096)
	b.ReportAllocs()
	for b.Loop() {
		e, _ := NewEncoder(DefaultParams, 4096, 32)
		for _, h := range hs {
			e.Add(h)
		}
		if _, err := e.Proof(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppendTop(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for range 500 {
		n, k := 1+rng.IntN(40), 1+rng.IntN(6)
		h := make([]float32, n)
		for i := range h {
			h[i] = float32(rng.IntN(7) - 3) // many ties
			if rng.IntN(10) == 0 {
				h[i] = float32(math.NaN())
			}
		}
		got := appendTop([]entry{{99, 1}}, h, k, 100)[1:]
		var want []entry
		for i, v := range h {
			want = append(want, entry{100 + uint64(i), v})
		}
		slices.SortStableFunc(want, func(a, b entry) int {
			if better(a, b) {
				return -1
			}
			return 1
		})
		want = want[:min(k, n)]
		if len(got) != len(want) {
			t.Fatalf("%v top-%d: got %v, want %v", h, k, got, want)
		}
		for i := range got {
			if got[i].idx != want[i].idx {
				t.Fatalf("%v top-%d: got %v, want %v", h, k, got, want)
			}
		}
	}
}
