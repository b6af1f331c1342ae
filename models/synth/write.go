package synth

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// Metadata keys Stoke adds to synthetic models.
const (
	KeySeed        = "stoke.synth.seed"
	KeyParams      = "stoke.synth.params"
	KeyHotFraction = "stoke.synth.hot_fraction" // float64, planted models
	KeyColdRate    = "stoke.synth.cold_rate"    // float64, planted models
	// KeyActivation is arch.KeyActivation, repeated here because models
	// packages do not import each other.
	KeyActivation = "stoke.ffn.activation"
	// KeySparseThreshold is PowerInfer's predictor threshold.
	KeySparseThreshold = "powerinfer.sparse_threshold"
)

// chunkElems is the number of weights generated from one random stream.
// Chunks depend only on a tensor's shape, so the bytes do not depend on
// how many goroutines generate them.
const chunkElems = 1 << 16

// Write shapes c and writes the model to path (atomically, through
// gguf.WriteFile), streaming every tensor.
func Write(path string, c Config) error {
	w, _, err := Build(c)
	if err != nil {
		return err
	}
	return gguf.WriteFile(path, w)
}

// Build shapes c and returns a writer that generates the model's tensors
// as it writes them, and the shaped config.
func Build(c Config) (*gguf.Writer, Config, error) {
	c, err := Shape(c)
	if err != nil {
		return nil, c, err
	}
	tokens, scores, types, err := Vocab(c.Vocab)
	if err != nil {
		return nil, c, err
	}
	w := gguf.NewWriter(3)
	if c.PowerInfer {
		if err := w.SetMagic(gguf.MagicPowerInfer); err != nil {
			return nil, c, err
		}
	}
	a := c.Arch
	u32 := func(k string, v int) { w.AddKV(k, gguf.Uint32(uint32(v))) }
	w.AddKV("general.architecture", gguf.String(a))
	typeName := c.Type.String()
	if c.Mix != "" {
		typeName = c.Mix
	}
	w.AddKV("general.name", gguf.String(fmt.Sprintf("stoke-synth-%s-%s-%s-seed%d", nameArch(c), paramsText(c.Params), typeName, c.Seed)))
	if a == "opt" {
		// PowerInfer's OPT converter writes these five and no more: the
		// context is the size of the position table, padding rows included.
		u32("opt.context_length", c.Context+optPosOffset)
		u32("opt.embedding_length", c.Dim)
		u32("opt.block_count", c.Layers)
		u32("opt.feed_forward_length", c.FFN)
		u32("opt.attention.head_count", c.Heads)
	} else {
		u32(a+".context_length", c.Context)
		u32(a+".embedding_length", c.Dim)
		u32(a+".block_count", c.Layers)
		u32(a+".feed_forward_length", c.FFN)
		u32(a+".rope.dimension_count", c.HeadDim())
		u32(a+".attention.head_count", c.Heads)
		u32(a+".attention.head_count_kv", c.KVHeads)
		w.AddKV(a+".rope.freq_base", gguf.Float32(ropeFreqBase))
		w.AddKV(a+".attention.layer_norm_rms_epsilon", gguf.Float32(rmsEpsilon))
		u32(a+".vocab_size", c.Vocab)
	}
	ft := fileTypes[c.Type]
	if c.Mix != "" {
		ft = mixFileTypes[c.Mix]
	}
	w.AddKV("general.file_type", gguf.Uint32(ft))
	if c.Type.BlockSize() > 1 {
		w.AddKV("general.quantization_version", gguf.Uint32(2))
	}
	w.AddKV("tokenizer.ggml.model", gguf.String("llama"))
	w.AddKV("tokenizer.ggml.tokens", gguf.Strings(tokens))
	w.AddKV("tokenizer.ggml.scores", gguf.Float32s(scores))
	w.AddKV("tokenizer.ggml.token_type", gguf.Int32s(types))
	u32("tokenizer.ggml.bos_token_id", 1)
	u32("tokenizer.ggml.eos_token_id", 2)
	u32("tokenizer.ggml.unknown_token_id", 0)
	w.AddKV("tokenizer.ggml.add_bos_token", gguf.Bool(true))
	w.AddKV("tokenizer.ggml.add_eos_token", gguf.Bool(false))
	w.AddKV(KeySeed, gguf.Uint64(c.Seed))
	w.AddKV(KeyParams, gguf.Uint64(uint64(c.Params)))
	if c.planted() {
		w.AddKV(KeyActivation, gguf.String(c.Act))
		w.AddKV(KeyHotFraction, gguf.Float64(c.HotFraction))
		w.AddKV(KeyColdRate, gguf.Float64(c.ColdRate))
	}
	if c.PowerInfer {
		w.AddKV(KeySparseThreshold, gguf.Float32(0))
	}

	g := newGen(c)
	for _, t := range Tensors(c) {
		if err := w.AddTensorFunc(t.Name, t.Type, t.Shape, g.tensor(t)); err != nil {
			return nil, c, err
		}
	}
	return w, c, nil
}

