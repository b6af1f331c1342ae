package predictor_test

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/predictor"
)

// randomLayer returns a float32 predictor with biases, weights rounded to
// halves when halves is set.
func randomLayer(dim, rank, ffn int, seed uint64, halves bool) *predictor.LayerPredictor {
	rng := rand.New(rand.NewPCG(seed, 5))
	fill := func(n int, s float64) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * s)
			if halves {
				x[i] = dtype.F16ToF32(dtype.F32ToF16(x[i]))
			}
		}
		return x
	}
	return &predictor.LayerPredictor{
		Dim: dim, Rank: rank, FFN: ffn,
		FC1: fill(rank*dim, 1/math.Sqrt(float64(dim))), FC2: fill(ffn*rank, 1/math.Sqrt(float64(rank))),
		B1: fill(rank, 0.1), B2: fill(ffn, 0.5),
		Threshold: 0.1,
	}
}

// refScores computes the scores in float64 from float32 weights.
func refScores(lp *predictor.LayerPredictor, fc1, fc2 []float32, x []float32) []float64 {
	h := make([]float64, lp.Rank)
	for r := range h {
		for c := range lp.Dim {
			h[r] += float64(fc1[r*lp.Dim+c]) * float64(x[c])
		}
		if lp.B1 != nil {
			h[r] += float64(lp.B1[r])
		}
		h[r] = max(h[r], 0)
	}
	s := make([]float64, lp.FFN)
	for i := range s {
		for r := range h {
			s[i] += float64(fc2[i*lp.Rank+r]) * h[r]
		}
		if lp.B2 != nil {
			s[i] += float64(lp.B2[i])
		}
	}
	return s
}

// checkPredict compares Predict with the reference, ignoring neurons whose
// score is within tol of the threshold. tol is relative to the largest
// score: kernels may quantize the activations of quantized rows (as ggml
// does), so a score's error scales with the vector, not with the score.
func checkPredict(t *testing.T, lp *predictor.LayerPredictor, fc1, fc2 []float32, pool *cpu.Pool, seed uint64, tol float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 6))
	x := make([]float32, lp.Dim)
	sc := predictor.NewScratch(lp.Rank+3, lp.FFN+3)
	s := sc.S
	for trial := range 20 {
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		got := lp.Predict(pool, x, sc)
		if !slices.IsSorted(got) {
			t.Fatalf("trial %d: indices not ascending", trial)
		}
		ref := refScores(lp, fc1, fc2, x)
		scale := 1.0
		for _, v := range ref {
			scale = max(scale, math.Abs(v))
		}
		eps := tol * scale
		for i, v := range ref {
			if math.Abs(float64(s[i])-v) > eps {
				t.Fatalf("trial %d neuron %d: score %v, want %v", trial, i, s[i], v)
			}
			if math.Abs(v-float64(lp.Threshold)) < eps {
				continue
			}
			_, in := slices.BinarySearch(got, int32(i))
			if in != (v >= float64(lp.Threshold)) {
				t.Fatalf("trial %d neuron %d: score %v, predicted %v", trial, i, v, in)
			}
		}
	}
}

func TestPredictMatchesReference(t *testing.T) {
	pool := cpu.NewPool(2)
	defer pool.Close()
	lp := randomLayer(48, 24, 300, 1, false)
	checkPredict(t, lp, lp.FC1, lp.FC2, nil, 1, 1e-5)
	checkPredict(t, lp, lp.FC1, lp.FC2, pool, 2, 1e-5)

	nb := *lp
	nb.B1, nb.B2, nb.Threshold = nil, nil, 0
	checkPredict(t, &nb, nb.FC1, nb.FC2, pool, 3, 1e-5)

	// Stored forms: F16 and Q4_0 rows (PowerInfer's types), compared with
	// the reference on the dequantized weights.
	for _, typ := range []dtype.Type{dtype.F16, dtype.Q4_0} {
		tol := map[dtype.Type]float64{dtype.F16: 2e-3, dtype.Q4_0: 3e-2}[typ]
		st, d1, d2 := storedLayer(t, randomLayer(64, 32, 200, 4, false), typ)
		checkPredict(t, &st, d1, d2, pool, 5, tol)
	}
}

func rowBytes(t dtype.Type, n int) int {
	rb, err := t.RowBytes(uint64(n))
	if err != nil {
		panic(err)
	}
	return int(rb)
}

