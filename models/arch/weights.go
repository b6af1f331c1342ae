package arch

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// Tensor is a bound weight: its bytes (a slice of the mmapped file) and
// the layout the kernels need. A matrix of GGUF shape [ne0, ne1] is ne1
// rows of ne0 contiguous elements; for y = W·x, ne0 is x's length.
type Tensor struct {
	Name  string
	Type  dtype.Type
	Shape []uint64
	Data  []byte
	// Packed: Data holds the matrix in the CPU's packed layout
	// (cpu.PackX16, sixteen rows interleaved), not in GGUF's rows. Only
	// the packed drivers read it; the engine packs at load
	// (engine.LoadOptions.PackQ4) and refuses the row readers (sparse
	// FFN, offload) for a model it packed.
	Packed bool
}

// Cols is the length of one row (ne0).
func (t *Tensor) Cols() int { return int(t.Shape[0]) }

// Rows is the number of rows (the product of the other dimensions).
func (t *Tensor) Rows() int {
	n := 1
	for _, d := range t.Shape[1:] {
		n *= int(d)
	}
	return n
}

// RowBytes is the size of one row in bytes.
func (t *Tensor) RowBytes() int { return len(t.Data) / t.Rows() }

// Layer holds one transformer block's tensors. The gguf tag names the
// tensor after the "blk.N." prefix (alternates too); the shape tag gives
// the expected GGUF shape in Config dimensions, "*" for any non-zero size,
// checked at bind time so the decode loop never meets a mis-shaped tensor.
type Layer struct {
	AttnNorm  *Tensor `gguf:"attn_norm.weight" shape:"dim"`
	AttnNormB *Tensor `gguf:"attn_norm.bias,optional" shape:"dim"`
	Q         *Tensor `gguf:"attn_q.weight" shape:"dim,qdim"`
	QB        *Tensor `gguf:"attn_q.bias,optional" shape:"qdim"`
	K         *Tensor `gguf:"attn_k.weight" shape:"dim,kvdim"`
	KB        *Tensor `gguf:"attn_k.bias,optional" shape:"kvdim"`
	V         *Tensor `gguf:"attn_v.weight" shape:"dim,kvdim"`
	VB        *Tensor `gguf:"attn_v.bias,optional" shape:"kvdim"`
	O         *Tensor `gguf:"attn_output.weight" shape:"qdim,dim"`
	OB        *Tensor `gguf:"attn_output.bias,optional" shape:"dim"`
	QNorm     *Tensor `gguf:"attn_q_norm.weight,optional" shape:"headdim"`
	KNorm     *Tensor `gguf:"attn_k_norm.weight,optional" shape:"headdim"`
	FFNNorm   *Tensor `gguf:"ffn_norm.weight" shape:"dim"`
	FFNNormB  *Tensor `gguf:"ffn_norm.bias,optional" shape:"dim"`
	Gate      *Tensor `gguf:"ffn_gate.weight,optional" shape:"dim,ffn"`
	GateB     *Tensor `gguf:"ffn_gate.bias,optional" shape:"ffn"`
	Up        *Tensor `gguf:"ffn_up.weight" shape:"dim,ffn"`
	UpB       *Tensor `gguf:"ffn_up.bias,optional" shape:"ffn"`
	// Down is the usual down projection: dim rows of ffn elements,
	// y = Down·h. At least one of Down and DownT is present.
	Down *Tensor `gguf:"ffn_down.weight,optional" shape:"ffn,dim"`
	// DownT is PowerInfer's transposed down projection, neuron-major: ffn
	// rows of dim elements, row i holding neuron i's output weights, so
	// y = Σ_i h_i·DownT[i] reads only the rows of active neurons.
	DownT *Tensor `gguf:"ffn_down_t.weight,optional" shape:"dim,ffn"`
	// DownB: PowerInfer's converter renames every "ffn_down" to
	// "ffn_down_t", the bias of an OPT included.
	DownB *Tensor `gguf:"ffn_down.bias,optional,alt:ffn_down_t.bias" shape:"dim"`
	// FC1 and FC2 are a PowerInfer activation predictor: neuron i is
	// predicted active when (FC2·ReLU(FC1·x))_i ≥ Config.SparseThreshold.
	// FC1 is rank rows of dim elements, FC2 ffn rows of rank elements; the
	// rank differs between layers. Both or neither are present.
	FC1 *Tensor `gguf:"fc1.weight,optional" shape:"dim,*"`
	FC2 *Tensor `gguf:"fc2.weight,optional" shape:"*,ffn"`
}

