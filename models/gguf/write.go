package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/stokehq/stoke/models/dtype"
)

// Writer builds a GGUF file: metadata pairs and tensors in the order they
// are added, laid out as ggml lays them out (each tensor's data padded with
// zeros to the alignment, the first at the start of the data section), so
// that a file read by Parse and written back by NewWriterFrom is byte for
// byte the file llama.cpp or gguf-py wrote.
//
// The alignment is the uint32 general.alignment pair if one is added,
// DefaultAlignment otherwise.
type Writer struct {
	version     uint32
	magic       string
	kvs         []KV
	kvIndex     map[string]int
	tensors     []wtensor
	tensorIndex map[string]int
}

type wtensor struct {
	info  TensorInfo
	data  []byte
	write func(io.Writer) error
}

// NewWriter returns an empty writer for GGUF version 2 or 3 (any other
// version makes WriteTo fail).
func NewWriter(version uint32) *Writer {
	return &Writer{
		version:     version,
		magic:       MagicGGUF,
		kvIndex:     make(map[string]int),
		tensorIndex: make(map[string]int),
	}
}

// NewWriterFrom returns a writer holding f's magic, version, metadata and
// tensors, in f's order. The tensor data is not copied: f must stay open
// until the writer has written.
func NewWriterFrom(f *File) (*Writer, error) {
	w := NewWriter(f.Version)
	if err := w.SetMagic(f.Magic); err != nil {
		return nil, err
	}
	for _, kv := range f.KVs {
		w.AddKV(kv.Key, kv.Value)
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		data := f.TensorData(t)
		if data == nil && t.Size > 0 {
			return nil, fmt.Errorf("gguf: tensor %q: no data (file closed?)", t.Name)
		}
		if err := w.AddTensor(t.Name, t.Type, t.Shape, data); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// SetMagic selects MagicGGUF (the default) or MagicPowerInfer.
func (w *Writer) SetMagic(magic string) error {
	if magic != MagicGGUF && magic != MagicPowerInfer {
		return fmt.Errorf("gguf: magic %q is neither %q nor %q", magic, MagicGGUF, MagicPowerInfer)
	}
	w.magic = magic
	return nil
}

// AddKV adds a metadata pair. Adding a key that is already present
// replaces its value and keeps its position.
func (w *Writer) AddKV(key string, v Value) {
	if i, ok := w.kvIndex[key]; ok {
		w.kvs[i].Value = v
		return
	}
	w.kvIndex[key] = len(w.kvs)
	w.kvs = append(w.kvs, KV{Key: key, Value: v})
}

// AddTensor adds a tensor whose bytes are data (not copied: they must stay
// unchanged until WriteTo). len(data) must be the size typ and shape imply.
func (w *Writer) AddTensor(name string, typ dtype.Type, shape []uint64, data []byte) error {
	t, err := w.addInfo(name, typ, shape)
	if err != nil {
		return err
	}
	if uint64(len(data)) != t.info.Size {
		return fmt.Errorf("gguf: tensor %q: %d bytes of data, want %d for %s %v", name, len(data), t.info.Size, typ, shape)
	}
	t.data = data
	w.commit(t)
	return nil
}

// AddTensorFunc adds a tensor whose bytes write produces during WriteTo,
// so a large tensor need never be held in memory. write must write exactly
// the tensor's size; WriteTo fails if it writes more or less.
func (w *Writer) AddTensorFunc(name string, typ dtype.Type, shape []uint64, write func(io.Writer) error) error {
	if write == nil {
		return fmt.Errorf("gguf: tensor %q: nil write func", name)
	}
	t, err := w.addInfo(name, typ, shape)
	if err != nil {
		return err
	}
	t.write = write
	w.commit(t)
	return nil
}

// ReplaceTensorFunc puts, in the place of the tensor named name, a tensor
// named newName (name itself to keep it) whose bytes write produces during
// WriteTo, as AddTensorFunc does. The other tensors keep their order.
func (w *Writer) ReplaceTensorFunc(name, newName string, typ dtype.Type, shape []uint64, write func(io.Writer) error) error {
	i, ok := w.tensorIndex[name]
	if !ok {
		return fmt.Errorf("gguf: no tensor %q to replace", name)
	}
	if write == nil {
		return fmt.Errorf("gguf: tensor %q: nil write func", newName)
	}
	delete(w.tensorIndex, name)
	t, err := w.addInfo(newName, typ, shape)
	if err != nil {
		w.tensorIndex[name] = i
		return err
	}
	t.write = write
	w.tensors[i] = t
	w.tensorIndex[newName] = i
	return nil
}

// RemoveTensor leaves the tensor named name out of the file.
func (w *Writer) RemoveTensor(name string) error {
	i, ok := w.tensorIndex[name]
	if !ok {
		return fmt.Errorf("gguf: no tensor %q to remove", name)
	}
	w.tensors = append(w.tensors[:i], w.tensors[i+1:]...)
	delete(w.tensorIndex, name)
	for j := i; j < len(w.tensors); j++ {
		w.tensorIndex[w.tensors[j].info.Name] = j
	}
	return nil
}

func (w *Writer) addInfo(name string, typ dtype.Type, shape []uint64) (wtensor, error) {
	if len(name) > MaxTensorNameLen {
		return wtensor{}, fmt.Errorf("gguf: tensor name %q is %d bytes, longer than %d", name, len(name), MaxTensorNameLen)
	}
	if _, dup := w.tensorIndex[name]; dup {
		return wtensor{}, fmt.Errorf("gguf: duplicate tensor name %q", name)
	}
	if len(w.tensors) >= MaxTensors {
		return wtensor{}, fmt.Errorf("gguf: more than %d tensors", MaxTensors)
	}
	size, err := tensorSize(name, typ, shape)
	if err != nil {
		return wtensor{}, errors.New(errPrefix + err.Error())
	}
	return wtensor{info: TensorInfo{Name: name, Type: typ, Shape: append([]uint64(nil), shape...), Size: size}}, nil
}

func (w *Writer) commit(t wtensor) {
	w.tensorIndex[t.info.Name] = len(w.tensors)
	w.tensors = append(w.tensors, t)
}

// layout checks the metadata and computes the alignment and every
// tensor's offset.
func (w *Writer) layout() (align uint64, offsets []uint64, err error) {
	if w.version != 2 && w.version != 3 {
		return 0, nil, fmt.Errorf("gguf: cannot write version %d (want 2 or 3)", w.version)
	}
	if len(w.kvs) > MaxKVs {
		return 0, nil, fmt.Errorf("gguf: %d key/value pairs, over the limit of %d", len(w.kvs), MaxKVs)
	}
	for _, kv := range w.kvs {
		if len(kv.Key) > MaxKeyLen {
			return 0, nil, fmt.Errorf("gguf: key of %d bytes is over the limit of %d", len(kv.Key), MaxKeyLen)
		}
		if err := checkValue(kv.Value, 0); err != nil {
			return 0, nil, fmt.Errorf("gguf: key %q: %w", kv.Key, err)
		}
	}
	align = DefaultAlignment
	if i, ok := w.kvIndex[KeyAlignment]; ok {
		if align, err = checkAlignment(w.kvs[i].Value); err != nil {
			return 0, nil, errors.New(errPrefix + err.Error())
		}
	}
	offsets = make([]uint64, len(w.tensors))
	var off uint64
	for i, t := range w.tensors {
		offsets[i] = off
		padded := alignUp(t.info.Size, align)
		if padded < t.info.Size || off+padded < off || off+padded > math.MaxInt64 {
			return 0, nil, errors.New("gguf: tensor data exceeds 2^63 bytes")
		}
		off += padded
	}
	return align, offsets, nil
}

// checkValue refuses what Parse would refuse, so that every file written
// can be read back.
func checkValue(v Value, depth int) error {
	switch v.typ {
	case TypeString:
		if len(v.str) > MaxStringLen {
			return fmt.Errorf("string of %d bytes is over the limit of %d", len(v.str), MaxStringLen)
		}
	case TypeArray:
		depth++
		if depth > MaxArrayDepth {
			return fmt.Errorf("arrays nested deeper than %d", MaxArrayDepth)
		}
		if v.Len() > MaxArrayLen {
			return fmt.Errorf("array of %d elements is over the limit of %d", v.Len(), MaxArrayLen)
		}
		switch a := v.arr.(type) {
		case []string:
			for i, s := range a {
				if len(s) > MaxStringLen {
					return fmt.Errorf("element %d: string of %d bytes is over the limit of %d", i, len(s), MaxStringLen)
				}
			}
		case []Value:
			for i, x := range a {
				if err := checkValue(x, depth); err != nil {
					return fmt.Errorf("element %d: %w", i, err)
				}
			}
		}
	default:
		if !v.typ.Known() {
			return fmt.Errorf("unknown value type %d", uint32(v.typ))
		}
	}
	return nil
}

// header encodes everything before the data section, padding included.
func (w *Writer) header(align uint64, offsets []uint64) []byte {
	b := make([]byte, 0, 4096)
	b = append(b, w.magic...)
	b = binary.LittleEndian.AppendUint32(b, w.version)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(w.tensors)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		b = appendString(b, kv.Key)
		b = binary.LittleEndian.AppendUint32(b, uint32(kv.Value.typ))
		b = appendValue(b, kv.Value)
	}
	for i, t := range w.tensors {
		b = appendString(b, t.info.Name)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t.info.Shape)))
		for _, ne := range t.info.Shape {
			b = binary.LittleEndian.AppendUint64(b, ne)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(t.info.Type))
		b = binary.LittleEndian.AppendUint64(b, offsets[i])
	}
	for uint64(len(b))%align != 0 {
		b = append(b, 0)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

func appendValue(b []byte, v Value) []byte {
	switch v.typ {
	case TypeString:
		return appendString(b, v.str)
	case TypeArray:
		b = binary.LittleEndian.AppendUint32(b, uint32(v.elem))
		b = binary.LittleEndian.AppendUint64(b, uint64(v.Len()))
		switch a := v.arr.(type) {
		case []byte:
			b = append(b, a...)
		case []string:
			for _, s := range a {
				b = appendString(b, s)
			}
		case []Value:
			for _, x := range a { // an element array has no type tag of its own
				b = appendValue(b, x)
			}
		}
		return b
	}
	n := len(b)
	sz := v.typ.size()
	b = append(b, make([]byte, sz)...)
	putScalar(b[n:], sz, v.bits)
	return b
}

// Size returns the number of bytes WriteTo will write.
func (w *Writer) Size() (int64, error) {
	align, offsets, err := w.layout()
	if err != nil {
		return 0, err
	}
	return int64(w.total(uint64(len(w.header(align, offsets))), align, offsets)), nil
}

// total is the file size given the header's.
func (w *Writer) total(header, align uint64, offsets []uint64) uint64 {
	if k := len(w.tensors); k > 0 {
		return header + offsets[k-1] + alignUp(w.tensors[k-1].info.Size, align)
	}
	return header
}

// WriteTo writes the file to out. Everything that can be checked is
// checked before the first byte is written; a write func that writes the
// wrong number of bytes fails it midway.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	align, offsets, err := w.layout()
	if err != nil {
		return 0, err
	}
	hdr := w.header(align, offsets)
	total := w.total(uint64(len(hdr)), align, offsets)
	cw := &countWriter{w: out}
	bw := bufio.NewWriterSize(cw, int(min(max(total, 4096), 1<<20)))
	if _, err := bw.Write(hdr); err != nil {
		return cw.n, err
	}
	for _, t := range w.tensors {
		if t.write != nil {
			ew := &exactWriter{w: bw, left: t.info.Size}
			err := t.write(ew)
			if ew.over {
				return cw.n, fmt.Errorf("gguf: tensor %q: write func wrote more than the tensor's %d bytes", t.info.Name, t.info.Size)
			}
			if err != nil {
				return cw.n, fmt.Errorf("gguf: tensor %q: %w", t.info.Name, err)
			}
			if ew.left != 0 {
				return cw.n, fmt.Errorf("gguf: tensor %q: write func wrote %d bytes, want %d", t.info.Name, t.info.Size-ew.left, t.info.Size)
			}
		} else if _, err := bw.Write(t.data); err != nil {
			return cw.n, err
		}
		if pad := alignUp(t.info.Size, align) - t.info.Size; pad > 0 {
			if _, err := bw.Write(zeroPad[:pad]); err != nil {
				return cw.n, err
			}
		}
	}
	err = bw.Flush()
	return cw.n, err
}

var zeroPad [MaxAlignment]byte

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// exactWriter passes at most left bytes on and records an overrun.
type exactWriter struct {
	w    io.Writer
	left uint64
	over bool
}

func (e *exactWriter) Write(p []byte) (int, error) {
	if uint64(len(p)) > e.left {
		e.over = true
		return 0, errors.New("write past the end of the tensor")
	}
	n, err := e.w.Write(p)
	e.left -= uint64(n)
	return n, err
}

// WriteFile writes w to path+".tmp", syncs it and renames it to path, so
// path never holds a partly written file. The temporary is removed on
// failure.
func WriteFile(path string, w *Writer) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = w.WriteTo(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	// Make the rename durable too; not every platform can sync a directory.
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
