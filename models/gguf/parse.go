package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/stokehq/stoke/models/dtype"
)

// Limits on what Parse accepts. Each guards a count or length read from the
// file; on top of them every count is checked against the bytes actually
// left in the input before anything is allocated for it, so memory use is
// bounded by the input's size whatever the header claims.
const (
	// MaxStringLen bounds one string value (chat templates run to tens of
	// KB; 16 MiB is far above any real one).
	MaxStringLen = 1 << 24
	// MaxKeyLen bounds a metadata key.
	MaxKeyLen = 1 << 16
	// MaxArrayLen bounds the element count of one array. Real tokenizers
	// have ~150k-260k tokens and up to ~500k merges.
	MaxArrayLen = 1 << 26
	// MaxArrayDepth bounds the nesting of arrays of arrays (1 = a plain
	// array).
	MaxArrayDepth = 8
	// MaxKVs bounds the number of metadata pairs.
	MaxKVs = 1 << 20
	// MaxTensors bounds the number of tensors (large MoE models have a few
	// thousand).
	MaxTensors = 1 << 20
	// MaxDims is ggml's GGML_MAX_DIMS.
	MaxDims = 4
	// MaxTensorNameLen is the longest tensor name ggml accepts (its
	// GGML_MAX_NAME is 64 including the NUL).
	MaxTensorNameLen = 63
	// MaxAlignment bounds general.alignment; real files use 32. The writer
	// pads to it, so it also bounds the padding a rewritten file carries.
	MaxAlignment = 1 << 16
	// DefaultAlignment applies when general.alignment is absent.
	DefaultAlignment = 32
)

// The two magics: GGUF and PowerInfer's variant, which shares the layout.
const (
	MagicGGUF       = "GGUF"
	MagicPowerInfer = "PWRI"
)

// KeyAlignment is the metadata key that sets the data alignment (a uint32).
const KeyAlignment = "general.alignment"

// Smallest encodings, used to bound counts by the bytes left.
const (
	headerBytes    = 4 + 4 + 8 + 8 // magic, version, tensor and kv counts
	minKVBytes     = 8 + 4 + 1     // empty key, type, a 1-byte value
	minTensorBytes = 8 + 4 + 4 + 8 // empty name, n_dims 0, type, offset
	minArrayBytes  = 4 + 8         // element type, count
	minStringBytes = 8             // length
)

// ggml keeps dimensions and element counts in int64.
const (
	maxDimValue   = math.MaxInt64
	maxShapeElems = math.MaxInt64
)

const (
	errPrefix     = "gguf: "
	truncatedWhat = "past end of file"
)

// decoder reads little-endian fields from b, checking every length first.
type decoder struct {
	b   []byte
	off uint64
}

func (d *decoder) left() uint64 { return uint64(len(d.b)) - d.off }

// need fails unless n bytes are left.
func (d *decoder) need(n uint64, what string) error {
	if n > d.left() {
		return fmt.Errorf("%s at byte %d needs %d bytes, runs %s (%d bytes)", what, d.off, n, truncatedWhat, len(d.b))
	}
	return nil
}

func (d *decoder) u32(what string) (uint32, error) {
	if err := d.need(4, what); err != nil {
		return 0, err
	}
	x := binary.LittleEndian.Uint32(d.b[d.off:])
	d.off += 4
	return x, nil
}

func (d *decoder) u64(what string) (uint64, error) {
	if err := d.need(8, what); err != nil {
		return 0, err
	}
	x := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return x, nil
}

// bytes returns the next n bytes (aliasing the input) after checking them.
func (d *decoder) bytes(n uint64, what string) ([]byte, error) {
	if err := d.need(n, what); err != nil {
		return nil, err
	}
	b := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return b, nil
}

// strLen reads a string's length prefix and checks it against max and the
// bytes left.
func (d *decoder) strLen(what string, max uint64) (uint64, error) {
	at := d.off
	n, err := d.u64(what + " length")
	if err != nil {
		return 0, err
	}
	if n > max {
		return 0, fmt.Errorf("%s at byte %d is %d bytes long, over the limit of %d", what, at, n, max)
	}
	if n > d.left() {
		return 0, fmt.Errorf("%s of %d bytes at byte %d runs %s (%d bytes)", what, n, at, truncatedWhat, len(d.b))
	}
	return n, nil
}

func (d *decoder) str(what string, max uint64) (string, error) {
	n, err := d.strLen(what, max)
	if err != nil {
		return "", err
	}
	s := string(d.b[d.off : d.off+n])
	d.off += n
	return s, nil
}

