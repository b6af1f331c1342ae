package fingerprint

import (
	"math"
	"slices"
	"sync"
)

// Values and polynomial coefficients live in GF(Prime), Prime being the
// largest prime below 2¹⁶, so a coefficient fits in two bytes. (TOPLOC
// uses 65497 with bfloat16 bit patterns; Stoke's values are signed
// fixed-point numbers and need the field's whole half-range.)
const Prime = 65521

// MinModulus is the smallest index modulus a prover may choose: entry
// indices (up to 2³⁶ for a long prompt) are reduced modulo a number in
// [MinModulus, Prime] under which the group's indices stay distinct, so
// they are distinct interpolation nodes.
const MinModulus = 1 << 15

// maxModulusTries bounds the search for an injective modulus; when it
// fails (practically never below a few hundred entries) the prover keeps
// the larger of two colliding entries and the verifier sees a miss.
const maxModulusTries = 4096

// Fixed-point values: q = round(v·2^(ValueBits−E)) for a group whose
// largest |v| is below 2^E, clamped to ±QMax, stored as q mod Prime.
const (
	ValueBits = 15
	QMax      = (Prime - 1) / 2
)

var (
	invOnce sync.Once
	invTab  []uint32 // invTab[a]·a ≡ 1 (mod Prime) for 0 < a < Prime
)

// inverses returns the table of inverses modulo Prime, built once by
// inv[a] = −⌊P/a⌋·inv[P mod a].
func inverses() []uint32 {
	invOnce.Do(func() {
		t := make([]uint32, Prime)
		t[1] = 1
		for a := uint32(2); a < Prime; a++ {
			t[a] = (Prime - (Prime/a)*t[Prime%a]%Prime) % Prime
		}
		invTab = t
	})
	return invTab
}

// interpolate returns the coefficients c (c[0] constant term) of the
// polynomial of degree < len(x) through the points (x[i], y[i]) over
// GF(Prime), by Newton's divided differences expanded to the monomial
// basis. The x must be distinct residues; y are residues. O(n²).
func interpolate(x, y []uint32) []uint16 {
	n := len(x)
	if n == 0 {
		return nil
	}
	inv := inverses()
	dd := make([]uint64, n)
	for i := range dd {
		dd[i] = uint64(y[i])
	}
	// dd[i] ← (dd[i] − dd[i−1]) / (x[i] − x[i−k]) for k = 1..n−1: after
	// the loop dd[i] is the divided difference f[x_0 … x_i].
	for k := 1; k < n; k++ {
		for i := n - 1; i >= k; i-- {
			num := (dd[i] + Prime - dd[i-1]) % Prime
			den := (x[i] + Prime - x[i-k]) % Prime
			dd[i] = num * uint64(inv[den]) % Prime
		}
	}
	// c = Σ dd[i]·Π_{j<i}(X − x_j), accumulating the product basis in f.
	c := make([]uint64, n)
	f := make([]uint64, n)
	f[0] = 1
	for i := range n {
		for j := 0; j <= i; j++ {
			c[j] = (c[j] + dd[i]*f[j]) % Prime
		}
		if i+1 == n {
			break
		}
		// f ← f·(X − x_i)
		neg := uint64(Prime-x[i]) % Prime
		for j := i + 1; j > 0; j-- {
			f[j] = (f[j-1] + f[j]*neg) % Prime
		}
		f[0] = f[0] * neg % Prime
	}
	out := make([]uint16, n)
	for i, v := range c {
		out[i] = uint16(v)
	}
	return out
}

// eval returns Σ c[i]·xⁱ mod Prime by Horner's rule (x < Prime).
func eval(c []uint16, x uint32) uint32 {
	var r uint64
	for i := len(c) - 1; i >= 0; i-- {
		r = (r*uint64(x) + uint64(c[i])) % Prime
	}
	return uint32(r)
}

// injectiveModulus returns the largest m in [MinModulus, Prime] under
// which the (distinct) indices stay distinct, or 0 when the bounded search
// finds none. seen is scratch of Prime stamps, allocated on first need.
func injectiveModulus(idx []uint64, seen *[]uint16) uint32 {
	if len(idx) > MinModulus {
		return 0
	}
	if slices.Max(append([]uint64{0}, idx...)) < Prime {
		return Prime // small indices are their own residues
	}
	if *seen == nil {
		*seen = make([]uint16, Prime)
	}
	st := *seen
	clear(st)
	for try := 1; try <= maxModulusTries; try++ {
		m := uint64(Prime - try + 1)
		if m < MinModulus {
			break
		}
		ok := true
		for _, i := range idx {
			r := i % m
			if st[r] == uint16(try) {
				ok = false
				break
			}
			st[r] = uint16(try)
		}
		if ok {
			return uint32(m)
		}
	}
	return 0
}

// scaleExp returns E with maxAbs < 2^E (E = 0 for 0), clamped to int8.
func scaleExp(maxAbs float32) int8 {
	if !(maxAbs > 0) {
		return 0
	}
	_, e := math.Frexp(float64(maxAbs))
	return int8(min(max(e, math.MinInt8), math.MaxInt8))
}

// quantize returns v in units of 2^(e−ValueBits), rounded and clamped to
// ±QMax.
func quantize(v float32, e int8) int32 {
	q := math.RoundToEven(math.Ldexp(float64(v), ValueBits-int(e)))
	switch {
	case q > QMax:
		return QMax
	case q < -QMax:
		return -QMax
	case q != q:
		return 0
	}
	return int32(q)
}

// residue maps a signed value in [−QMax, QMax] into GF(Prime).
func residue(q int32) uint32 {
	if q < 0 {
		return uint32(q + Prime)
	}
	return uint32(q)
}

// signed maps a residue back to [−QMax, QMax].
func signed(r uint32) int32 {
	if r > QMax {
		return int32(r) - Prime
	}
	return int32(r)
}
