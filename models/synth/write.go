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
	KeySeed   = "stoke.synth.seed"
	KeyParams = "stoke.synth.params"
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
	u32 := func(k string, v int) { w.AddKV(k, gguf.Uint32(uint32(v))) }
	w.AddKV("general.architecture", gguf.String("llama"))
	w.AddKV("general.name", gguf.String(fmt.Sprintf("stoke-synth-llama-%s-%s-seed%d", paramsText(c.Params), c.Type, c.Seed)))
	u32("llama.context_length", c.Context)
	u32("llama.embedding_length", c.Dim)
	u32("llama.block_count", c.Layers)
	u32("llama.feed_forward_length", c.FFN)
	u32("llama.rope.dimension_count", c.HeadDim())
	u32("llama.attention.head_count", c.Heads)
	u32("llama.attention.head_count_kv", c.KVHeads)
	w.AddKV("llama.rope.freq_base", gguf.Float32(ropeFreqBase))
	w.AddKV("llama.attention.layer_norm_rms_epsilon", gguf.Float32(rmsEpsilon))
	u32("llama.vocab_size", c.Vocab)
	w.AddKV("general.file_type", gguf.Uint32(fileTypes[c.Type]))
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

	for _, t := range Tensors(c) {
		var gen func(io.Writer) error
		switch {
		case len(t.Shape) == 1:
			gen = ones(t.Shape[0])
		case t.Name == "token_embd.weight":
			gen = normal(c.Seed, t, 1)
		default:
			gen = normal(c.Seed, t, 1/math.Sqrt(float64(t.Shape[0])))
		}
		if err := w.AddTensorFunc(t.Name, t.Type, t.Shape, gen); err != nil {
			return nil, c, err
		}
	}
	return w, c, nil
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

// ones writes an F32 vector of n ones.
func ones(n uint64) func(io.Writer) error {
	return func(out io.Writer) error {
		b := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(1))
		}
		_, err := out.Write(b)
		return err
	}
}

// normal writes t's weights drawn from normal(0, std): rows of ne0 values,
// grouped in chunks of about chunkElems, each chunk from its own PCG
// stream keyed by the seed, the tensor's name and the chunk's index.
// Chunks are generated in parallel and written in order.
func normal(seed uint64, t Tensor, std float64) func(io.Writer) error {
	return func(out io.Writer) error {
		ne0, rows := t.Shape[0], t.Shape[1]
		rowBytes, err := t.Type.RowBytes(ne0)
		if err != nil {
			return err
		}
		perChunk := max(1, chunkElems/ne0)
		chunks := (rows + perChunk - 1) / perChunk
		salt := nameHash(t.Name)
		workers := uint64(runtime.GOMAXPROCS(0))
		bufs := make([][]byte, workers)
		scratch := make([][]float32, workers)
		for i := range bufs {
			bufs[i] = make([]byte, perChunk*rowBytes)
			scratch[i] = make([]float32, ne0)
		}
		errs := make([]error, workers)
		for first := uint64(0); first < chunks; first += workers {
			n := min(workers, chunks-first)
			var wg sync.WaitGroup
			for k := range n {
				wg.Go(func() {
					ci := first + k
					r0 := ci * perChunk
					r1 := min(r0+perChunk, rows)
					rng := rand.New(rand.NewPCG(mix(seed^mix(salt)), mix(salt+ci+1)))
					b := bufs[k][:(r1-r0)*rowBytes]
					for r := range r1 - r0 {
						row := scratch[k]
						for i := range row {
							row[i] = float32(rng.NormFloat64() * std)
						}
						if err := encodeRow(t.Type, row, b[r*rowBytes:(r+1)*rowBytes]); err != nil {
							errs[k] = err
							return
						}
					}
					errs[k] = nil
				})
			}
			wg.Wait()
			for k := range n {
				if errs[k] != nil {
					return errs[k]
				}
				ci := first + k
				r0 := ci * perChunk
				r1 := min(r0+perChunk, rows)
				if _, err := out.Write(bufs[k][:(r1-r0)*rowBytes]); err != nil {
					return err
				}
			}
		}
		return nil
	}
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