// PredictorRank is the hidden width of the layer's predictor, 0 when the
// layer has none.
func (l *Layer) PredictorRank() int {
	if l.FC1 == nil {
		return 0
	}
	return l.FC1.Rows()
}

// Weights holds every tensor the forward pass reads.
type Weights struct {
	TokenEmbd *Tensor `gguf:"token_embd.weight" shape:"dim,vocab"`
	// PosEmbd holds learned absolute positions (families with PosEmbd):
	// rows of dim elements, position p reading row p+PosOffset.
	PosEmbd     *Tensor `gguf:"position_embd.weight,optional" shape:"dim,*"`
	OutputNorm  *Tensor `gguf:"output_norm.weight" shape:"dim"`
	OutputNormB *Tensor `gguf:"output_norm.bias,optional" shape:"dim"`
	// Output falls back to the embedding matrix: tied embeddings.
	Output    *Tensor `gguf:"output.weight,alt:token_embd.weight" shape:"dim,vocab"`
	RoPEFreqs *Tensor `gguf:"rope_freqs.weight,optional" shape:"ropehalf"`
	Layers    []Layer `gguf:"blk"`
}

// Bind resolves every tensor of Weights in f once, checking presence,
// shape against c, and that the kernels can compute with its type. It also
// fills c.Vocab from the embedding matrix.
func Bind(f *gguf.File, c *Config) (*Weights, error) {
	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return nil, fmt.Errorf("arch: tensor token_embd.weight is missing")
	}
	if len(emb.Shape) != 2 || emb.Shape[1] == 0 || emb.Shape[1] > 1<<24 {
		return nil, fmt.Errorf("arch: token_embd.weight has shape %v, want [dim, vocab]", emb.Shape)
	}
	c.Vocab = int(emb.Shape[1])
	dims := map[string]uint64{
		"dim": uint64(c.Dim), "qdim": uint64(c.QDim()), "kvdim": uint64(c.KVDim()),
		"headdim": uint64(c.HeadDim), "ffn": uint64(c.FFN), "vocab": uint64(c.Vocab),
		"ropehalf": uint64(c.RoPEDims / 2),
	}
	w := &Weights{Layers: make([]Layer, c.Layers)}
	b := binder{f: f, dims: dims}
	if err := b.bind(reflect.ValueOf(w).Elem(), ""); err != nil {
		return nil, err
	}
	if err := checkPositions(w, c); err != nil {
		return nil, err
	}
	for i := range w.Layers {
		if err := b.bind(reflect.ValueOf(&w.Layers[i]).Elem(), "blk."+strconv.Itoa(i)+"."); err != nil {
			return nil, err
		}
		if err := checkLayer(&w.Layers[i], i, c); err != nil {
			return nil, err
		}
	}
	if c.Biases && w.OutputNormB == nil {
		return nil, fmt.Errorf("arch: %s has biases everywhere but output_norm.bias is missing", c.Family.Name)
	}
	return w, nil
}

// checkPositions checks the position table of a PosEmbd family and limits
// c.Context to the positions it holds.
func checkPositions(w *Weights, c *Config) error {
	if !c.PosEmbd {
		return nil
	}
	if w.PosEmbd == nil {
		return fmt.Errorf("arch: %s needs learned positions but position_embd.weight is missing", c.Family.Name)
	}
	rows := w.PosEmbd.Rows()
	if rows <= c.PosOffset {
		return fmt.Errorf("arch: position_embd.weight has %d rows, want more than the position offset %d", rows, c.PosOffset)
	}
	c.Context = min(c.Context, rows-c.PosOffset)
	return nil
}