// value reads a value of type t; depth counts the arrays around it.
func (d *decoder) value(t ValueType, depth int) (Value, error) {
	if sz := t.size(); sz > 0 {
		b, err := d.bytes(uint64(sz), t.String()+" value")
		if err != nil {
			return Value{}, err
		}
		v := scalarFromBytes(t, b)
		if t == TypeBool && v.bits > 1 {
			return Value{}, fmt.Errorf("bool at byte %d is %d, not 0 or 1", d.off-1, v.bits)
		}
		return v, nil
	}
	switch t {
	case TypeString:
		s, err := d.str("string", MaxStringLen)
		if err != nil {
			return Value{}, err
		}
		return String(s), nil
	case TypeArray:
		return d.array(depth + 1)
	}
	return Value{}, fmt.Errorf("unknown value type %d at byte %d", uint32(t), d.off-4)
}

func (d *decoder) array(depth int) (Value, error) {
	at := d.off
	e, err := d.u32("array element type")
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(e)
	if !elem.Known() {
		return Value{}, fmt.Errorf("array at byte %d: unknown element type %d", at, e)
	}
	if elem == TypeArray && depth >= MaxArrayDepth {
		return Value{}, fmt.Errorf("array at byte %d: arrays nested deeper than %d", at, MaxArrayDepth)
	}
	n, err := d.u64("array length")
	if err != nil {
		return Value{}, err
	}
	if n > MaxArrayLen {
		return Value{}, fmt.Errorf("array at byte %d has %d elements, over the limit of %d", at, n, MaxArrayLen)
	}
	// n ≤ 2^26 and every minimum below is ≤ 12, so the products cannot overflow.
	if sz := elem.size(); sz > 0 {
		b, err := d.bytes(n*uint64(sz), fmt.Sprintf("array of %d %s", n, elem))
		if err != nil {
			return Value{}, err
		}
		if elem == TypeBool {
			for i, x := range b {
				if x > 1 {
					return Value{}, fmt.Errorf("bool array at byte %d: element %d is %d, not 0 or 1", at, i, x)
				}
			}
		}
		return Value{typ: TypeArray, elem: elem, arr: slices.Clone(b)}, nil
	}
	switch elem {
	case TypeString:
		if err := d.need(n*minStringBytes, fmt.Sprintf("array of %d strings", n)); err != nil {
			return Value{}, err
		}
		// Pass 1 checks every length; pass 2 slices all the strings out of
		// one copy of the region, one allocation for the whole array.
		start := d.off
		for i := uint64(0); i < n; i++ {
			at := d.off
			if d.left() < 8 {
				return Value{}, fmt.Errorf("string %d of array at byte %d: length runs %s (%d bytes)", i, at, truncatedWhat, len(d.b))
			}
			l := binary.LittleEndian.Uint64(d.b[at:])
			d.off += 8
			if l > MaxStringLen {
				return Value{}, fmt.Errorf("string %d of array at byte %d is %d bytes long, over the limit of %d", i, at, l, MaxStringLen)
			}
			if l > d.left() {
				return Value{}, fmt.Errorf("string %d of array, %d bytes at byte %d, runs %s (%d bytes)", i, l, at, truncatedWhat, len(d.b))
			}
			d.off += l
		}
		region := string(d.b[start:d.off])
		out := make([]string, n)
		p := uint64(0)
		for i := range out {
			l := binary.LittleEndian.Uint64(d.b[start+p:])
			p += 8
			out[i] = region[p : p+l]
			p += l
		}
		return Value{typ: TypeArray, elem: elem, arr: out}, nil
	case TypeArray:
		if err := d.need(n*minArrayBytes, fmt.Sprintf("array of %d arrays", n)); err != nil {
			return Value{}, err
		}
		out := make([]Value, n)
		for i := range out {
			v, err := d.array(depth + 1)
			if err != nil {
				return Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			out[i] = v
		}
		return Value{typ: TypeArray, elem: elem, arr: out}, nil
	}
	return Value{}, errors.New("unreachable")
}

// Parse reads a GGUF (or PowerInfer PWRI) file held in data. Tensor data
// is not copied: TensorData slices data, which must stay unchanged while
// the File is used. Metadata is copied and outlives data.
//
// Every structural fact is checked here, so that later accessors cannot
// fail: the counts and lengths, the value and tensor types, the shapes
// (at most MaxDims dimensions, no int64 overflow, ne0 a multiple of the
// type's block size), unique keys and tensor names, the alignment, and each
// tensor's data range (aligned, inside data, not overlapping another).
func Parse(data []byte) (*File, error) {
	f, err := parse(data)
	if err != nil {
		return nil, errors.New(errPrefix + err.Error())
	}
	return f, nil
}

func parse(data []byte) (*File, error) {
	if len(data) < headerBytes {
		if len(data) >= 4 && !validMagic(data[:4]) {
			return nil, fmt.Errorf("bad magic %q (want %q or %q)", data[:4], MagicGGUF, MagicPowerInfer)
		}
		return nil, fmt.Errorf("file is %d bytes, too short for a GGUF header (%d bytes)", len(data), headerBytes)
	}
	if !validMagic(data[:4]) {
		return nil, fmt.Errorf("bad magic %q (want %q or %q)", data[:4], MagicGGUF, MagicPowerInfer)
	}
	d := &decoder{b: data, off: 4}
	f := &File{Magic: string(data[:4]), data: data}
	f.Version, _ = d.u32("version")
	switch v := f.Version; {
	case v == 1:
		return nil, errors.New("version 1 is obsolete and not supported (convert the file with a current llama.cpp)")
	case v == 2 || v == 3:
	case bits.ReverseBytes32(v) >= 1 && bits.ReverseBytes32(v) <= 3:
		return nil, fmt.Errorf("version field %#x is a big-endian GGUF v%d; only little-endian files are supported", v, bits.ReverseBytes32(v))
	default:
		return nil, fmt.Errorf("unsupported version %d (want 2 or 3)", v)
	}
	nTensors, _ := d.u64("tensor count")
	nKV, _ := d.u64("kv count")
	if nTensors > MaxTensors {
		return nil, fmt.Errorf("header claims %d tensors, over the limit of %d", nTensors, MaxTensors)
	}
	if nKV > MaxKVs {
		return nil, fmt.Errorf("header claims %d key/value pairs, over the limit of %d", nKV, MaxKVs)
	}
	if nKV*minKVBytes+nTensors*minTensorBytes > d.left() {
		return nil, fmt.Errorf("header claims %d key/value pairs and %d tensors, but only %d bytes follow", nKV, nTensors, d.left())
	}

	f.KVs = make([]KV, 0, nKV)
	f.kvIndex = make(map[string]int, nKV)
	for i := range int(nKV) {
		key, err := d.str(fmt.Sprintf("kv %d: key", i), MaxKeyLen)
		if err != nil {
			return nil, err
		}
		if j, dup := f.kvIndex[key]; dup {
			return nil, fmt.Errorf("duplicate key %q (kv %d and kv %d)", key, j, i)
		}
		t, err := d.u32(fmt.Sprintf("kv %d %q: value type", i, key))
		if err != nil {
			return nil, err
		}
		if !ValueType(t).Known() {
			return nil, fmt.Errorf("kv %d %q: unknown value type %d", i, key, t)
		}
		v, err := d.value(ValueType(t), 0)
		if err != nil {
			return nil, fmt.Errorf("kv %d %q: %w", i, key, err)
		}
		f.kvIndex[key] = i
		f.KVs = append(f.KVs, KV{Key: key, Value: v})
	}

	f.Alignment = DefaultAlignment
	if v, ok := f.Get(KeyAlignment); ok {
		a, err := checkAlignment(v)
		if err != nil {
			return nil, err
		}
		f.Alignment = a
	}

	// The kv loop consumed at least minKVBytes per pair, so the tensor
	// count check above still bounds what this loop can allocate only by
	// the input; recheck against what is left now.
	if nTensors*minTensorBytes > d.left() {
		return nil, fmt.Errorf("header claims %d tensors, but only %d bytes are left after the metadata", nTensors, d.left())
	}
	f.Tensors = make([]TensorInfo, 0, nTensors)
	f.tensorIndex = make(map[string]int, nTensors)
	for i := range int(nTensors) {
		t, err := d.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if j, dup := f.tensorIndex[t.Name]; dup {
			return nil, fmt.Errorf("duplicate tensor name %q (tensors %d and %d)", t.Name, j, i)
		}
		f.tensorIndex[t.Name] = i
		f.Tensors = append(f.Tensors, t)
	}

	f.DataOffset = alignUp(d.off, f.Alignment)
	if err := f.checkRanges(); err != nil {
		return nil, err
	}
	return f, nil
}

func validMagic(m []byte) bool {
	return string(m) == MagicGGUF || string(m) == MagicPowerInfer
}

func checkAlignment(v Value) (uint64, error) {
	if v.Type() != TypeUint32 {
		return 0, fmt.Errorf("%s is %s, want uint32", KeyAlignment, v.describe())
	}
	a, _ := v.Uint()
	if a == 0 || a&(a-1) != 0 || a > MaxAlignment {
		return 0, fmt.Errorf("%s is %d, want a power of two from 1 to %d", KeyAlignment, a, MaxAlignment)
	}
	return a, nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

func (d *decoder) tensorInfo(i int) (TensorInfo, error) {
	var t TensorInfo
	name, err := d.str(fmt.Sprintf("tensor %d: name", i), MaxTensorNameLen)
	if err != nil {
		return t, err
	}
	t.Name = name
	if err := d.tensorFields(&t); err != nil {
		return t, fmt.Errorf("tensor %q: %w", name, err)
	}
	if t.Size, err = tensorSize(name, t.Type, t.Shape); err != nil {
		return t, err
	}
	return t, nil
}

// tensorFields reads what follows a tensor's name.
func (d *decoder) tensorFields(t *TensorInfo) error {
	nd, err := d.u32("n_dims")
	if err != nil {
		return err
	}
	if nd > MaxDims {
		return fmt.Errorf("has %d dimensions, more than ggml's %d", nd, MaxDims)
	}
	t.Shape = make([]uint64, nd)
	for j := range t.Shape {
		if t.Shape[j], err = d.u64("dimension"); err != nil {
			return fmt.Errorf("dimension %d: %w", j, err)
		}
	}
	typ, err := d.u32("type")
	if err != nil {
		return err
	}
	t.Type = dtype.Type(typ)
	t.Offset, err = d.u64("offset")
	return err
}

// tensorSize checks a tensor's type and shape and returns its byte size.
func tensorSize(name string, typ dtype.Type, shape []uint64) (uint64, error) {
	if !typ.Known() {
		return 0, fmt.Errorf("tensor %q: unknown tensor type id %d", name, uint32(typ))
	}
	if len(shape) > MaxDims {
		return 0, fmt.Errorf("tensor %q has %d dimensions, more than ggml's %d", name, len(shape), MaxDims)
	}
	n := uint64(1)
	for j, ne := range shape {
		if ne > maxDimValue {
			return 0, fmt.Errorf("tensor %q: dimension %d is %d, negative as ggml's int64", name, j, ne)
		}
		hi, lo := bits.Mul64(n, ne)
		if hi != 0 || lo > maxShapeElems {
			return 0, fmt.Errorf("tensor %q: shape %v has more than 2^63-1 elements", name, shape)
		}
		n = lo
	}
	ne0 := uint64(1)
	if len(shape) > 0 {
		ne0 = shape[0]
	}
	if bs := uint64(typ.BlockSize()); ne0%bs != 0 {
		return 0, fmt.Errorf("tensor %q: ne0 = %d is not a multiple of the %s block size %d", name, ne0, typ, bs)
	}
	size, err := typ.RowBytes(n)
	if err != nil {
		return 0, fmt.Errorf("tensor %q: %w", name, err)
	}
	return size, nil
}

// checkRanges checks that every tensor's data is aligned, inside the file
// and disjoint from the others.
func (f *File) checkRanges() error {
	fileLen := uint64(len(f.data))
	type span struct {
		start, end uint64
		i          int
	}
	spans := make([]span, 0, len(f.Tensors))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if t.Offset%f.Alignment != 0 {
			return fmt.Errorf("tensor %q: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)
		}
		if t.Size == 0 {
			continue // no bytes: nothing to bound or overlap
		}
		start, c1 := bits.Add64(f.DataOffset, t.Offset, 0)
		end, c2 := bits.Add64(start, t.Size, 0)
		if c1 != 0 || c2 != 0 {
			return fmt.Errorf("tensor %q: data at offset %d + %d of %d bytes overflows a 64-bit position", t.Name, f.DataOffset, t.Offset, t.Size)
		}
		if end > fileLen {
			return fmt.Errorf("tensor %q: data [%d, %d) ends %s (%d bytes)", t.Name, start, end, truncatedWhat, fileLen)
		}
		spans = append(spans, span{start, end, i})
	}
	slices.SortFunc(spans, func(a, b span) int {
		if a.start != b.start {
			if a.start < b.start {
				return -1
			}
			return 1
		}
		return a.i - b.i
	})
	for k := 1; k < len(spans); k++ {
		p, q := spans[k-1], spans[k]
		if q.start < p.end {
			return fmt.Errorf("tensors %q [%d, %d) and %q [%d, %d) overlap",
				f.Tensors[p.i].Name, p.start, p.end, f.Tensors[q.i].Name, q.start, q.end)
		}
	}
	return nil
}
