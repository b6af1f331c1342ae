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
// tensor after the "blk.N." prefix; the shape tag gives the expected GGUF
// shape in Config dimensions, checked at bind time so the decode loop never
// meets a mis-shaped tensor.
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
	Down      *Tensor `gguf:"ffn_down.weight" shape:"ffn,dim"`
	DownB     *Tensor `gguf:"ffn_down.bias,optional" shape:"dim"`
}

// Weights holds every tensor the forward pass reads.
type Weights struct {
	TokenEmbd   *Tensor `gguf:"token_embd.weight" shape:"dim,vocab"`
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
	for i := range w.Layers {
		if err := b.bind(reflect.ValueOf(&w.Layers[i]).Elem(), "blk."+strconv.Itoa(i)+"."); err != nil {
			return nil, err
		}
		l := &w.Layers[i]
		if c.Gated && l.Gate == nil {
			return nil, fmt.Errorf("arch: %s FFN is gated but blk.%d.ffn_gate.weight is missing", c.Family.Name, i)
		}
		if c.QKNorm && (l.QNorm == nil || l.KNorm == nil) {
			return nil, fmt.Errorf("arch: %s needs blk.%d.attn_q_norm/attn_k_norm", c.Family.Name, i)
		}
	}
	return w, nil
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
				names = append(names, strings.TrimPrefix(p, "alt:"))
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
			return fmt.Errorf("arch: tensor %s has shape %v, want %v", ti.Name, ti.Shape, want)
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

func (b *binder) shape(spec string) ([]uint64, error) {
	var s []uint64
	for _, d := range strings.Split(spec, ",") {
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
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