// checkLayer checks what the tags cannot: tensors that depend on the
// family, alternatives and pairs.
func checkLayer(l *Layer, i int, c *Config) error {
	p := "blk." + strconv.Itoa(i) + "."
	if c.Gated && l.Gate == nil {
		return fmt.Errorf("arch: %s FFN is gated but %sffn_gate.weight is missing", c.Family.Name, p)
	}
	if c.QKNorm && (l.QNorm == nil || l.KNorm == nil) {
		return fmt.Errorf("arch: %s needs %sattn_q_norm/attn_k_norm", c.Family.Name, p)
	}
	if l.Down == nil && l.DownT == nil {
		return fmt.Errorf("arch: %sffn_down.weight and %sffn_down_t.weight are both missing (one is needed)", p, p)
	}
	if (l.FC1 == nil) != (l.FC2 == nil) {
		return fmt.Errorf("arch: %sfc1.weight and %sfc2.weight come as a pair, and only one is present", p, p)
	}
	if l.FC1 != nil && l.FC1.Rows() != l.FC2.Cols() {
		return fmt.Errorf("arch: predictor rank mismatch: %s has shape %v and %s %v (want [dim, r] and [r, ffn])",
			l.FC1.Name, l.FC1.Shape, l.FC2.Name, l.FC2.Shape)
	}
	if c.Biases {
		biases := []struct {
			t    *Tensor
			name string
		}{
			{l.AttnNormB, "attn_norm.bias"}, {l.QB, "attn_q.bias"}, {l.KB, "attn_k.bias"}, {l.VB, "attn_v.bias"},
			{l.OB, "attn_output.bias"}, {l.FFNNormB, "ffn_norm.bias"}, {l.UpB, "ffn_up.bias"}, {l.DownB, "ffn_down.bias"},
		}
		if c.Gated {
			biases = append(biases, struct {
				t    *Tensor
				name string
			}{l.GateB, "ffn_gate.bias"})
		}
		for _, b := range biases {
			if b.t == nil {
				return fmt.Errorf("arch: %s has biases everywhere but %s%s is missing", c.Family.Name, p, b.name)
			}
		}
	}
	return nil
}

type binder struct {
	f    *gguf.File
	dims map[string]uint64
}

var tensorType = reflect.TypeOf((*Tensor)(nil))

// bind fills the *Tensor fields of the struct v from tags, prefixing names.
// Slices (Layers) are bound by the caller, one element per block.
func (b *binder) bind(v reflect.Value, prefix string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Type != tensorType {
			continue
		}
		tag := sf.Tag.Get("gguf")
		parts := strings.Split(tag, ",")
		names := []string{prefix + parts[0]}
		optional := false
		for _, p := range parts[1:] {
			switch {
			case p == "optional":
				optional = true
			case strings.HasPrefix(p, "alt:"):
				names = append(names, prefix+strings.TrimPrefix(p, "alt:"))
			}
		}
		var ti *gguf.TensorInfo
		for _, n := range names {
			if x, ok := b.f.Tensor(n); ok {
				ti = x
				break
			}
		}
		if ti == nil {
			if optional {
				continue
			}
			return fmt.Errorf("arch: tensor %s is missing", names[0])
		}
		want, err := b.shape(sf.Tag.Get("shape"))
		if err != nil {
			return err
		}
		if !equalShape(ti.Shape, want) {
			return fmt.Errorf("arch: tensor %s has shape %v, want %s", ti.Name, ti.Shape, shapeText(want))
		}
		if !ti.Type.Computable() {
			return fmt.Errorf("arch: tensor %s has type %s, which Stoke cannot compute with yet", ti.Name, ti.Type)
		}
		if len(want) == 1 && ti.Type != dtype.F32 {
			// Vectors (norms, biases) are read directly as float32.
			return fmt.Errorf("arch: tensor %s is %s; vectors must be F32", ti.Name, ti.Type)
		}
		v.Field(i).Set(reflect.ValueOf(&Tensor{
			Name: ti.Name, Type: ti.Type, Shape: ti.Shape, Data: b.f.TensorData(ti),
		}))
	}
	return nil
}

// anyDim is the shape tag "*": any non-zero size.
const anyDim = ^uint64(0)

func (b *binder) shape(spec string) ([]uint64, error) {
	var s []uint64
	for _, d := range strings.Split(spec, ",") {
		if d == "*" {
			s = append(s, anyDim)
			continue
		}
		n, ok := b.dims[d]
		if !ok {
			return nil, fmt.Errorf("arch: internal: unknown dimension %q", d)
		}
		s = append(s, n)
	}
	return s, nil
}

func equalShape(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && (b[i] != anyDim || a[i] == 0) {
			return false
		}
	}
	return true
}

// shapeText prints a wanted shape as fmt prints a slice, "*" for anyDim.
func shapeText(s []uint64) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = "*"
		if d != anyDim {
			parts[i] = strconv.FormatUint(d, 10)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}