// nameArch is the architecture part of general.name.
func nameArch(c Config) string {
	n := c.Arch
	if c.planted() && c.Arch == "llama" {
		n += "-" + c.Act
	}
	if c.PowerInfer {
		n += "-powerinfer"
	}
	return n
}

func paramsText(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1fK", float64(n)/1e3)
}

// gen chooses each tensor's generator. A SwiGLU llama is all normal()
// and ones(); planted models follow the construction in sparse.go.
type gen struct {
	c    Config
	plan *plan
}

func newGen(c Config) *gen {
	g := &gen{c: c}
	if c.planted() {
		g.plan = newPlan(c)
	}
	return g
}

// tensor returns the function that writes t.
func (g *gen) tensor(t Tensor) func(io.Writer) error {
	c := g.c
	std := 1 / math.Sqrt(float64(t.Shape[0]))
	if !c.planted() {
		switch {
		case len(t.Shape) == 1:
			return ones(t.Shape[0], 1)
		case t.Name == "token_embd.weight":
			return normal(c.Seed, t, 1)
		}
		return normal(c.Seed, t, std)
	}
	layer, base := splitName(t.Name)
	beta := writerScale(c)
	switch base {
	case "token_embd.weight":
		return rows(c.Seed, t, t.Name, anchored(1, 1))
	case "position_embd.weight":
		return rows(c.Seed, t, t.Name, anchored(optPosStd, 0))
	case "ffn_norm.weight":
		return ones(t.Shape[0], float32(anchorWeight(c)))
	case "attn_norm.weight", "output_norm.weight":
		return ones(t.Shape[0], 1)
	case "attn_output.weight":
		return rows(c.Seed, t, t.Name, func(rng *rand.Rand, r uint64, x []float32) {
			fillNormal(rng, x, beta*std)
			if r == 0 {
				clear(x)
			}
		})
	case "ffn_down.weight", "ffn_down_t.weight":
		return g.down(t, layer)
	case "ffn_gate.weight":
		gate, _ := taus(c, g.plan, layer)
		return g.planted(t, layer, gate)
	case "ffn_up.weight":
		if _, up := taus(c, g.plan, layer); up != nil {
			return g.planted(t, layer, up)
		}
		return rows(c.Seed, t, t.Name, anchored(std, 0))
	case "fc1.weight":
		return g.fc1(t, layer)
	case "fc2.weight":
		return g.fc2(t, layer)
	case "ffn_down.bias", "ffn_down_t.bias":
		// both layouts draw the same numbers
		return vector(c.Seed, t, fmt.Sprintf("blk.%d.ffn_down.bias", layer), anchored(biasStd*beta, 0))
	case "ffn_up.bias", "attn_q.bias", "attn_k.bias", "attn_v.bias":
		return vector(c.Seed, t, t.Name, plainNormal(biasStd))
	}
	if len(t.Shape) == 1 { // the remaining biases write to the residual or normalise it
		return vector(c.Seed, t, t.Name, anchored(biasStd, 0))
	}
	return normal(c.Seed, t, std)
}

// splitName splits "blk.N.rest" into N and rest (−1 and the name for
// other tensors).
func splitName(name string) (int, string) {
	var l int
	var rest string
	if n, _ := fmt.Sscanf(name, "blk.%d.%s", &l, &rest); n == 2 {
		return l, rest
	}
	return -1, name
}

// anchored draws normal(0, std) values with element 0 set to anchor.
func anchored(std float64, anchor float32) func(*rand.Rand, uint64, []float32) {
	return func(rng *rand.Rand, _ uint64, x []float32) {
		fillNormal(rng, x, std)
		x[0] = anchor
	}
}

