package arch

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/stokehq/stoke/models/gguf"
)

// Renumbering the FFN neurons.
//
// An FFN computes y = Σ_i h_i·d_i, h_i = act(gate_i·x)·(up_i·x): neuron i
// owns row i of ffn_gate and ffn_up, element i of their biases, row i of
// ffn_down_t (column i of ffn_down) and row i of its predictor's fc2 (and
// element i of fc2's bias). Renumbering the neurons consistently changes
// nothing but the order of the sum, so the model computes the same
// function up to float rounding.
//
// What it changes is where a neuron's rows sit in memory. A sparse FFN
// reads the rows of the active neurons; where they are scattered over the
// matrix, every row is a short run the hardware prefetchers do not
// foresee. Real ReLU models fire by a power law over neurons (a few per
// cent fire for most tokens), so numbered hot first, by the firing counts
// of a profile, the active rows of most tokens crowd into the front of
// each matrix and are read as long runs. On the 2-core development
// machine, with cold caches, that made the sparse FFN of a 7B-shaped Q4_0
// layer 3–24% faster for active sets drawn from a 1/rank law
// (TestSparseFFNTable's hot-first column), and sparse decode of a planted
// 1B ReLU model 5–10% faster (BenchmarkSparseDecode's …/hot-first).

// PermuteFFN returns a writer for f with the FFN neurons of every layer
// renumbered: new neuron k of layer l is old neuron order[l][k], and
// order[l] must be a permutation of 0 … FFN−1. Every other tensor and
// every metadata pair is written as it is. f must stay open until the
// writer has written, and the writer holds no copy of the weights: the
// permuted tensors are streamed row by row.
//
// Rows are whole blocks, so gate, up, down_t and fc2 of any type permute
// exactly; so do biases and an ffn_down of a type with one element per
// block (F32, F16, BF16), whose columns are the neurons. A quantized
// ffn_down cannot be renumbered (its blocks run along the neurons): it is
// left out, its name returned in dropped, and the engine computes the
// down projection from ffn_down_t, which is the file's own or, for a
// layer without one, downT[l] (neuron-major: FFN rows of Dim elements, as
// engine.Model.NeuronMajorDown builds it), written renumbered as
// blk.N.ffn_down_t.weight where ffn_down was. Without either, PermuteFFN
// fails with an error that wraps ErrDownNotPermutable.
func PermuteFFN(f *gguf.File, order [][]int32, downT []*Tensor) (w *gguf.Writer, dropped []string, err error) {
	c, err := ConfigFromGGUF(f)
	if err != nil {
		return nil, nil, err
	}
	weights, err := Bind(f, &c)
	if err != nil {
		return nil, nil, err
	}
	if len(order) != c.Layers {
		return nil, nil, fmt.Errorf("arch: %d neuron orders for %d layers", len(order), c.Layers)
	}
	for l, o := range order {
		if err := CheckNeuronOrder(o, c.FFN); err != nil {
			return nil, nil, fmt.Errorf("arch: layer %d: %w", l, err)
		}
	}
	if downT != nil && len(downT) != c.Layers {
		return nil, nil, fmt.Errorf("arch: %d neuron-major downs for %d layers", len(downT), c.Layers)
	}
	jobs := map[string]permuteJob{} // tensor name → how to permute it
	for l := range weights.Layers {
		lw := &weights.Layers[l]
		o := order[l]
		for _, t := range []*Tensor{lw.Gate, lw.Up, lw.DownT, lw.FC2} {
			if t != nil {
				jobs[t.Name] = permuteJob{order: o, rows: true}
			}
		}
		biases := []*Tensor{lw.GateB, lw.UpB}
		if ti, ok := f.Tensor("blk." + strconv.Itoa(l) + ".fc2.bias"); ok {
			biases = append(biases, &Tensor{Name: ti.Name, Type: ti.Type, Shape: ti.Shape})
		}
		for _, t := range biases {
			if t == nil {
				continue
			}
			if len(t.Shape) != 1 || t.Shape[0] != uint64(c.FFN) || t.Type.BlockSize() != 1 {
				return nil, nil, fmt.Errorf("arch: %s is %s %v; a neuron bias must be %d elements of a float type", t.Name, t.Type, t.Shape, c.FFN)
			}
			jobs[t.Name] = permuteJob{order: o, rows: true} // one element per row
		}
		if d := lw.Down; d != nil {
			switch {
			case d.Type.BlockSize() == 1:
				jobs[d.Name] = permuteJob{order: o}
			case lw.DownT != nil:
				jobs[d.Name] = permuteJob{drop: true}
				dropped = append(dropped, d.Name)
			case downT != nil && downT[l] != nil:
				dt := downT[l]
				rb, err := dt.Type.RowBytes(uint64(c.Dim))
				if err != nil || len(dt.Shape) != 2 || dt.Shape[0] != uint64(c.Dim) || dt.Shape[1] != uint64(c.FFN) || uint64(len(dt.Data)) != rb*uint64(c.FFN) {
					return nil, nil, fmt.Errorf("arch: neuron-major down of layer %d is %s %v, want [%d, %d]", l, dt.Type, dt.Shape, c.Dim, c.FFN)
				}
				jobs[d.Name] = permuteJob{order: o, rows: true, replace: dt}
				dropped = append(dropped, d.Name)
			default:
				return nil, nil, fmt.Errorf("arch: %s is %s, whose blocks run along the neurons, so its columns cannot be renumbered "+
					"and the file has no ffn_down_t (PowerInfer's neuron-major down): %w", d.Name, d.Type, ErrDownNotPermutable)
			}
		}
	}
	if w, err = gguf.NewWriterFrom(f); err != nil {
		return nil, nil, err
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		job, ok := jobs[ti.Name]
		if !ok {
			continue
		}
		data := f.TensorData(ti)
		switch {
		case job.drop:
			err = w.RemoveTensor(ti.Name)
		case job.replace != nil:
			r := job.replace
			name := strings.TrimSuffix(ti.Name, "ffn_down.weight") + "ffn_down_t.weight"
			err = w.ReplaceTensorFunc(ti.Name, name, r.Type, r.Shape, permuteRows(r.Data, job.order))
		case job.rows:
			err = w.ReplaceTensorFunc(ti.Name, ti.Name, ti.Type, ti.Shape, permuteRows(data, job.order))
		default:
			err = w.ReplaceTensorFunc(ti.Name, ti.Name, ti.Type, ti.Shape, permuteCols(data, ti.Type.TypeSize(), int(ti.Shape[0]), job.order))
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return w, dropped, nil
}

// permuteJob is what PermuteFFN does to one tensor: renumber its rows (or
// a bias's elements), its columns, or leave it out.
type permuteJob struct {
	order   []int32
	rows    bool
	drop    bool
	replace *Tensor // written, rows renumbered, as ffn_down_t in the tensor's place
}

// ErrDownNotPermutable is wrapped by PermuteFFN's error for a layer whose
// quantized ffn_down cannot be renumbered and which has no neuron-major
// down to use instead.
var ErrDownNotPermutable = errors.New("a neuron-major down is needed")

// CheckNeuronOrder checks that o, a layer's neuron order (PermuteFFN,
// predictor.Predictor.Permute), holds each of 0 … n−1 once.
func CheckNeuronOrder(o []int32, n int) error {
	if len(o) != n {
		return fmt.Errorf("neuron order of %d entries for %d neurons", len(o), n)
	}
	seen := make([]bool, n)
	for _, v := range o {
		if v < 0 || int(v) >= n || seen[v] {
			return fmt.Errorf("neuron order is not a permutation of 0…%d (entry %d)", n-1, v)
		}
		seen[v] = true
	}
	return nil
}

// permuteRows writes the len(order) equal rows of data, row order[k] k-th.
func permuteRows(data []byte, order []int32) func(io.Writer) error {
	return func(out io.Writer) error {
		rb := len(data) / len(order)
		for _, r := range order {
			if _, err := out.Write(data[int(r)*rb : (int(r)+1)*rb]); err != nil {
				return err
			}
		}
		return nil
	}
}

// permuteCols writes data, rows of cols elements of es bytes, with the
// elements of every row in order: element order[k] k-th.
func permuteCols(data []byte, es, cols int, order []int32) func(io.Writer) error {
	return func(out io.Writer) error {
		rb := es * cols
		buf := make([]byte, rb)
		for r := 0; r < len(data); r += rb {
			row := data[r : r+rb]
			for k, j := range order {
				copy(buf[k*es:(k+1)*es], row[int(j)*es:(int(j)+1)*es])
			}
			if _, err := out.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}
}
