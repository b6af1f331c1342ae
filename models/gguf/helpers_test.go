package gguf_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

// sampleKVs has one pair of every value type, arrays of every element
// type, empty arrays and arrays of arrays.
func sampleKVs() []gguf.KV {
	return []gguf.KV{
		{"general.architecture", gguf.String("llama")},
		{"test.u8", gguf.Uint8(200)},
		{"test.i8", gguf.Int8(-5)},
		{"test.u16", gguf.Uint16(65535)},
		{"test.i16", gguf.Int16(-32768)},
		{"test.u32", gguf.Uint32(4294967295)},
		{"test.i32", gguf.Int32(-123456)},
		{"test.f32", gguf.Float32(1e-5)},
		{"test.f32nan", gguf.Float32(float32(math.NaN()))},
		{"test.bool.true", gguf.Bool(true)},
		{"test.bool.false", gguf.Bool(false)},
		{"test.string", gguf.String("héllo ▁world\x00\n")},
		{"test.string.empty", gguf.String("")},
		{"test.u64", gguf.Uint64(math.MaxUint64)},
		{"test.i64", gguf.Int64(math.MinInt64)},
		{"test.f64", gguf.Float64(-2.5e300)},
		{"test.strings", gguf.Strings([]string{"<unk>", "<s>", "", "▁the"})},
		{"test.float32s", gguf.Float32s([]float32{0, -1, 3.25, float32(math.Inf(1))})},
		{"test.int32s", gguf.Int32s([]int32{2, 3, 3, 6, -1})},
		{"test.uint32s", gguf.Uint32s([]uint32{0, 1, math.MaxUint32})},
		{"test.u8s", gguf.ArrayOf(gguf.TypeUint8, []gguf.Value{gguf.Uint8(1), gguf.Uint8(255)})},
		{"test.i8s", gguf.ArrayOf(gguf.TypeInt8, []gguf.Value{gguf.Int8(-128)})},
		{"test.u16s", gguf.ArrayOf(gguf.TypeUint16, []gguf.Value{gguf.Uint16(7), gguf.Uint16(9)})},
		{"test.i16s", gguf.ArrayOf(gguf.TypeInt16, []gguf.Value{gguf.Int16(-7)})},
		{"test.bools", gguf.ArrayOf(gguf.TypeBool, []gguf.Value{gguf.Bool(true), gguf.Bool(false), gguf.Bool(true)})},
		{"test.u64s", gguf.ArrayOf(gguf.TypeUint64, []gguf.Value{gguf.Uint64(1 << 40)})},
		{"test.i64s", gguf.ArrayOf(gguf.TypeInt64, []gguf.Value{gguf.Int64(-1 << 40), gguf.Int64(5)})},
		{"test.f64s", gguf.ArrayOf(gguf.TypeFloat64, []gguf.Value{gguf.Float64(0.5)})},
		{"test.empty", gguf.ArrayOf(gguf.TypeFloat32, nil)},
		{"test.empty.strings", gguf.Strings(nil)},
		{"test.nested", gguf.ArrayOf(gguf.TypeArray, []gguf.Value{
			gguf.Int32s([]int32{1, 2}),
			gguf.Strings([]string{"a"}),
			gguf.ArrayOf(gguf.TypeArray, []gguf.Value{gguf.Float32s([]float32{9})}),
			gguf.ArrayOf(gguf.TypeArray, nil),
		})},
	}
}

type sampleTensor struct {
	name  string
	typ   dtype.Type
	shape []uint64
}

// sampleTensors covers several dtypes, odd shapes, a scalar (no
// dimensions) and an empty tensor.
var sampleTensors = []sampleTensor{
	{"token_embd.weight", dtype.F32, []uint64{3, 5}},
	{"f16.vec", dtype.F16, []uint64{7}},
	{"bf16.cube", dtype.BF16, []uint64{5, 3, 2}},
	{"q4_0.mat", dtype.Q4_0, []uint64{64, 3}},
	{"q8_0.4d", dtype.Q8_0, []uint64{32, 1, 2, 1}},
	{"q4_k.mat", dtype.Q4_K, []uint64{256, 2}},
	{"i8.one", dtype.I8, []uint64{1}},
	{"scalar", dtype.F32, nil},
	{"empty", dtype.F32, []uint64{0, 4}},
	{"q6_k.row", dtype.Q6_K, []uint64{512}},
}

