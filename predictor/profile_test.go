package predictor_test

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/predictor"
)

// token returns deterministic test inputs for token j of layer l.
func token(l, j, dim, ffn int) (x, a []float32) {
	rng := rand.New(rand.NewPCG(uint64(l), uint64(j)))
	x = make([]float32, dim)
	a = make([]float32, ffn)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for i := range a {
		a[i] = float32(rng.NormFloat64())
	}
	return x, a
}

func TestRecordCountsAndReservoir(t *testing.T) {
	const layers, dim, ffn, keep, tokens = 2, 8, 16, 10, 300
	p := predictor.NewProfile(layers, dim, ffn, keep, 42)
	p.Layers[1].Threshold = 0.5
	want := make([][]uint32, layers)
	for l := range want {
		want[l] = make([]uint32, ffn)
	}
	for j := range tokens {
		for l := range layers {
			x, a := token(l, j, dim, ffn)
			for i, v := range a {
				if float32(math.Abs(float64(v))) > p.Layers[l].Threshold {
					want[l][i]++
				}
			}
			p.Record(l, x, a)
		}
	}
	if p.Tokens != tokens {
		t.Errorf("Tokens = %d, want %d", p.Tokens, tokens)
	}
	kept := make([][]int, layers)
	for l := range layers {
		lay := &p.Layers[l]
		if !slices.Equal(lay.Count, want[l]) {
			t.Errorf("layer %d counts %v, want %v", l, lay.Count, want[l])
		}
		if lay.N != keep || lay.Seen != tokens || len(lay.X) != keep*dim || len(lay.A) != keep*ffn {
			t.Fatalf("layer %d: N %d, Seen %d, %d inputs, %d activations", l, lay.N, lay.Seen, len(lay.X), len(lay.A))
		}
		// Every kept row is a recorded token with its F16 magnitudes.
		for s := range keep {
			row := lay.X[s*dim : (s+1)*dim]
			found := -1
			for j := range tokens {
				if x, _ := token(l, j, dim, ffn); slices.Equal(x, row) {
					found = j
					break
				}
			}
			if found < 0 {
				t.Fatalf("layer %d sample %d is no recorded token", l, s)
			}
			_, a := token(l, found, dim, ffn)
			for i, v := range a {
				if got, w := lay.A[s*ffn+i], dtype.F32ToF16(float32(math.Abs(float64(v)))); got != w {
					t.Fatalf("layer %d sample %d neuron %d: %#x, want %#x", l, s, i, got, w)
				}
			}
			kept[l] = append(kept[l], found)
		}
	}
	if !slices.Equal(kept[0], kept[1]) {
		t.Errorf("layers kept different tokens: %v and %v", kept[0], kept[1])
	}
	if slices.Max(kept[0]) < keep {
		t.Errorf("reservoir never replaced a sample: %v", kept[0])
	}
}

// TestReservoirUniform: every token is equally likely to be kept.
func TestReservoirUniform(t *testing.T) {
	const keep, tokens, trials = 20, 200, 300
	hits := make([]int, tokens)
	x, a := []float32{0}, []float32{0}
	for s := range trials {
		p := predictor.NewProfile(1, 1, 1, keep, uint64(s))
		for j := range tokens {
			x[0] = float32(j)
			p.Record(0, x, a)
		}
		for _, v := range p.Layers[0].X {
			hits[int(v)]++
		}
	}
	// Each token is kept with probability keep/tokens: compare the first
	// and last quarters.
	var first, last int
	for j := range tokens / 4 {
		first += hits[j]
		last += hits[tokens-1-j]
	}
	exp := float64(trials*keep) / 4
	for _, c := range []int{first, last} {
		if math.Abs(float64(c)-exp) > 0.1*exp {
			t.Errorf("quarter kept %d times, expected about %.0f", c, exp)
		}
	}
}

func TestRecordAllocs(t *testing.T) {
	p := predictor.NewProfile(2, 64, 256, 16, 1)
	x, a := token(0, 0, 64, 256)
	allocs := testing.AllocsPerRun(100, func() {
		p.Record(0, x, a)
		p.Record(1, x, a)
	})
	if allocs != 0 {
		t.Errorf("Record allocates %v times per call", allocs)
	}
	if p.Layers[0].N != 16 {
		t.Errorf("N = %d", p.Layers[0].N)
	}
}

func TestRecordSaturatesF16(t *testing.T) {
	p := predictor.NewProfile(1, 1, 2, 1, 1)
	p.Record(0, []float32{1}, []float32{-1e6, float32(math.Inf(1))})
	if got := p.Layers[0].A; got[0] != 0x7bff || got[1] != 0x7bff {
		t.Errorf("magnitudes %#x, want the largest half", got)
	}
}

func equalProfiles(t *testing.T, a, b *predictor.Profile) {
	t.Helper()
	if a.Model != b.Model || a.Tokens != b.Tokens || a.MaxSamples != b.MaxSamples || a.Seed != b.Seed || len(a.Layers) != len(b.Layers) {
		t.Fatalf("headers differ: %q %d %d %d %d vs %q %d %d %d %d", a.Model, a.Tokens, a.MaxSamples, a.Seed, len(a.Layers),
			b.Model, b.Tokens, b.MaxSamples, b.Seed, len(b.Layers))
	}
	for l := range a.Layers {
		x, y := &a.Layers[l], &b.Layers[l]
		if x.Dim != y.Dim || x.FFN != y.FFN || x.N != y.N || x.Seen != y.Seen || x.Threshold != y.Threshold {
			t.Errorf("layer %d: %d %d %d %d %v vs %d %d %d %d %v", l, x.Dim, x.FFN, x.N, x.Seen, x.Threshold, y.Dim, y.FFN, y.N, y.Seen, y.Threshold)
		}
		if !slices.Equal(x.Count, y.Count) || !slices.Equal(x.X[:x.N*x.Dim], y.X[:y.N*y.Dim]) || !slices.Equal(x.A[:x.N*x.FFN], y.A[:y.N*y.FFN]) {
			t.Errorf("layer %d: data differs", l)
		}
	}
}

func TestProfileRoundTrip(t *testing.T) {
	const dim, ffn = 8, 24
	p := predictor.NewProfile(3, dim, ffn, 7, 9)
	p.Model = "sha256:abc"
	p.Layers[2].Threshold = 0.25
	p.Layers[1].Count[3] = math.MaxUint32 // survives the I32 storage
	for j := range 20 {
		for l := range 2 { // layer 2 records nothing: N = 0
			x, a := token(l, j, dim, ffn)
			p.Record(l, x, a)
		}
	}
	path := filepath.Join(t.TempDir(), "profile.gguf")
	if err := p.WriteGGUF(path); err != nil {
		t.Fatal(err)
	}
	q, err := predictor.ReadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	equalProfiles(t, p, q)

	// Recording goes on where it stopped, as if never interrupted.
	for j := 20; j < 40; j++ {
		for l := range 3 {
			x, a := token(l, j, dim, ffn)
			p.Record(l, x, a)
			q.Record(l, x, a)
		}
	}
	equalProfiles(t, p, q)
}
