package coord

import (
	"context"
	"strings"
	"testing"

	"github.com/stokehq/stoke/engine"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/synth"
)

// TestTextStreamMatchesEngine: the gateway's decoding of token ids gives
// the engine's text, token by token, with and without stop strings.
func TestTextStreamMatchesEngine(t *testing.T) {
	path := t.TempDir() + "/m.gguf"
	if err := synth.Write(path, synth.Config{Arch: "llama", Params: 1e6, Type: dtype.F32, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	m, err := engine.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, err := m.NewSession(engine.Options{Context: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	prompt := m.Tok.Encode("The old lighthouse keeper", true, true)
	base := engine.GenerateParams{MaxTokens: 60, IgnoreEOS: true, Sampler: engine.SamplerParams{Temperature: 0.9, TopP: 1, RepeatPenalty: 1, Seed: 3}}
	var free engine.Result
	for _, stops := range [][]string{nil, {"zz"}, nil} {
		p := base
		p.Stop = stops
		if stops == nil && free.Text != "" && len(free.Text) > 6 {
			// a stop string that occurs: a piece of the free answer
			p.Stop = []string{free.Text[len(free.Text)/2 : len(free.Text)/2+3]}
		}
		s.Reset()
		var want []engine.Token
		res, err := s.Generate(context.Background(), prompt, p, func(tk engine.Token) error { want = append(want, tk); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if p.Stop == nil {
			free = *res
		}
		ts := newTextStream(m.Tok, p.Stop)
		var got []engine.Token
		for _, id := range res.Tokens {
			text, _ := ts.add(id)
			got = append(got, engine.Token{ID: id, Text: text})
		}
		if rest := ts.finish(); rest != "" {
			got = append(got, engine.Token{ID: -1, Text: rest})
		}
		if ts.text.String() != res.Text {
			t.Fatalf("stops %q: text %q, engine %q", p.Stop, ts.text.String(), res.Text)
		}
		if len(got) != len(want) {
			t.Fatalf("stops %q: %d tokens, engine %d", p.Stop, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("stops %q: token %d: %+v, engine %+v", p.Stop, i, got[i], want[i])
			}
		}
	}
	// a stop string split over the seam of a resumed answer is still cut
	ts := newTextStream(m.Tok, []string{"ab"})
	var b strings.Builder
	for _, piece := range []string{"xa", "by"} {
		out, _ := ts.st.push(piece)
		b.WriteString(out)
	}
	if b.String() != "x" || !ts.st.hit {
		t.Fatalf("split stop: %q, hit %v", b.String(), ts.st.hit)
	}
}
