package predictor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// The sidecar readers on arbitrary bytes: no panic, and whatever they
// accept is usable (a profile passes its checks and can record; a
// predictor can predict). Seeds are files the writers produced.

func FuzzReadProfile(f *testing.F) {
	dir := f.TempDir()
	p := NewProfile(2, 4, 8, 3, 1)
	x, a := make([]float32, 4), make([]float32, 8)
	for j := range 5 {
		for i := range a {
			a[i] = float32(j - i)
		}
		p.Record(0, x, a)
		p.Record(1, x, a)
	}
	path := filepath.Join(dir, "p.gguf")
	if err := p.WriteGGUF(path); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		gf, err := gguf.Parse(data)
		if err != nil {
			return
		}
		p, err := readProfile(gf)
		if err != nil {
			return
		}
		if err := p.check(); err != nil {
			t.Fatalf("accepted a profile that fails its checks: %v", err)
		}
		if p.MaxSamples > 64 {
			return // Record would allocate MaxSamples rows
		}
		for l := range p.Layers {
			lay := &p.Layers[l]
			if lay.Dim > 1<<12 || lay.FFN > 1<<12 {
				continue
			}
			p.Record(l, make([]float32, lay.Dim), make([]float32, lay.FFN))
		}
	})
}

func FuzzReadPredictor(f *testing.F) {
	dir := f.TempDir()
	lp := LayerPredictor{Dim: 4, Rank: 2, FFN: 3, FC1: make([]float32, 8), FC2: make([]float32, 6), B1: make([]float32, 2), B2: make([]float32, 3)}
	p := &Predictor{Layers: []LayerPredictor{lp, lp}, ActThreshold: []float32{0, 1}}
	for _, name := range []string{"half.gguf", "full.gguf"} {
		path := filepath.Join(dir, name)
		if err := p.WriteGGUF(path, map[string]string{"k": "v"}); err != nil {
			f.Fatal(err)
		}
		seed, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(seed)
		p.Layers[0].FC1[0] = 0.1 // not a half: the second seed stores F32
	}
	// a layer of whole Q8_0 blocks, for the re-encoding below
	wide := LayerPredictor{Dim: 32, Rank: 3, FFN: 32, FC1: make([]float32, 96), FC2: make([]float32, 96), Threshold: 0.5}
	for i := range wide.FC1 {
		wide.FC1[i], wide.FC2[i] = float32(i%5)-2, float32(i%3)-1
	}
	path := filepath.Join(dir, "wide.gguf")
	if err := (&Predictor{Layers: []LayerPredictor{wide}}).WriteGGUF(path, nil); err != nil {
		f.Fatal(err)
	}
	if seed, err := os.ReadFile(path); err == nil {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		gf, err := gguf.Parse(data)
		if err != nil {
			return
		}
		p, err := readPredictor(gf)
		if err != nil {
			return
		}
		for l := range p.Layers {
			lp := &p.Layers[l]
			if err := lp.Check(); err != nil {
				t.Fatalf("layer %d accepted but fails its checks: %v", l, err)
			}
			lp.Predict(nil, make([]float32, lp.Dim), NewScratch(lp.Rank, lp.FFN))
		}
		// The forms the engine computes: built or refused, never a
		// panic, and every layer built passes its checks and predicts.
		for _, form := range []func() (*Predictor, error){
			p.RankMajor,
			func() (*Predictor, error) { return p.Quantized(dtype.Q8_0) },
			func() (*Predictor, error) { return p.Quantized(dtype.Q4_0) },
			func() (*Predictor, error) { return p.Quantized(dtype.F16) },
		} {
			q, err := form()
			if err != nil {
				continue
			}
			for l := range q.Layers {
				lp := &q.Layers[l]
				if err := lp.Check(); err != nil {
					t.Fatalf("layer %d built but fails its checks: %v", l, err)
				}
				lp.Predict(nil, make([]float32, lp.Dim), NewScratch(lp.Rank, lp.FFN))
			}
		}
	})
}
