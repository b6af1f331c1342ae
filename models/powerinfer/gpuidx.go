// Package powerinfer reads and writes PowerInfer's GPU split files, the
// "<model>.generated.gpuidx" that its runtime loads beside a model to
// know which FFN neurons live in VRAM (powerinfer-py's export_split.py
// writes them; llama.cpp's llama_gpu_split_loader reads them).
//
// A split file is a GGUF file with PowerInfer's magic "PWRI", version 3,
// general.architecture "generic.gpu_index", <arch>.block_count (uint32)
// and split.vram_capacity (uint64, the VRAM budget in bytes the split was
// solved for), and per layer, in this order, two I32 tensors:
//
//	blk.N.gpu_idx     [ffn]  1 where neuron i is on the GPU, else 0
//	blk.N.gpu_bucket  [k]    the k GPU neurons in increasing order
//
// PowerInfer slices the GPU rows of ffn_up, ffn_gate and ffn_down_t by
// gpu_bucket (GPU row j holds neuron gpu_bucket[j]), and skips the GPU
// neurons on the CPU by gpu_idx. It reads the tensors by position (layer
// N's are tensors 2N and 2N+1) and refuses a file with other than two per
// layer. export_split.py's MoE variant ("moe.gpu_idx") writes no buckets;
// Parse derives them.
//
// Its I32 is type id 18 in the file: see legacy.go.
package powerinfer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// Names PowerInfer gives the file, its architectures and its keys.
const (
	SplitSuffix     = ".generated.gpuidx"
	ArchGPUIndex    = "generic.gpu_index"
	ArchMoEGPUIndex = "moe.gpu_idx"
	KeyVRAMCapacity = "split.vram_capacity"
)

// Limits on what Parse accepts.
const (
	MaxLayers  = 1 << 10
	MaxNeurons = 1 << 20
)

// SplitPath is where PowerInfer looks for model's split file.
func SplitPath(model string) string { return model + SplitSuffix }

// Split is the GPU placement of every layer's FFN neurons.
type Split struct {
	// VRAMCapacity is split.vram_capacity: the VRAM, in bytes, the split
	// was solved for. PowerInfer refuses the file under a smaller budget.
	VRAMCapacity uint64
	Layers       []Layer
}

// Layer is one layer's placement.
type Layer struct {
	// OnGPU[i] reports whether neuron i is on the GPU (gpu_idx).
	OnGPU []bool
	// Bucket lists the GPU neurons in increasing order (gpu_bucket).
	Bucket []int32
}

// New builds a Split from per-layer masks, computing the buckets.
func New(vramCapacity uint64, onGPU [][]bool) (*Split, error) {
	s := &Split{VRAMCapacity: vramCapacity, Layers: make([]Layer, len(onGPU))}
	for l, m := range onGPU {
		s.Layers[l] = Layer{OnGPU: append([]bool(nil), m...), Bucket: bucket(m)}
	}
	return s, s.check()
}

func bucket(m []bool) []int32 {
	b := []int32{}
	for i, on := range m {
		if on {
			b = append(b, int32(i))
		}
	}
	return b
}

// Validate checks s against a model of layers layers and ffn neurons
// each.
func (s *Split) Validate(layers, ffn int) error {
	if len(s.Layers) != layers {
		return fmt.Errorf("powerinfer: the split has %d layers, the model %d", len(s.Layers), layers)
	}
	for l := range s.Layers {
		if n := len(s.Layers[l].OnGPU); n != ffn {
			return fmt.Errorf("powerinfer: layer %d of the split has %d neurons, the model %d", l, n, ffn)
		}
	}
	return nil
}

// check verifies the invariants PowerInfer relies on: sizes within
// limits, and each bucket exactly the GPU neurons in increasing order.
func (s *Split) check() error {
	if len(s.Layers) == 0 || len(s.Layers) > MaxLayers {
		return fmt.Errorf("powerinfer: %d layers, want 1 to %d", len(s.Layers), MaxLayers)
	}
	for l, ly := range s.Layers {
		n := len(ly.OnGPU)
		if n == 0 || n > MaxNeurons {
			return fmt.Errorf("powerinfer: layer %d has %d neurons, want 1 to %d", l, n, MaxNeurons)
		}
		k := 0
		for _, on := range ly.OnGPU {
			if on {
				k++
			}
		}
		if len(ly.Bucket) != k {
			return fmt.Errorf("powerinfer: layer %d: gpu_bucket has %d neurons, gpu_idx marks %d", l, len(ly.Bucket), k)
		}
		for j, i := range ly.Bucket {
			switch {
			case i < 0 || int(i) >= n:
				return fmt.Errorf("powerinfer: layer %d: gpu_bucket[%d] = %d is outside [0, %d)", l, j, i, n)
			case j > 0 && i <= ly.Bucket[j-1]:
				return fmt.Errorf("powerinfer: layer %d: gpu_bucket is not strictly increasing at %d", l, j)
			case !ly.OnGPU[i]:
				return fmt.Errorf("powerinfer: layer %d: gpu_bucket holds neuron %d, which gpu_idx places on the CPU", l, i)
			}
		}
	}
	return nil
}

