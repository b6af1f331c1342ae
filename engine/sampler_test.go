package engine

import (
	"math"
	"testing"
)

func TestSamplerGreedyLowestIDOnTies(t *testing.T) {
	s, err := NewSampler(SamplerParams{TopP: 1, RepeatPenalty: 1}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sample([]float32{1, 3, 3, 2}); got != 1 {
		t.Fatalf("greedy = %d, want 1", got)
	}
}

func TestSamplerSameSeedSameDraws(t *testing.T) {
	logits := make([]float32, 1000)
	for i := range logits {
		logits[i] = float32(math.Sin(float64(i)))
	}
	draw := func(seed uint64) []int32 {
		p := SamplerParams{Temperature: 1, TopK: 0, TopP: 1, Seed: seed, RepeatPenalty: 1}
		s, err := NewSampler(p, len(logits))
		if err != nil {
			t.Fatal(err)
		}
		var out []int32
		for range 50 {
			out = append(out, s.Sample(logits))
		}
		return out
	}
	a, b, c := draw(7), draw(7), draw(8)
	same := func(x, y []int32) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatal("same seed gave different draws")
	}
	if same(a, c) {
		t.Fatal("different seeds gave identical draws")
	}
}

// TestSamplerTruncation checks that top-k, top-p and min-p only ever return
// tokens inside the set each rule allows.
func TestSamplerTruncation(t *testing.T) {
	logits := []float32{5, 4, 3, 2, 1, 0, -1, -2}
	cases := []struct {
		name    string
		p       SamplerParams
		allowed map[int32]bool
	}{
		{"top-k 2", SamplerParams{Temperature: 5, TopK: 2, TopP: 1, RepeatPenalty: 1}, map[int32]bool{0: true, 1: true}},
		// probabilities at T=1: .636 .234 .086 ...: top-p .8 keeps 2 tokens
		{"top-p 0.8", SamplerParams{Temperature: 5, TopP: 0.8, RepeatPenalty: 1}, map[int32]bool{0: true, 1: true}},
		// min-p 0.3: keep p ≥ 0.3·p0, i.e. logit ≥ 5 + ln 0.3 ≈ 3.8
		{"min-p 0.3", SamplerParams{Temperature: 5, TopP: 1, MinP: 0.3, RepeatPenalty: 1}, map[int32]bool{0: true, 1: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen := map[int32]bool{}
			for seed := range uint64(200) {
				c.p.Seed = seed
				s, err := NewSampler(c.p, len(logits))
				if err != nil {
					t.Fatal(err)
				}
				id := s.Sample(logits)
				if !c.allowed[id] {
					t.Fatalf("sampled %d, outside %v", id, c.allowed)
				}
				seen[id] = true
			}
			if len(seen) != len(c.allowed) {
				t.Errorf("in 200 draws at high temperature saw %v, want all of %v", seen, c.allowed)
			}
		})
	}
}

func TestSamplerRepeatPenalty(t *testing.T) {
	p := SamplerParams{TopP: 1, RepeatPenalty: 2, RepeatLastN: 4}
	s, err := NewSampler(p, 3)
	if err != nil {
		t.Fatal(err)
	}
	logits := []float32{2, 1.5, -1}
	if got := s.Sample(logits); got != 0 {
		t.Fatalf("before any history got %d", got)
	}
	s.Accept(0) // 2 → 1, now token 1 (1.5) wins
	if got := s.Sample(logits); got != 1 {
		t.Fatalf("after penalising 0 got %d, want 1", got)
	}
	for _, id := range []int32{2, 2, 2, 2} { // 0 leaves the window
		s.Accept(id)
	}
	if got := s.Sample(logits); got != 0 {
		t.Fatalf("after 0 left the window got %d, want 0", got)
	}
}

func TestSamplerValidate(t *testing.T) {
	bad := []SamplerParams{
		{Temperature: -1, TopP: 1, RepeatPenalty: 1},
		{TopP: 0, RepeatPenalty: 1},
		{TopP: 1.5, RepeatPenalty: 1},
		{TopP: 1, MinP: 1, RepeatPenalty: 1},
		{TopP: 1, RepeatPenalty: 0},
		{TopP: 1, RepeatPenalty: 1, TopK: -3},
		{Temperature: float32(math.NaN()), TopP: 1, RepeatPenalty: 1},
	}
	for _, p := range bad {
		if _, err := NewSampler(p, 10); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

func TestSamplerNoAllocs(t *testing.T) {
	logits := make([]float32, 32000)
	for i := range logits {
		logits[i] = float32(math.Cos(float64(i) * 0.37))
	}
	p := DefaultSampler()
	p.RepeatPenalty = 1.1
	s, err := NewSampler(p, len(logits))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		s.Accept(int32(i))
	}
	if n := testing.AllocsPerRun(20, func() { s.Accept(s.Sample(logits)) }); n != 0 {
		t.Errorf("Sample allocates %.1f times per token", n)
	}
}

func TestStopper(t *testing.T) {
	cases := []struct {
		stops  []string
		pieces []string
		want   string
		hit    bool
	}{
		{nil, []string{"ab", "cd"}, "abcd", false},
		{[]string{"END"}, []string{"hello E", "N", "D tail"}, "hello ", true},
		{[]string{"END"}, []string{"hello E", "NX"}, "hello ENX", false},
		{[]string{"\n\n", "User:"}, []string{"a\n", "b Us", "er:"}, "a\nb ", true},
		{[]string{"xyz"}, []string{"x", "x", "y", "z"}, "x", true},
	}
	for _, c := range cases {
		s := stopper{stops: c.stops}
		out := ""
		hit := false
		for _, p := range c.pieces {
			o, h := s.push(p)
			out += o
			if h {
				hit = true
				break
			}
		}
		if !hit {
			out += s.flush()
		}
		if out != c.want || hit != c.hit {
			t.Errorf("stops %q pieces %q: got %q hit %v, want %q hit %v", c.stops, c.pieces, out, hit, c.want, c.hit)
		}
	}
}
