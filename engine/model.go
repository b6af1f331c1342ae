// Package engine runs a model: it binds a GGUF file's tensors to a family
// description, owns the KV cache and scratch buffers of a session, and runs
// the forward pass, the sampler and the generation loop.
package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"

	"github.com/stokehq/stoke/kernels/cpu"
	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/models/tokenizer"
)

// Model is a loaded, immutable model: weights (mmapped), hyperparameters and
// tokenizer. Sessions created from it hold all mutable state, so one Model
// can serve many sessions.
type Model struct {
	Path   string
	File   *gguf.File
	Config arch.Config
	W      *arch.Weights
	Tok    *tokenizer.Tokenizer

	// Vectors (norm weights, biases) as float32, decoded once at load.
	outNorm, outNormB []float32
	layers            []layerVecs
	freqFactors       []float32

	// neuron-major down projections for the sparse FFN, built on first use
	downTOnce sync.Once
	downT     []*arch.Tensor
	downTErr  error

	packed    int  // matrices packed at load (PackQ4)
	ffnPacked bool // and the FFN's among them (not KeepFFNRows)
}

type layerVecs struct {
	attnNorm, attnNormB, qb, kb, vb, ob  []float32
	qNorm, kNorm                         []float32
	ffnNorm, ffnNormB, gateB, upB, downB []float32
}

// Load opens a GGUF file and binds it. The weights stay in the mmapped file:
// loading costs no RSS for weights until they are read.
func Load(path string) (*Model, error) {
	return LoadWith(path, LoadOptions{})
}

// LoadOptions choose how Load brings the weights in.
type LoadOptions struct {
	// NoMmap reads the file into memory (in huge pages where the kernel
	// gives them) instead of mapping it, as llama.cpp's --no-mmap: the
	// load reads the whole file and the weights take private memory, and
	// memory-bound decode runs faster (gguf.OpenInMemory).
	NoMmap bool
	// PackQ4 packs, in place, the Q4_0, Q8_0, Q4_K and Q6_K matrices that only
	// the dense forward pass reads (attention, FFN, the output head unless
	// tied to the embedding) into the CPU's packed layouts (cpu.PackX16:
	// sixteen rows interleaved), for each type where that pays
	// (cpu.X16Pays: its assembly kernels run) and the file is read into
	// memory (NoMmap); otherwise it does nothing. The packed kernels
	// compute the same products with the rows interleaved by sixteen, one
	// row per vector lane: eight batched inputs ran at 1.2–1.7× the row
	// layout's multiply-adds per second for Q4_0 and 2.2–3.4× for Q4_K,
	// one input at 1.0–2.5× and 0.9–1.9× (BenchmarkMatMulQ4x16,
	// BenchmarkMatMulQ4Kx16 on the 2-core development machine), so
	// continuous batching gains most. A model with packed FFN matrices
	// cannot run a sparse FFN, and a packed model cannot offload weights
	// (both read rows): EnableSparse and EnableOffload refuse them.
	PackQ4 bool
	// KeepFFNRows, with PackQ4, leaves the FFN matrices in GGUF's rows for
	// a sparse FFN (EnableSparse) and packs only attention and the output
	// head, which a sparse token still reads whole.
	KeepFFNRows bool
}

// inMemoryShare is the largest share of the available memory that a
// model read into memory by default (InMemoryPays) may take: the rest is
// left to the KV cache, scratch, other programs and the page cache.
const inMemoryShare = 0.6

// InMemoryPays reports whether the model file at path is worth reading
// into memory (LoadOptions.NoMmap) for a run on the CPU, and if not, why.
// It is where the kernel gives huge pages (gguf.InMemoryHugePages) and
// the file takes at most inMemoryShare of the available memory.
//
// Why: the forward pass reads every weight it uses once per token, from
// hundreds of tensors, and a sparse FFN reads scattered rows. Read into
// memory, they sit in 2 MiB pages. Mapped, they sit in whatever the page
// cache holds. On the 2-core development machine (a VM, Linux 6.18) the
// synthetic 1B Q4_0 ReLU model in PowerInfer's layout decoded at 42–81
// tok/s mapped against 63–84 in memory, and with its sparse FFN at 42–107
// against 87–114 (BenchmarkSparseDecode, ten runs); mapped was slowest
// when page faults had brought the file into the page cache (small
// pages), near in memory after a sequential read had (huge folios), as
// LoadWith's prefault of a mapped file now does (gguf.File.Prefault).
// That cannot help a file the page cache already holds in small pages,
// as it held a copy just written by cp: mapped sparse decode of that copy
// ran at 101, then 72 tok/s, against 90 and 100 in memory. The
// dense 1B Q4_0 and Q8_0 bench models went from 54 to 65 and from 36 to
// 42 tok/s (BenchmarkDecode's …/threads=2 against …/no-mmap). The cost is
// private memory for the whole file, where a mapping shares the page
// cache; a device run, whose weights mostly live on the GPU, is better
// off mapped.
func InMemoryPays(path string) (bool, string) {
	if !gguf.InMemoryHugePages() {
		return false, "the kernel gives no transparent huge pages here"
	}
	st, err := os.Stat(path)
	if err != nil {
		return false, err.Error() // the load reports it
	}
	avail, err := gguf.AvailableMemory()
	if err != nil {
		return false, err.Error()
	}
	return inMemoryFits(st.Size(), avail)
}