// Read reads and checks a split file.
func Read(path string) (*Split, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("powerinfer: %w", err)
	}
	return Parse(b)
}

// Parse parses and checks a split file's bytes.
func Parse(b []byte) (*Split, error) {
	if len(b) >= 4 && string(b[:4]) == gguf.MagicPowerInfer {
		var err error
		if b, err = retype(b, legacyToModern); err != nil {
			return nil, err
		}
	}
	f, err := gguf.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("powerinfer: %w", err)
	}
	a, _ := f.String("general.architecture")
	if a != ArchGPUIndex && a != ArchMoEGPUIndex {
		return nil, fmt.Errorf("powerinfer: general.architecture is %q, want %q", a, ArchGPUIndex)
	}
	n, ok := f.Uint(a + ".block_count")
	if !ok || n == 0 || n > MaxLayers {
		return nil, fmt.Errorf("powerinfer: %s.block_count is missing or not in [1, %d]", a, MaxLayers)
	}
	vram, ok := f.Uint(KeyVRAMCapacity)
	if !ok {
		return nil, fmt.Errorf("powerinfer: %s is missing", KeyVRAMCapacity)
	}
	s := &Split{VRAMCapacity: vram, Layers: make([]Layer, n)}
	seen := 0
	for l := range s.Layers {
		p := "blk." + strconv.Itoa(l) + "."
		idx, err := ints(f, p+"gpu_idx", true)
		if err != nil {
			return nil, err
		}
		ly := &s.Layers[l]
		ly.OnGPU = make([]bool, len(idx))
		for i, v := range idx {
			if v != 0 && v != 1 {
				return nil, fmt.Errorf("powerinfer: %sgpu_idx[%d] = %d, want 0 or 1", p, i, v)
			}
			ly.OnGPU[i] = v == 1
		}
		if ly.Bucket, err = ints(f, p+"gpu_bucket", false); err != nil {
			return nil, err
		}
		seen++
		if ly.Bucket == nil {
			ly.Bucket = bucket(ly.OnGPU)
		} else {
			seen++
		}
	}
	if seen != len(f.Tensors) {
		return nil, fmt.Errorf("powerinfer: the file has %d tensors, %d of them gpu_idx/gpu_bucket of its %d layers", len(f.Tensors), seen, n)
	}
	return s, s.check()
}

// ints reads a 1-D I32 tensor; a missing optional one is nil.
func ints(f *gguf.File, name string, required bool) ([]int32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		if required {
			return nil, fmt.Errorf("powerinfer: tensor %s is missing", name)
		}
		return nil, nil
	}
	if t.Type != dtype.I32 || len(t.Shape) != 1 || t.Shape[0] > MaxNeurons {
		return nil, fmt.Errorf("powerinfer: tensor %s is %s %v, want I32 [n ≤ %d]", name, t.Type, t.Shape, MaxNeurons)
	}
	data := f.TensorData(t)
	v := make([]int32, t.Shape[0])
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return v, nil
}

// WriteTo writes s as PowerInfer writes it: magic PWRI, version 3, the
// keys in export_split.py's order, each layer's gpu_idx then gpu_bucket,
// I32 as PowerInfer's type id 18.
func (s *Split) WriteTo(out io.Writer) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	w := gguf.NewWriter(3)
	if err := w.SetMagic(gguf.MagicPowerInfer); err != nil {
		return 0, err
	}
	w.AddKV("general.architecture", gguf.String(ArchGPUIndex))
	for l, ly := range s.Layers {
		p := "blk." + strconv.Itoa(l) + "."
		idx := make([]byte, 4*len(ly.OnGPU))
		for i, on := range ly.OnGPU {
			if on {
				idx[4*i] = 1
			}
		}
		bkt := make([]byte, 4*len(ly.Bucket))
		for j, i := range ly.Bucket {
			binary.LittleEndian.PutUint32(bkt[4*j:], uint32(i))
		}
		if err := w.AddTensor(p+"gpu_idx", dtype.I32, []uint64{uint64(len(ly.OnGPU))}, idx); err != nil {
			return 0, err
		}
		if err := w.AddTensor(p+"gpu_bucket", dtype.I32, []uint64{uint64(len(ly.Bucket))}, bkt); err != nil {
			return 0, err
		}
	}
	w.AddKV(ArchGPUIndex+".block_count", gguf.Uint32(uint32(len(s.Layers))))
	w.AddKV(KeyVRAMCapacity, gguf.Uint64(s.VRAMCapacity))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return 0, err
	}
	b, err := retype(buf.Bytes(), modernToLegacy)
	if err != nil {
		return 0, err
	}
	n, err := out.Write(b)
	return int64(n), err
}

// Write writes s to path atomically (a temporary file, then a rename).
func Write(path string, s *Split) error {
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("powerinfer: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("powerinfer: %w", err)
	}
	return nil
}