func fillNormal(rng *rand.Rand, x []float32, std float64) {
	for i := range x {
		x[i] = float32(rng.NormFloat64() * std)
	}
}

// ones writes an F32 vector of n ones, element 0 set to first.
func ones(n uint64, first float32) func(io.Writer) error {
	return func(out io.Writer) error {
		b := make([]byte, 4*n)
		for i := range n {
			v := float32(1)
			if i == 0 {
				v = first
			}
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		_, err := out.Write(b)
		return err
	}
}

// vector writes the 1-D tensor t from fill, on the stream named key.
func vector(seed uint64, t Tensor, key string, fill func(*rand.Rand, uint64, []float32)) func(io.Writer) error {
	return rows(seed, Tensor{t.Name, []uint64{t.Shape[0], 1}, t.Type}, key, fill)
}

// normal writes t's weights drawn from normal(0, std): rows of ne0 values,
// grouped in chunks of about chunkElems, each chunk from its own PCG
// stream keyed by the seed, the tensor's name and the chunk's index.
// Chunks are generated in parallel and written in order.
func normal(seed uint64, t Tensor, std float64) func(io.Writer) error {
	return rows(seed, t, t.Name, plainNormal(std))
}

// rows writes t row by row: fill gets the chunk's stream (streams keyed
// by the name key, see normal) and the row index, and sets the row's ne0
// values, which are then encoded in t.Type.
func rows(seed uint64, t Tensor, key string, fill func(rng *rand.Rand, r uint64, x []float32)) func(io.Writer) error {
	return rowsSlot(seed, t, key, func(int) any { return nil },
		func(_ any, rng *rand.Rand, r uint64, x []float32) error { fill(rng, r, x); return nil })
}

// rowsSlot is rows with per-worker scratch: scratch(k) makes worker k's,
// which fill receives.
func rowsSlot(seed uint64, t Tensor, key string, scratch func(k int) any, fill func(ws any, rng *rand.Rand, r uint64, x []float32) error) func(io.Writer) error {
	return func(out io.Writer) error {
		ne0, nrows := t.Shape[0], t.Shape[1]
		rowBytes, err := t.Type.RowBytes(ne0)
		if err != nil {
			return err
		}
		ch := newChunks(seed, key, ne0, nrows)
		bufs := make([][]byte, ch.workers)
		xs := make([][]float32, ch.workers)
		ws := make([]any, ch.workers)
		for i := range bufs {
			bufs[i] = make([]byte, ch.per*rowBytes)
			xs[i] = make([]float32, ne0)
			ws[i] = scratch(i)
		}
		return ch.run(func(k int, rng *rand.Rand, r0, r1 uint64) error {
			for r := r0; r < r1; r++ {
				if err := fill(ws[k], rng, r, xs[k]); err != nil {
					return err
				}
				if err := encodeRow(t.Type, xs[k], bufs[k][(r-r0)*rowBytes:(r-r0+1)*rowBytes]); err != nil {
					return err
				}
			}
			return nil
		}, func(k int, r0, r1 uint64) error {
			_, err := out.Write(bufs[k][:(r1-r0)*rowBytes])
			return err
		})
	}
}

// chunks splits the rows of a matrix with ne0-element rows into chunks of
// about chunkElems and runs them, workers at a time.
type chunks struct {
	seed, salt, rows, per uint64
	workers               int
}

func newChunks(seed uint64, key string, ne0, rows uint64) chunks {
	return chunks{seed: seed, salt: nameHash(key), rows: rows, per: max(1, chunkElems/ne0), workers: runtime.GOMAXPROCS(0)}
}

// run calls gen for every chunk in parallel, worker slot k of a wave
// holding chunk first+k and its own stream, then emit for the wave's
// chunks in order. The stream of chunk ci depends only on seed, salt and
// ci, so the bytes do not depend on the number of workers.
func (ch chunks) run(gen func(k int, rng *rand.Rand, r0, r1 uint64) error, emit func(k int, r0, r1 uint64) error) error {
	n := (ch.rows + ch.per - 1) / ch.per
	w := uint64(ch.workers)
	errs := make([]error, w)
	for first := uint64(0); first < n; first += w {
		m := min(w, n-first)
		var wg sync.WaitGroup
		for k := range m {
			wg.Go(func() {
				ci := first + k
				r0 := ci * ch.per
				r1 := min(r0+ch.per, ch.rows)
				errs[k] = gen(int(k), chunkRNG(ch.seed, ch.salt, ci), r0, r1)
			})
		}
		wg.Wait()
		for k := range m {
			if errs[k] != nil {
				return errs[k]
			}
			if emit == nil {
				continue
			}
			ci := first + k
			r0 := ci * ch.per
			if err := emit(int(k), r0, min(r0+ch.per, ch.rows)); err != nil {
				return err
			}
		}
	}
	return nil
}

// chunkRNG is the stream of chunk ci of the tensor (or key) with hash salt.
func chunkRNG(seed, salt, ci uint64) *rand.Rand {
	return rand.New(rand.NewPCG(mix(seed^mix(salt)), mix(salt+ci+1)))
}

// drawVector returns the n values vector() writes for key with fill.
func drawVector(seed uint64, key string, n int, fill func(*rand.Rand, uint64, []float32)) []float32 {
	x := make([]float32, n)
	fill(chunkRNG(seed, nameHash(key), 0), 0, x)
	return x
}

func plainNormal(std float64) func(*rand.Rand, uint64, []float32) {
	return func(rng *rand.Rand, _ uint64, x []float32) { fillNormal(rng, x, std) }
}

// down writes a planted layer's down projection. The numbers are drawn
// neuron-major (the row of neuron i holds its Dim output weights, element
// 0 zero so the anchor stays 1, std β/√FFN) on the stream of
// "blk.N.ffn_down" whatever the layout, so ffn_down_t is exactly the
// transpose of the ffn_down of the same seed.
func (g *gen) down(t Tensor, layer int) func(io.Writer) error {
	c := g.c
	key := fmt.Sprintf("blk.%d.ffn_down", layer)
	std := writerScale(c) / math.Sqrt(float64(c.FFN))
	fill := anchored(std, 0)
	if t.Shape[0] == uint64(c.Dim) { // ffn_down_t: already neuron-major
		return rows(c.Seed, t, key, fill)
	}
	return func(out io.Writer) error {
		dim, ffn := c.Dim, c.FFN
		m := make([]float32, ffn*dim)
		ch := newChunks(c.Seed, key, uint64(dim), uint64(ffn))
		err := ch.run(func(_ int, rng *rand.Rand, r0, r1 uint64) error {
			for r := r0; r < r1; r++ {
				fill(rng, r, m[int(r)*dim:int(r+1)*dim])
			}
			return nil
		}, nil)
		if err != nil {
			return err
		}
		rowBytes, err := t.Type.RowBytes(uint64(ffn))
		if err != nil {
			return err
		}
		row := make([]float32, ffn)
		buf := make([]byte, rowBytes)
		for j := range dim {
			for i := range ffn {
				row[i] = m[i*dim+j]
			}
			if err := encodeRow(t.Type, row, buf); err != nil {
				return err
			}
			if _, err := out.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}
}

// plantedOf returns the matrix that decides layer's firing: the gate, or
// up for OPT.
func (g *gen) plantedOf(layer int) *plantedMatrix {
	gate, up := taus(g.c, g.plan, layer)
	name, tau := fmt.Sprintf("blk.%d.ffn_gate.weight", layer), gate
	if gate == nil {
		name, tau = fmt.Sprintf("blk.%d.ffn_up.weight", layer), up
	}
	return newPlanted(g.c, name, layer, tau)
}

// planted writes a planted gate or up matrix.
func (g *gen) planted(t Tensor, layer int, tau []float64) func(io.Writer) error {
	pm := newPlanted(g.c, t.Name, layer, tau)
	return rowsSlot(g.c.Seed, t, t.Name, func(int) any { return pm.scratch() },
		func(ws any, rng *rand.Rand, r uint64, x []float32) error {
			_, err := pm.row(rng, int(r), ws.(*rowScratch), x)
			return err
		})
}

// fc1 writes the planted predictor's first matrix: rows ±b restricted to
// each group of the deciding matrix, then e_0, then ±(1, …, 1) for OPT
// (see sparse.go).
func (g *gen) fc1(t Tensor, layer int) func(io.Writer) error {
	return func(out io.Writer) error {
		pm := g.plantedOf(layer)
		dim, m := g.c.Dim, basisRank(g.c)
		x := make([]float32, dim)
		buf := make([]byte, 2*dim)
		for r := range PredictorRank(g.c) {
			clear(x)
			sign := float32(1)
			if r%2 == 1 {
				sign = -1
			}
			switch k := r / 2; {
			case r < 2*m:
				for j := pm.start[k]; j < pm.start[k+1]; j++ {
					x[j] = sign * float32(pm.b[j])
				}
			case r == 2*m:
				x[0] = 1
			default: // 2m+1: +1s, 2m+2: −1s, for OPT's mean
				for j := range x {
					x[j] = -sign
				}
			}
			if err := encodeRow(dtype.F16, x, buf); err != nil {
				return err
			}
			if _, err := out.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}
}

// fc2 writes the planted predictor's second matrix. It regenerates the
// deciding matrix row by row on that matrix's own streams (its chunks,
// not fc2's) and writes [a_1, −a_1, …, a_m, −a_m, W0·ĝ_0 + δ] (plus the
// LayerNorm terms for OPT: see sparse.go).
func (g *gen) fc2(t Tensor, layer int) func(io.Writer) error {
	return func(out io.Writer) error {
		c := g.c
		pm := g.plantedOf(layer)
		m, dim, rank := basisRank(c), c.Dim, PredictorRank(c)
		kappa := kappaRMS
		var normB, upB []float32
		if c.Arch == "opt" {
			kappa = kappaLN
			normB = drawVector(c.Seed, fmt.Sprintf("blk.%d.ffn_norm.bias", layer), dim, anchored(biasStd, 0))
			upB = drawVector(c.Seed, fmt.Sprintf("blk.%d.ffn_up.bias", layer), c.FFN, plainNormal(biasStd))
		}
		ch := newChunks(c.Seed, pm.name, uint64(dim), uint64(c.FFN))
		rowBytes := uint64(2 * rank)
		type scratch struct {
			rs  *rowScratch
			g   []float32
			row []float32
		}
		ws := make([]scratch, ch.workers)
		bufs := make([][]byte, ch.workers)
		for k := range ws {
			ws[k] = scratch{pm.scratch(), make([]float32, dim), make([]float32, rank)}
			bufs[k] = make([]byte, ch.per*rowBytes)
		}
		return ch.run(func(k int, rng *rand.Rand, r0, r1 uint64) error {
			w := &ws[k]
			for r := r0; r < r1; r++ {
				norm, err := pm.row(rng, int(r), w.rs, w.g)
				if err != nil {
					return err
				}
				q := w.rs.q
				var e2 float64
				for j := 1; j < dim; j++ {
					d := float64(q[j] - w.g[j])
					e2 += d * d
				}
				anchor := pm.w0*float64(q[0]) + 3*pm.sigma*math.Sqrt(e2) + kappa*pm.sigma*norm
				for i, a := range w.rs.a {
					w.row[2*i], w.row[2*i+1] = float32(a), float32(-a)
				}
				if normB != nil {
					s := pm.w0 * float64(q[0])
					for _, v := range q[1:] {
						s += float64(v)
					}
					anchor += pm.sigma * (dotF(q, normB) + float64(upB[r]))
					// rows 2m+1 and 2m+2 of fc1 are +1s and −1s: −(S/Dim)·Σh
					w.row[2*m+1], w.row[2*m+2] = float32(-s/float64(dim)), float32(s/float64(dim))
				}
				w.row[2*m] = float32(anchor)
				if err := encodeRow(dtype.F16, w.row, bufs[k][(r-r0)*rowBytes:(r-r0+1)*rowBytes]); err != nil {
					return err
				}
			}
			return nil
		}, func(k int, r0, r1 uint64) error {
			_, err := out.Write(bufs[k][:(r1-r0)*rowBytes])
			return err
		})
	}
}

func dotF(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// encodeRow stores one row of weights in type t.
func encodeRow(t dtype.Type, src []float32, dst []byte) error {
	switch t {
	case dtype.F32:
		for i, x := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
		}
	case dtype.F16:
		for i, x := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], dtype.F32ToF16(x))
		}
	case dtype.BF16:
		for i, x := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], dtype.F32ToBF16(x))
		}
	default:
		return quantize(t, src, dst)
	}
	return nil
}

func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// mix is splitmix64's finalizer: nearby inputs give unrelated outputs, so
// neighbouring chunks get unrelated PCG streams.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