// inMemoryFits is InMemoryPays' size rule.
func inMemoryFits(size, avail int64) (bool, string) {
	if float64(size) > inMemoryShare*float64(avail) {
		return false, fmt.Sprintf("the file (%.2f GiB) is over %.0f%% of the memory available (%.2f GiB)",
			float64(size)/(1<<30), 100*inMemoryShare, float64(avail)/(1<<30))
	}
	return true, ""
}

// LoadWith is Load with options.
func LoadWith(path string, o LoadOptions) (*Model, error) {
	open := gguf.Open
	if o.NoMmap {
		open = gguf.OpenInMemory
	}
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	f.Prefault()
	m, err := FromFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.Path = path
	if o.PackQ4 && o.NoMmap {
		if err := m.packQ4(o.KeepFFNRows); err != nil {
			m.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return m, nil
}

// packAlways makes PackQ4 pack where the packed kernels do not pay too,
// so that tests cover the packed forward pass on every machine.
var packAlways = false

// packQ4 packs the model's packable matrices in place (PackQ4), but for
// the FFN's when keepFFN.
func (m *Model) packQ4(keepFFN bool) error {
	var ts []*arch.Tensor
	add := func(t *arch.Tensor) {
		if t != nil && len(t.Shape) == 2 && cpu.PackableX16(t.Type, t.Rows(), t.Cols()) && (cpu.X16Pays(t.Type) || packAlways) {
			ts = append(ts, t)
		}
	}
	for i := range m.W.Layers {
		l := &m.W.Layers[i]
		for _, t := range []*arch.Tensor{l.Q, l.K, l.V, l.O} {
			add(t)
		}
		if !keepFFN {
			for _, t := range []*arch.Tensor{l.Gate, l.Up, l.Down} {
				add(t)
			}
		}
	}
	// A tied output head is the embedding, whose rows the forward pass
	// reads one token at a time.
	if o, e := m.W.Output, m.W.TokenEmbd; o != nil && (e == nil || len(o.Data) == 0 || len(e.Data) == 0 || &o.Data[0] != &e.Data[0]) {
		add(o)
	}
	if len(ts) == 0 {
		return nil
	}
	return m.File.Rewrite(func() error {
		for _, t := range ts {
			cpu.PackX16(t.Type, t.Data, t.Rows(), t.Cols())
			t.Packed = true
		}
		m.packed, m.ffnPacked = len(ts), !keepFFN
		return nil
	})
}

// PackedMatrices is the number of matrices LoadOptions.PackQ4 packed.
func (m *Model) PackedMatrices() int { return m.packed }

// errPacked is EnableSparse's refusal of a model with packed FFN
// matrices, and EnableOffload's of a packed model.
var errPacked = errors.New("engine: the model's matrices are packed for the CPU (LoadOptions.PackQ4); load it without packing (or with KeepFFNRows, for a sparse FFN) to run a sparse FFN or offload")

// FromFile binds an opened GGUF file. The model takes ownership of f.
func FromFile(f *gguf.File) (*Model, error) {
	cfg, err := arch.ConfigFromGGUF(f)
	if err != nil {
		return nil, err
	}
	w, err := arch.Bind(f, &cfg)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > cfg.Vocab {
		return nil, fmt.Errorf("engine: tokenizer has %d tokens but token_embd has %d rows", tok.VocabSize(), cfg.Vocab)
	}
	m := &Model{File: f, Config: cfg, W: w, Tok: tok}
	m.outNorm = vec(w.OutputNorm)
	m.outNormB = vec(w.OutputNormB)
	m.freqFactors = vec(w.RoPEFreqs)
	m.layers = make([]layerVecs, len(w.Layers))
	for i := range w.Layers {
		l := &w.Layers[i]
		m.layers[i] = layerVecs{
			attnNorm: vec(l.AttnNorm), attnNormB: vec(l.AttnNormB),
			qb: vec(l.QB), kb: vec(l.KB), vb: vec(l.VB), ob: vec(l.OB),
			qNorm: vec(l.QNorm), kNorm: vec(l.KNorm),
			ffnNorm: vec(l.FFNNorm), ffnNormB: vec(l.FFNNormB),
			gateB: vec(l.GateB), upB: vec(l.UpB), downB: vec(l.DownB),
		}
	}
	return m, nil
}

// Close unmaps the file. Sessions must not be used afterwards.
func (m *Model) Close() error { return m.File.Close() }

// vec decodes an F32 vector tensor (arch.Bind guarantees the type); nil for
// an absent optional tensor.
func vec(t *arch.Tensor) []float32 {
	if t == nil {
		return nil
	}
	if t.Type != dtype.F32 {
		panic("engine: vector tensor " + t.Name + " is not F32")
	}
	v := make([]float32, len(t.Data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v
}

// ParamCount is the number of weights in the model's tensors.
func (m *Model) ParamCount() int64 {
	var n int64
	for _, t := range m.File.Tensors {
		p := int64(1)
		for _, d := range t.Shape {
			p *= int64(d)
		}
		n += p
	}
	return n
}

// WeightBytes is the size of the tensor data: the bytes a dense decode step
// reads (plus the KV cache).
func (m *Model) WeightBytes() int64 {
	var n int64
	for _, t := range m.File.Tensors {
		n += int64(t.Size)
	}
	return n
}
