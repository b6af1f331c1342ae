package predictor

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/stokehq/stoke/models/gguf"
)

// Helpers shared by the profile and predictor sidecars.

// f32Writer streams float32 values little-endian.
func f32Writer(x []float32) func(io.Writer) error {
	return func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<16)
		var b [4]byte
		for _, v := range x {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			if _, err := bw.Write(b[:]); err != nil {
				return err
			}
		}
		return bw.Flush()
	}
}

// u16Writer streams uint16 values little-endian.
func u16Writer(x []uint16) func(io.Writer) error {
	return func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<16)
		var b [2]byte
		for _, v := range x {
			binary.LittleEndian.PutUint16(b[:], v)
			if _, err := bw.Write(b[:]); err != nil {
				return err
			}
		}
		return bw.Flush()
	}
}

// u32Bytes encodes uint32 values little-endian.
func u32Bytes(x []uint32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func uint64s(x []int) gguf.Value {
	v := make([]gguf.Value, len(x))
	for i, n := range x {
		v[i] = gguf.Uint64(uint64(n))
	}
	return gguf.ArrayOf(gguf.TypeUint64, v)
}

// intArray reads an array of n non-negative integers no larger than max.
func intArray(f *gguf.File, key string, n int, max uint64) ([]int, error) {
	v, ok := f.Get(key)
	if !ok {
		return nil, fmt.Errorf("key %q is missing", key)
	}
	if v.Type() != gguf.TypeArray || v.Len() != n {
		return nil, fmt.Errorf("key %q: want an array of %d integers, have %s", key, n, v.TypeText())
	}
	out := make([]int, n)
	for i := range n {
		u, ok := v.Index(i).Uint()
		if !ok || u > max {
			return nil, fmt.Errorf("key %q: element %d is not an integer in [0, %d]", key, i, max)
		}
		out[i] = int(u)
	}
	return out, nil
}

// floatArray reads an array of n finite numbers.
func floatArray(f *gguf.File, key string, n int) ([]float32, error) {
	x, err := f.Float32s(key)
	if err != nil {
		return nil, err
	}
	if len(x) != n {
		return nil, fmt.Errorf("key %q has %d values, want %d", key, len(x), n)
	}
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("key %q: value %d is %v", key, i, v)
		}
	}
	return x, nil
}

// uintKey reads a non-negative integer no larger than max.
func uintKey(f *gguf.File, key string, max uint64) (int, error) {
	u, ok := f.Uint(key)
	if !ok {
		return 0, fmt.Errorf("key %q is missing or not a non-negative integer", key)
	}
	if u > max {
		return 0, fmt.Errorf("key %q is %d, over the limit of %d", key, u, max)
	}
	return int(u), nil
}

// tensor returns the named tensor's info and bytes, checking its type and
// shape.
func tensor(f *gguf.File, name string, shape ...uint64) (*gguf.TensorInfo, []byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, nil, fmt.Errorf("tensor %q is missing", name)
	}
	if len(t.Shape) != len(shape) {
		return nil, nil, fmt.Errorf("tensor %q has shape %v, want %v", name, t.Shape, shape)
	}
	for i := range shape {
		if t.Shape[i] != shape[i] {
			return nil, nil, fmt.Errorf("tensor %q has shape %v, want %v", name, t.Shape, shape)
		}
	}
	data := f.TensorData(t)
	if uint64(len(data)) != t.Size {
		return nil, nil, fmt.Errorf("tensor %q: data outside the file", name)
	}
	return t, data, nil
}
