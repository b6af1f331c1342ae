// Package gguf reads and writes GGUF files, the model format of ggml and
// llama.cpp, in versions 2 and 3, including PowerInfer's variant (magic
// "PWRI", same layout).
//
// Layout (little endian):
//
//	magic [4]byte "GGUF" | version uint32 | n_tensors uint64 | n_kv uint64
//	n_kv × { key string | value_type uint32 | value }
//	n_tensors × { name string | n_dims uint32 | ne [n_dims]uint64 | type uint32 | offset uint64 }
//	padding to general.alignment (default 32)
//	data: each tensor at data start + offset (offsets aligned)
//
// A string is a uint64 byte count and the bytes; an array value is an
// element type uint32, a uint64 count and the elements.
//
// Open maps the file and Parse checks everything once, so tensor data is a
// bounds-checked slice of the mapping and the accessors never fail on a
// hostile file.
package gguf

import (
	"errors"
	"fmt"

	"github.com/stokehq/stoke/models/dtype"
)

// KV is one metadata pair.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor. Shape lists ne0 (the contiguous
// dimension) first, as GGUF stores it.
type TensorInfo struct {
	Name   string
	Shape  []uint64
	Type   dtype.Type
	Offset uint64 // bytes from the start of the data section
	Size   uint64 // bytes
}

// Elements is the number of elements (the product of the shape; 1 for a
// shape with no dimensions).
func (t *TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, ne := range t.Shape {
		n *= ne
	}
	return n
}

// File is a parsed GGUF file. KVs and Tensors are in file order.
type File struct {
	Magic      string // MagicGGUF or MagicPowerInfer
	Version    uint32 // 2 or 3
	Alignment  uint64 // data alignment, from general.alignment or the default 32
	DataOffset uint64 // byte position of the data section in the file
	KVs        []KV
	Tensors    []TensorInfo

	data        []byte
	kvIndex     map[string]int
	tensorIndex map[string]int
	unmap       func() error
	mapped      bool // data maps the file (Open), rather than holding a copy
	owned       bool // data is this File's own copy of the file (OpenInMemory), which Rewrite may change
}

// Rewrite runs fn, which may change tensor data in place, with the data
// writable: a load step that rewrites weights into another layout (the
// engine packs Q4_0 matrices for the CPU's kernels) without a second
// copy. Only a file holding its own copy of the data (OpenInMemory) can
// be rewritten; for a mapped file, or one parsed from the caller's bytes,
// Rewrite returns an error and does not call fn. The data is read-only
// again afterwards.
func (f *File) Rewrite(fn func() error) error {
	if !f.owned || f.data == nil {
		return errors.New("gguf: only a file read into memory can be rewritten")
	}
	if err := f.writable(true); err != nil {
		return err
	}
	return errors.Join(fn(), f.writable(false))
}

// Close releases the file's mapping, if it has one. Tensor data slices are
// invalid afterwards; metadata stays usable. Close is idempotent.
func (f *File) Close() error {
	f.data = nil
	if u := f.unmap; u != nil {
		f.unmap = nil
		return u()
	}
	return nil
}

// Size is the length of the file in bytes (0 after Close).
func (f *File) Size() int64 { return int64(len(f.data)) }

// Get returns the value of key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.KVs[i].Value, true
}

// String returns a string value.
func (f *File) String(key string) (string, bool) {
	v, ok := f.Get(key)
	if !ok {
		return "", false
	}
	return v.String()
}

// Uint returns an integer value of any type that is ≥ 0.
func (f *File) Uint(key string) (uint64, bool) {
	v, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	return v.Uint()
}

// Int returns an integer value of any type that fits int64.
func (f *File) Int(key string) (int64, bool) {
	v, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	return v.Int()
}

// Float returns any numeric value as a float64.
func (f *File) Float(key string) (float64, bool) {
	v, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	return v.Float()
}

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, bool) {
	v, ok := f.Get(key)
	if !ok {
		return false, false
	}
	return v.Bool()
}

func (f *File) array(key string) (Value, error) {
	v, ok := f.Get(key)
	if !ok {
		return Value{}, fmt.Errorf("gguf: key %q is missing", key)
	}
	return v, nil
}

// Strings returns a string array (a copy).
func (f *File) Strings(key string) ([]string, error) {
	v, err := f.array(key)
	if err != nil {
		return nil, err
	}
	s, err := v.Strings()
	if err != nil {
		return nil, fmt.Errorf("gguf: key %q %w", key, err)
	}
	return s, nil
}

// Float32s returns a numeric array as float32s.
func (f *File) Float32s(key string) ([]float32, error) {
	v, err := f.array(key)
	if err != nil {
		return nil, err
	}
	x, err := v.Float32s()
	if err != nil {
		return nil, fmt.Errorf("gguf: key %q %w", key, err)
	}
	return x, nil
}

// Int32s returns an integer array as int32s; any integer element type is
// accepted if every element fits.
func (f *File) Int32s(key string) ([]int32, error) {
	v, err := f.array(key)
	if err != nil {
		return nil, err
	}
	x, err := v.Int32s()
	if err != nil {
		return nil, fmt.Errorf("gguf: key %q %w", key, err)
	}
	return x, nil
}

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.tensorIndex[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorData returns t's bytes: a slice of the mapped file (capacity
// limited to the tensor), valid until Close. t must come from f; for any
// other t whose range does not lie inside the file it returns nil.
func (f *File) TensorData(t *TensorInfo) []byte {
	n := uint64(len(f.data))
	if f.DataOffset > n || t.Offset > n-f.DataOffset || t.Size > n-f.DataOffset-t.Offset {
		return nil
	}
	start := f.DataOffset + t.Offset
	end := start + t.Size
	return f.data[start:end:end]
}