// patterned returns n deterministic bytes that differ per tensor.
func patterned(n uint64, salt int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + salt*31 + 1)
	}
	return b
}

func tensorBytes(t testing.TB, typ dtype.Type, shape []uint64) uint64 {
	t.Helper()
	n := uint64(1)
	for _, ne := range shape {
		n *= ne
	}
	size, err := typ.RowBytes(n)
	if err != nil {
		t.Fatal(err)
	}
	return size
}

// sampleWriter builds the sample file: every value type, every sample tensor.
func sampleWriter(t testing.TB, version uint32) *gguf.Writer {
	t.Helper()
	w := gguf.NewWriter(version)
	for _, kv := range sampleKVs() {
		w.AddKV(kv.Key, kv.Value)
	}
	for i, st := range sampleTensors {
		data := patterned(tensorBytes(t, st.typ, st.shape), i)
		if err := w.AddTensor(st.name, st.typ, st.shape, data); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func writeBytes(t testing.TB, w *gguf.Writer) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := w.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d", n, buf.Len())
	}
	if size, err := w.Size(); err != nil || size != n {
		t.Fatalf("Size() = %d, %v; wrote %d", size, err, n)
	}
	return buf.Bytes()
}

// raw builds GGUF bytes field by field, to make files the writer refuses
// to make.
type raw struct{ b []byte }

func (r *raw) u32(x uint32) *raw { r.b = binary.LittleEndian.AppendUint32(r.b, x); return r }
func (r *raw) u64(x uint64) *raw { r.b = binary.LittleEndian.AppendUint64(r.b, x); return r }
func (r *raw) bytes(p ...byte) *raw {
	r.b = append(r.b, p...)
	return r
}
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.b = append(r.b, s...); return r }

// header starts a file with the given counts.
func header(version uint32, nTensors, nKV uint64) *raw {
	r := &raw{}
	r.bytes('G', 'G', 'U', 'F').u32(version).u64(nTensors).u64(nKV)
	return r
}

// tensorInfo appends one tensor-info record.
func (r *raw) tensorInfo(name string, typ dtype.Type, shape []uint64, offset uint64) *raw {
	r.str(name).u32(uint32(len(shape)))
	for _, ne := range shape {
		r.u64(ne)
	}
	return r.u32(uint32(typ)).u64(offset)
}

// pad pads to a multiple of a, then appends n data bytes.
func (r *raw) data(a int, n int) *raw {
	for len(r.b)%a != 0 {
		r.b = append(r.b, 0)
	}
	r.b = append(r.b, make([]byte, n)...)
	return r
}

// sameContent fails unless a and b hold the same metadata and tensors
// (shapes, types, sizes and bytes; offsets may differ).
func sameContent(t testing.TB, a, b *gguf.File) {
	t.Helper()
	if a.Magic != b.Magic || a.Version != b.Version || a.Alignment != b.Alignment {
		t.Fatalf("header: %s v%d align %d vs %s v%d align %d", a.Magic, a.Version, a.Alignment, b.Magic, b.Version, b.Alignment)
	}
	if len(a.KVs) != len(b.KVs) {
		t.Fatalf("%d KVs vs %d", len(a.KVs), len(b.KVs))
	}
	for i := range a.KVs {
		if a.KVs[i].Key != b.KVs[i].Key || !a.KVs[i].Value.Equal(b.KVs[i].Value) {
			t.Fatalf("kv %d: %q = %v vs %q = %v", i, a.KVs[i].Key, a.KVs[i].Value, b.KVs[i].Key, b.KVs[i].Value)
		}
	}
	if len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%d tensors vs %d", len(a.Tensors), len(b.Tensors))
	}
	for i := range a.Tensors {
		x, y := &a.Tensors[i], &b.Tensors[i]
		if x.Name != y.Name || x.Type != y.Type || x.Size != y.Size || !equalShape(x.Shape, y.Shape) {
			t.Fatalf("tensor %d: %+v vs %+v", i, *x, *y)
		}
		if !bytes.Equal(a.TensorData(x), b.TensorData(y)) {
			t.Fatalf("tensor %q: data differs", x.Name)
		}
	}
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
