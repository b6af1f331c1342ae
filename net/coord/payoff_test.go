package coord_test

import (
	"math"
	"testing"

	"github.com/stokehq/stoke/net/coord"
)

func TestMinCheckProbability(t *testing.T) {
	// the condition is tight: at the minimum the cheater breaks even,
	// above it loses, below it wins
	C, R, S, r := 2.0, 1.0, 99.0, 0.1
	p := coord.MinCheckProbability(C, R, S, r)
	if want := C / ((1 - r) * (R + S)); math.Abs(p-want) > 1e-15 {
		t.Fatalf("p* = %g, want %g", p, want)
	}
	if g := coord.CheatGain(C, R, S, p, r); math.Abs(g) > 1e-12 {
		t.Fatalf("gain at p* = %g, want 0", g)
	}
	if coord.CheatGain(C, R, S, 1.01*p, r) >= 0 || coord.CheatGain(C, R, S, 0.99*p, r) <= 0 {
		t.Fatal("gain does not change sign at p*")
	}
	// the penalty form is the same condition solved for S
	if s := coord.MinPenalty(C, R, p, r); math.Abs(s-S) > 1e-9 {
		t.Fatalf("S* at p* = %g, want %g", s, S)
	}
	// Hyperbolic's example shape: at r = 10 %, large R+S against C gives p < 1 %
	if p := coord.MinCheckProbability(1, 10, 1000, 0.1); p >= 0.01 {
		t.Fatalf("p* = %g", p)
	}
	if !math.IsInf(coord.MinCheckProbability(1, 1, 1, 1), 1) {
		t.Fatal("full collusion must need p = ∞")
	}
}

func TestBinomialTail(t *testing.T) {
	cases := []struct {
		n, f int
		eps  float64
		want float64
	}{
		{10, 0, 0.1, 1},
		{10, 11, 0.1, 0},
		{1, 1, 0.01, 0.01},
		{2, 2, 0.01, 1e-4},
		{3, 1, 0.5, 0.875},
		{4, 2, 0.5, 11.0 / 16},
		{64, 64, 0.5, math.Pow(0.5, 64)},
	}
	for _, c := range cases {
		if got := coord.BinomialTail(c.n, c.f, c.eps); math.Abs(got-c.want) > 1e-12*math.Max(1, c.want) && math.Abs(got/c.want-1) > 1e-9 {
			t.Errorf("P(Bin(%d, %g) ≥ %d) = %g, want %g", c.n, c.eps, c.f, got, c.want)
		}
	}
	// against a direct sum
	n, eps := 40, 0.03
	for f := 0; f <= n; f++ {
		s := 0.0
		for k := f; k <= n; k++ {
			s += choose(n, k) * math.Pow(eps, float64(k)) * math.Pow(1-eps, float64(n-k))
		}
		if got := coord.BinomialTail(n, f, eps); math.Abs(got-s) > 1e-12+1e-9*s {
			t.Fatalf("f = %d: %g, want %g", f, got, s)
		}
	}
}

func choose(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}

func TestFailuresToQuarantine(t *testing.T) {
	cases := []struct {
		eps, alpha float64
		want       int
	}{
		{0.01, 1e-4, 2}, {0.01, 1e-6, 3}, {0.001, 1e-6, 2}, {0.1, 1e-6, 6}, {0.5, 0.5, 1},
	}
	for _, c := range cases {
		if got := coord.FailuresToQuarantine(c.eps, c.alpha); got != c.want {
			t.Errorf("ε %g, α %g: %d, want %d", c.eps, c.alpha, got, c.want)
		}
		// the run it names is the shortest whose tail is ≤ α
		f := coord.FailuresToQuarantine(c.eps, c.alpha)
		if coord.BinomialTail(f, f, c.eps) > c.alpha*(1+1e-9) || (f > 1 && coord.BinomialTail(f-1, f-1, c.eps) <= c.alpha) {
			t.Errorf("ε %g, α %g: %d is not the shortest run", c.eps, c.alpha, f)
		}
	}
	if got := coord.ExpectedJobsToQuarantine(0.05, 0.1, 0.01, 1e-4); math.Abs(got-2/(0.05*0.9)) > 1e-9 {
		t.Fatalf("expected jobs %g", got)
	}
}

// TestQuarantineRule: at the default ε and α, an honest node with a
// failure now and then is not quarantined, while consecutive failures are.
func TestQuarantineRule(t *testing.T) {
	pol := coord.DefaultPolicy
	// one failure in any window: tail ≥ ε > α
	for n := 1; n <= coord.WindowSize; n++ {
		if coord.BinomialTail(n, 1, pol.FalseReject) <= pol.Alpha {
			t.Fatalf("one failure in %d checks would quarantine", n)
		}
	}
	// two failures in two checks: quarantined
	if coord.BinomialTail(2, 2, pol.FalseReject) > pol.Alpha {
		t.Fatal("two failures in two checks do not quarantine")
	}
	// two failures spread over 64 checks: P ≈ 0.13, not quarantined
	if p := coord.BinomialTail(64, 2, pol.FalseReject); p <= pol.Alpha {
		t.Fatalf("2 of 64: tail %g quarantines", p)
	}
}