func TestPredictAllocs(t *testing.T) {
	pool := cpu.NewPool(2)
	defer pool.Close()
	lp := randomLayer(256, 64, 1024, 2, false)
	x := make([]float32, lp.Dim)
	for i := range x {
		x[i] = float32(i%5) - 2
	}
	sc := predictor.NewScratch(lp.Rank, lp.FFN)
	// The stored Q4_0 form too (a PowerInfer file's predictor).
	w1 := make([]byte, lp.Rank*rowBytes(dtype.Q4_0, lp.Dim))
	w2 := make([]byte, lp.FFN*rowBytes(dtype.Q4_0, lp.Rank))
	_ = dtype.Quantize(dtype.Q4_0, lp.FC1, w1)
	_ = dtype.Quantize(dtype.Q4_0, lp.FC2, w2)
	lq, err := predictor.LayerFromTensors(
		predictor.Tensor{Type: dtype.Q4_0, Shape: []uint64{uint64(lp.Dim), uint64(lp.Rank)}, Data: w1},
		predictor.Tensor{Type: dtype.Q4_0, Shape: []uint64{uint64(lp.Rank), uint64(lp.FFN)}, Data: w2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*predictor.LayerPredictor{lp, &lq} {
		for _, p := range []*cpu.Pool{nil, pool} {
			l.Predict(p, x, sc) // warm: the pool sizes its scratch once
			if a := testing.AllocsPerRun(50, func() { l.Predict(p, x, sc) }); a != 0 {
				t.Errorf("%s weights, pool %v: Predict allocates %v times", l.Type, p != nil, a)
			}
		}
	}
}

// TestEvaluate checks the confusion counts on a hand-built case: a
// predictor whose scores are x itself (identity FC1, FC2 and no biases).
func TestEvaluate(t *testing.T) {
	lp := &predictor.LayerPredictor{Dim: 4, Rank: 4, FFN: 4, FC1: eye(4), FC2: eye(4), Threshold: 0.5}
	x := []float32{
		1, 0, 1, 0, // predicts 0, 2
		0, 0, 0, 1, // predicts 3
	}
	h := func(v float32) uint16 { return dtype.F32ToF16(v) }
	a := []uint16{
		h(2), h(2), h(0), h(0), // truth 0, 1
		h(0), h(0), h(0), h(3), // truth 3
	}
	m := predictor.Evaluate(lp, x, a, 2, 1)
	// tp 2 (0, 3), fn 1 (1), fp 1 (2), tn 4
	want := predictor.Metrics{Recall: 2.0 / 3, Precision: 2.0 / 3, Sparsity: 5.0 / 8, TrueSparsity: 5.0 / 8}
	if m != want {
		t.Errorf("got %+v, want %+v", m, want)
	}
}

func eye(n int) []float32 {
	x := make([]float32, n*n)
	for i := range n {
		x[i*n+i] = 1
	}
	return x
}

func TestPredictorRoundTrip(t *testing.T) {
	dir := t.TempDir()
	half := randomLayer(32, 16, 64, 1, true)
	half.Threshold = 0
	half.Measured = predictor.Metrics{Recall: 0.991, Precision: 0.8, Sparsity: 0.9, TrueSparsity: 0.92}
	full := randomLayer(16, 8, 40, 2, false) // not halves: stored as F32
	full.B1 = nil
	p := &predictor.Predictor{Layers: []predictor.LayerPredictor{*half, *full}, ActThreshold: []float32{0, 0.3}}
	path := filepath.Join(dir, "pred.gguf")
	if err := p.WriteGGUF(path, map[string]string{"stoke.predictor.model": "sha256:x", "general.name": "test"}); err != nil {
		t.Fatal(err)
	}

	// The file as PowerInfer reads it.
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		typ   dtype.Type
		shape []uint64
	}{
		{"blk.0.fc1.weight", dtype.F16, []uint64{32, 16}},
		{"blk.0.fc2.weight", dtype.F16, []uint64{16, 64}},
		{"blk.1.fc1.weight", dtype.F32, []uint64{16, 8}},
		{"blk.1.fc2.weight", dtype.F32, []uint64{8, 40}},
		{"blk.0.fc1.bias", dtype.F32, []uint64{16}},
		{"blk.1.fc2.bias", dtype.F32, []uint64{40}},
	} {
		ti, ok := f.Tensor(c.name)
		if !ok || ti.Type != c.typ || !slices.Equal(ti.Shape, c.shape) {
			t.Errorf("%s: %+v, want %s %v", c.name, ti, c.typ, c.shape)
		}
	}
	if _, ok := f.Tensor("blk.1.fc1.bias"); ok {
		t.Error("layer 1 has no B1 but the file has blk.1.fc1.bias")
	}
	if v, ok := f.Float(predictor.KeySparseThreshold); !ok || v != 0 {
		t.Errorf("%s = %v, %v (thresholds differ: want 0)", predictor.KeySparseThreshold, v, ok)
	}
	if s, _ := f.String("stoke.predictor.model"); s != "sha256:x" {
		t.Errorf("meta key: %q", s)
	}
	f.Close()

	q, err := predictor.ReadPredictorGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(q.ActThreshold, p.ActThreshold) || len(q.Layers) != 2 {
		t.Fatalf("act thresholds %v, %d layers", q.ActThreshold, len(q.Layers))
	}
	for l := range p.Layers {
		a, b := &p.Layers[l], &q.Layers[l]
		fc1, fc2 := dense(t, b)
		if a.Dim != b.Dim || a.Rank != b.Rank || a.FFN != b.FFN || a.Threshold != b.Threshold ||
			!slices.Equal(a.FC1, fc1) || !slices.Equal(a.FC2, fc2) || !slices.Equal(a.B1, b.B1) || !slices.Equal(a.B2, b.B2) {
			t.Errorf("layer %d differs after the round trip", l)
		}
		if a.Measured != b.Measured {
			// Metrics travel as float32.
			if math.Abs(a.Measured.Recall-b.Measured.Recall) > 1e-6 || math.Abs(a.Measured.Sparsity-b.Measured.Sparsity) > 1e-6 {
				t.Errorf("layer %d: measured %+v, want %+v", l, b.Measured, a.Measured)
			}
		}
	}
	if q.Layers[0].W1 == nil || q.Layers[0].Type != dtype.F16 || q.Layers[1].FC1 == nil || q.Layers[1].W1 != nil {
		t.Error("F16 layers should stay stored (W1/W2), F32 layers become FC1/FC2")
	}
	// The stored form predicts what the float form predicts.
	checkPredict(t, &q.Layers[0], half.FC1, half.FC2, nil, 9, 2e-3)

	// Written again, the file is the same.
	path2 := filepath.Join(dir, "pred2.gguf")
	if err := q.WriteGGUF(path2, map[string]string{"stoke.predictor.model": "sha256:x", "general.name": "test"}); err != nil {
		t.Fatal(err)
	}
	r, err := predictor.ReadPredictorGGUF(path2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Layers[0].W2, q.Layers[0].W2) || !slices.Equal(r.Layers[1].FC2, q.Layers[1].FC2) {
		t.Error("second round trip differs")
	}

	if err := p.WriteGGUF(filepath.Join(dir, "x.gguf"), map[string]string{"stoke.predictor.rank": "1"}); err == nil {
		t.Error("a meta key that collides with ours: no error")
	}
	if err := p.WriteGGUF(filepath.Join(dir, "x.gguf"), map[string]string{predictor.KeySparseThreshold: "1"}); err == nil {
		t.Error("a meta key that collides with powerinfer.sparse_threshold: no error")
	}
}

// dense returns a layer's weights as float32, dequantizing a stored form.
func dense(t *testing.T, lp *predictor.LayerPredictor) (fc1, fc2 []float32) {
	if lp.W1 == nil {
		return lp.FC1, lp.FC2
	}
	fc1, fc2 = make([]float32, lp.Rank*lp.Dim), make([]float32, lp.FFN*lp.Rank)
	if err := dtype.Dequantize(lp.Type, lp.W1, fc1); err != nil {
		t.Fatal(err)
	}
	if err := dtype.Dequantize(lp.Type, lp.W2, fc2); err != nil {
		t.Fatal(err)
	}
	return fc1, fc2
}

// TestReadPowerInferFile reads the predictors out of a file laid out as a
// PowerInfer model: other tensors around them, no stoke keys, no biases,
// Q4_0 weights, powerinfer.sparse_threshold.
func TestReadPowerInferFile(t *testing.T) {
	dir := t.TempDir()
	w := gguf.NewWriter(3)
	if err := w.SetMagic(gguf.MagicPowerInfer); err != nil {
		t.Fatal(err)
	}
	w.AddKV("general.architecture", gguf.String("llama"))
	w.AddKV(predictor.KeySparseThreshold, gguf.Float32(0))
	var want []*predictor.LayerPredictor
	for l := range 3 {
		lp := randomLayer(64, 32, 96, uint64(l), false)
		lp.B1, lp.B2, lp.Threshold = nil, nil, 0
		w1 := make([]byte, 32*rowBytes(dtype.Q4_0, 64))
		w2 := make([]byte, 96*rowBytes(dtype.Q4_0, 32))
		_ = dtype.Quantize(dtype.Q4_0, lp.FC1, w1)
		_ = dtype.Quantize(dtype.Q4_0, lp.FC2, w2)
		_ = dtype.Dequantize(dtype.Q4_0, w1, lp.FC1)
		_ = dtype.Dequantize(dtype.Q4_0, w2, lp.FC2)
		want = append(want, lp)
		for _, tt := range []struct {
			name  string
			typ   dtype.Type
			shape []uint64
			data  []byte
		}{
			{predictor.TensorFC1(l), dtype.Q4_0, []uint64{64, 32}, w1},
			{predictor.TensorFC2(l), dtype.Q4_0, []uint64{32, 96}, w2},
			{"blk." + string(rune('0'+l)) + ".ffn_down_t", dtype.F32, []uint64{64, 96}, make([]byte, 64*96*4)},
		} {
			if err := w.AddTensor(tt.name, tt.typ, tt.shape, tt.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	path := filepath.Join(dir, "model.powerinfer.gguf")
	if err := gguf.WriteFile(path, w); err != nil {
		t.Fatal(err)
	}
	p, err := predictor.ReadPredictorGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Layers) != 3 {
		t.Fatalf("%d layers, want 3", len(p.Layers))
	}
	for l, lp := range want {
		got := &p.Layers[l]
		if got.Type != dtype.Q4_0 || got.B1 != nil || got.Threshold != 0 {
			t.Errorf("layer %d: type %s, biases %v, threshold %v", l, got.Type, got.B1 != nil, got.Threshold)
		}
		checkPredict(t, got, lp.FC1, lp.FC2, nil, uint64(l), 3e-2)
	}
}

func TestHostilePredictor(t *testing.T) {
	dir := t.TempDir()
	p := &predictor.Predictor{Layers: []predictor.LayerPredictor{*randomLayer(32, 16, 64, 1, true), *randomLayer(32, 16, 64, 2, true)}}
	good := filepath.Join(dir, "good.gguf")
	if err := p.WriteGGUF(good, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(s *fileSpec)
		want string
	}{
		{"missing fc2", func(s *fileSpec) { s.delTensor("blk.1.fc2.weight") }, "missing"},
		{"rank mismatch", func(s *fileSpec) {
			s.setTensor("blk.0.fc2.weight", dtype.F16, []uint64{8, 64}, make([]byte, 8*64*2))
		}, "rank"},
		{"vector fc1", func(s *fileSpec) {
			s.setTensor("blk.0.fc1.weight", dtype.F16, []uint64{512}, make([]byte, 1024))
		}, "not matrices"},
		{"types differ", func(s *fileSpec) {
			s.setTensor("blk.0.fc1.weight", dtype.F32, []uint64{32, 16}, make([]byte, 32*16*4))
		}, "fc1 is F32 but fc2 is F16"},
		{"keys disagree", func(s *fileSpec) { s.setKV("stoke.predictor.ffn", u64s(64, 65)) }, "keys say"},
		{"bias shape", func(s *fileSpec) {
			s.setTensor("blk.1.fc2.bias", dtype.F32, []uint64{63}, make([]byte, 63*4))
		}, "shape"},
		{"bias type", func(s *fileSpec) {
			s.setTensor("blk.1.fc1.bias", dtype.BF16, []uint64{16}, make([]byte, 32))
		}, "want F32 or F16"},
		{"layer count", func(s *fileSpec) { s.setKV("stoke.predictor.layer_count", gguf.Uint32(3)) }, "want an array of 3"},
		{"NaN threshold", func(s *fileSpec) {
			s.setKV("stoke.predictor.threshold", gguf.Float32s([]float32{0, float32(nan())}))
		}, "NaN"},
		{"version", func(s *fileSpec) { s.setKV("stoke.predictor.version", gguf.String("1")) }, "version"},
		{"no predictor", func(s *fileSpec) {
			s.delKV("stoke.predictor.version")
			s.delTensor("blk.0.fc1.weight")
		}, "no predictor tensors"},
		{"uncomputable type", func(s *fileSpec) {
			s.setTensor("blk.0.fc1.weight", dtype.I32, []uint64{32, 16}, make([]byte, 32*16*4))
			s.setTensor("blk.0.fc2.weight", dtype.I32, []uint64{16, 64}, make([]byte, 16*64*4))
		}, "cannot compute"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := loadSpec(t, good)
			c.edit(s)
			path := filepath.Join(dir, "bad"+string(rune('a'+i))+".gguf")
			s.write(t, path)
			_, err := predictor.ReadPredictorGGUF(path)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}

	// FromTensors refuses what does not fit together.
	if _, err := predictor.FromTensors(make([]predictor.Tensor, 2), make([]predictor.Tensor, 1), 0); err == nil {
		t.Error("2 fc1 and 1 fc2: no error")
	}
	short := predictor.Tensor{Type: dtype.F16, Shape: []uint64{32, 16}, Data: make([]byte, 10)}
	fc2 := predictor.Tensor{Type: dtype.F16, Shape: []uint64{16, 64}, Data: make([]byte, 16*64*2)}
	if _, err := predictor.LayerFromTensors(short, fc2, 0); err == nil {
		t.Error("short fc1 data: no error")
	}
	odd := predictor.Tensor{Type: dtype.Q4_0, Shape: []uint64{48, 16}, Data: make([]byte, 16*rowBytes(dtype.Q4_0, 32))}
	if _, err := predictor.LayerFromTensors(odd, fc2, 0); err == nil {
		t.Error("Q4_0 rows of 48: no error")
	}
}
