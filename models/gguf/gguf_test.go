package gguf_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
)

func TestRoundTrip(t *testing.T) {
	for _, version := range []uint32{2, 3} {
		w := sampleWriter(t, version)
		data := writeBytes(t, w)
		f, err := gguf.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		if f.Version != version || f.Magic != gguf.MagicGGUF || f.Alignment != 32 {
			t.Fatalf("header: %s v%d align %d", f.Magic, f.Version, f.Alignment)
		}
		if f.DataOffset%32 != 0 {
			t.Fatalf("data offset %d not aligned", f.DataOffset)
		}
		want := sampleKVs()
		if len(f.KVs) != len(want) {
			t.Fatalf("%d KVs, want %d", len(f.KVs), len(want))
		}
		for i, kv := range want {
			got := f.KVs[i]
			if got.Key != kv.Key || !got.Value.Equal(kv.Value) || got.Value.Type() != kv.Value.Type() {
				t.Errorf("kv %d: got %q = %v, want %q = %v", i, got.Key, got.Value, kv.Key, kv.Value)
			}
		}
		if len(f.Tensors) != len(sampleTensors) {
			t.Fatalf("%d tensors, want %d", len(f.Tensors), len(sampleTensors))
		}
		for i, st := range sampleTensors {
			ti, ok := f.Tensor(st.name)
			if !ok || ti != &f.Tensors[i] {
				t.Fatalf("Tensor(%q) = %v, %v", st.name, ti, ok)
			}
			size := tensorBytes(t, st.typ, st.shape)
			if ti.Type != st.typ || !equalShape(ti.Shape, st.shape) || ti.Size != size || ti.Offset%32 != 0 {
				t.Errorf("tensor %q: %+v", st.name, *ti)
			}
			d := f.TensorData(ti)
			if !bytes.Equal(d, patterned(size, i)) {
				t.Errorf("tensor %q: data differs", st.name)
			}
			if cap(d) != len(d) {
				t.Errorf("tensor %q: TensorData capacity %d exceeds its length %d", st.name, cap(d), len(d))
			}
		}
		// Re-write from the parsed file: identical bytes.
		w2, err := gguf.NewWriterFrom(f)
		if err != nil {
			t.Fatal(err)
		}
		if again := writeBytes(t, w2); !bytes.Equal(again, data) {
			t.Fatalf("v%d: rewrite differs (%d vs %d bytes)", version, len(again), len(data))
		}
	}
}

func TestAccessors(t *testing.T) {
	f, err := gguf.Parse(writeBytes(t, sampleWriter(t, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := f.String("general.architecture"); !ok || s != "llama" {
		t.Errorf("String = %q, %v", s, ok)
	}
	if _, ok := f.String("test.u8"); ok {
		t.Error("String on a uint8 succeeded")
	}
	if u, ok := f.Uint("test.u8"); !ok || u != 200 {
		t.Errorf("Uint(u8) = %d, %v", u, ok)
	}
	if u, ok := f.Uint("test.u64"); !ok || u != math.MaxUint64 {
		t.Errorf("Uint(u64) = %d, %v", u, ok)
	}
	if _, ok := f.Uint("test.i8"); ok {
		t.Error("Uint of a negative int8 succeeded")
	}
	if _, ok := f.Int("test.u64"); ok {
		t.Error("Int of MaxUint64 succeeded")
	}
	if n, ok := f.Int("test.i16"); !ok || n != -32768 {
		t.Errorf("Int(i16) = %d, %v", n, ok)
	}
	if n, ok := f.Int("test.u32"); !ok || n != 4294967295 {
		t.Errorf("Int(u32) = %d, %v", n, ok)
	}
	if x, ok := f.Float("test.f32"); !ok || float32(x) != 1e-5 {
		t.Errorf("Float(f32) = %g, %v", x, ok)
	}
	if x, ok := f.Float("test.i32"); !ok || x != -123456 {
		t.Errorf("Float(i32) = %g, %v", x, ok)
	}
	if _, ok := f.Float("test.string"); ok {
		t.Error("Float of a string succeeded")
	}
	if b, ok := f.Bool("test.bool.true"); !ok || !b {
		t.Errorf("Bool = %v, %v", b, ok)
	}
	if _, ok := f.Bool("missing"); ok {
		t.Error("Bool of a missing key succeeded")
	}
	if s, err := f.Strings("test.strings"); err != nil || strings.Join(s, "|") != "<unk>|<s>||▁the" {
		t.Errorf("Strings = %q, %v", s, err)
	}
	if x, err := f.Float32s("test.float32s"); err != nil || len(x) != 4 || x[2] != 3.25 {
		t.Errorf("Float32s = %v, %v", x, err)
	}
	if x, err := f.Int32s("test.int32s"); err != nil || len(x) != 5 || x[3] != 6 || x[4] != -1 {
		t.Errorf("Int32s = %v, %v", x, err)
	}
	if x, err := f.Int32s("test.u16s"); err != nil || len(x) != 2 || x[1] != 9 {
		t.Errorf("Int32s(u16s) = %v, %v", x, err)
	}
	if _, err := f.Int32s("test.uint32s"); err == nil || !strings.Contains(err.Error(), "element 2") {
		t.Errorf("Int32s(MaxUint32) err = %v", err)
	}
	if _, err := f.Strings("test.u32"); err == nil || !strings.Contains(err.Error(), `"test.u32" is a uint32, not an array of string`) {
		t.Errorf("Strings(u32) err = %v", err)
	}
	if _, err := f.Strings("nope"); err == nil || !strings.Contains(err.Error(), `"nope" is missing`) {
		t.Errorf("Strings(missing) err = %v", err)
	}
	if _, err := f.Float32s("test.strings"); err == nil {
		t.Error("Float32s of strings succeeded")
	}

	v, _ := f.Get("test.nested")
	if v.Type() != gguf.TypeArray || v.Elem() != gguf.TypeArray || v.Len() != 4 {
		t.Fatalf("nested: %s of %s, len %d", v.Type(), v.Elem(), v.Len())
	}
	if in := v.Index(2).Index(0); in.Elem() != gguf.TypeFloat32 || in.Len() != 1 {
		t.Errorf("nested[2][0] = %v", in)
	}
	if got := v.Text(-1); got != `[[1, 2], ["a"], [[9]], []]` {
		t.Errorf("Text = %s", got)
	}
	toks, _ := f.Get("test.strings")
	if got := toks.Text(2); got != `["<unk>", "<s>", ... 2 more]` {
		t.Errorf("Text(2) = %s", got)
	}
	if s, ok := toks.Index(3).String(); !ok || s != "▁the" {
		t.Errorf("Index(3) = %q", s)
	}
	if got := toks.TypeText(); got != "[string; 4]" {
		t.Errorf("TypeText = %s", got)
	}
	i8s, _ := f.Get("test.i8s")
	if n, ok := i8s.Index(0).Int(); !ok || n != -128 {
		t.Errorf("i8s[0] = %d", n)
	}
}

func TestDump(t *testing.T) {
	f, err := gguf.Parse(writeBytes(t, sampleWriter(t, 3)))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	gguf.Dump(&sb, f, 2)
	out := sb.String()
	for _, want := range []string{
		"GGUF v3: 31 key/value pairs, 10 tensors, alignment 32",
		`"test.strings"`, `["<unk>", "<s>", ... 2 more]`,
		"q4_k.mat", "Q4_K", "[256, 2]", "288", // Q4_K: 2 blocks of 144 bytes
		"[5, 3, 2]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Dump lacks %q:\n%s", want, out)
		}
	}
}

func TestAlignmentAndMagic(t *testing.T) {
	w := gguf.NewWriter(3)
	w.AddKV("general.alignment", gguf.Uint32(64))
	if err := w.SetMagic(gguf.MagicPowerInfer); err != nil {
		t.Fatal(err)
	}
	for i, n := range []uint64{3, 17, 64} {
		if err := w.AddTensor(string(rune('a'+i)), dtype.F32, []uint64{n}, patterned(4*n, i)); err != nil {
			t.Fatal(err)
		}
	}
	data := writeBytes(t, w)
	if string(data[:4]) != "PWRI" {
		t.Fatalf("magic %q", data[:4])
	}
	f, err := gguf.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Magic != gguf.MagicPowerInfer || f.Alignment != 64 || f.DataOffset%64 != 0 {
		t.Fatalf("%s align %d data %d", f.Magic, f.Alignment, f.DataOffset)
	}
	wantOff := []uint64{0, 64, 192} // 12, 68 and 256 bytes
	for i, ti := range f.Tensors {
		if ti.Offset != wantOff[i] {
			t.Errorf("tensor %s offset %d, want %d", ti.Name, ti.Offset, wantOff[i])
		}
	}
	if len(data) != int(f.DataOffset)+192+256 {
		t.Errorf("file is %d bytes, want data offset %d + 448", len(data), f.DataOffset)
	}
	if err := w.SetMagic("GGML"); err == nil {
		t.Error("SetMagic(GGML) succeeded")
	}
}

func TestAddKVReplaces(t *testing.T) {
	w := gguf.NewWriter(3)
	w.AddKV("a", gguf.Uint32(1))
	w.AddKV("b", gguf.Uint32(2))
	w.AddKV("a", gguf.String("x"))
	f, err := gguf.Parse(writeBytes(t, w))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.KVs) != 2 || f.KVs[0].Key != "a" || f.KVs[0].Value.Type() != gguf.TypeString {
		t.Fatalf("KVs = %v", f.KVs)
	}
}

func TestWriterErrors(t *testing.T) {
	w := gguf.NewWriter(3)
	check := func(err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %q", err, want)
		}
	}
	check(w.AddTensor("a", dtype.F32, []uint64{4}, make([]byte, 15)), "15 bytes of data, want 16")
	check(w.AddTensor("q", dtype.Q4_0, []uint64{16, 2}, make([]byte, 18)), "not a multiple of the Q4_0 block size 32")
	check(w.AddTensor("u", dtype.Type(4), []uint64{1}, nil), "unknown tensor type id 4")
	check(w.AddTensor("d", dtype.F32, []uint64{1, 1, 1, 1, 1}, make([]byte, 4)), "5 dimensions")
	check(w.AddTensor(strings.Repeat("n", 64), dtype.F32, []uint64{1}, make([]byte, 4)), "longer than 63")
	check(w.AddTensor("o", dtype.F32, []uint64{1 << 40, 1 << 40}, nil), "more than 2^63-1 elements")
	if err := w.AddTensor("a", dtype.F32, []uint64{4}, make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	check(w.AddTensor("a", dtype.F32, []uint64{4}, make([]byte, 16)), `duplicate tensor name "a"`)
	check(w.AddTensorFunc("f", dtype.F32, []uint64{4}, nil), "nil write func")

	for _, tc := range []struct {
		name  string
		write func(io.Writer) error
		want  string
	}{
		{"short", func(out io.Writer) error { _, err := out.Write(make([]byte, 7)); return err }, "wrote 7 bytes, want 8"},
		{"long", func(out io.Writer) error { _, err := out.Write(make([]byte, 9)); return err }, "wrote more than the tensor's 8 bytes"},
		{"fails", func(io.Writer) error { return errors.New("boom") }, "boom"},
	} {
		w := gguf.NewWriter(3)
		if err := w.AddTensorFunc(tc.name, dtype.F16, []uint64{4}, tc.write); err != nil {
			t.Fatal(err)
		}
		_, err := w.WriteTo(io.Discard)
		check(err, tc.want)
	}

	bad := gguf.NewWriter(1)
	_, err := bad.WriteTo(io.Discard)
	check(err, "cannot write version 1")
	for _, a := range []gguf.Value{gguf.Uint32(0), gguf.Uint32(48), gguf.Uint32(1 << 20), gguf.Uint64(32)} {
		w := gguf.NewWriter(3)
		w.AddKV("general.alignment", a)
		_, err := w.WriteTo(io.Discard)
		check(err, "general.alignment")
	}
	deep := gguf.Int32s([]int32{1})
	for range gguf.MaxArrayDepth {
		deep = gguf.ArrayOf(gguf.TypeArray, []gguf.Value{deep})
	}
	w = gguf.NewWriter(3)
	w.AddKV("deep", deep)
	_, err = w.WriteTo(io.Discard)
	check(err, "nested deeper than 8")
}

func TestArrayOfPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("ArrayOf with a mismatched element did not panic")
		}
	}()
	gguf.ArrayOf(gguf.TypeUint32, []gguf.Value{gguf.Uint32(1), gguf.Int32(2)})
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	w := gguf.NewWriter(3)
	if err := w.AddTensorFunc("t", dtype.F32, []uint64{8}, func(out io.Writer) error {
		out.Write(make([]byte, 16))
		return errors.New("disk on fire")
	}); err != nil {
		t.Fatal(err)
	}
	if err := gguf.WriteFile(path, w); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("WriteFile err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("failed WriteFile left %v", ents)
	}

	w = sampleWriter(t, 3)
	if err := gguf.WriteFile(path, w); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("WriteFile left %v", ents)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, writeBytes(t, w)) {
		t.Fatal("file differs from WriteTo output")
	}
}

func TestOpenMmap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sample.gguf")
	if err := gguf.WriteFile(path, sampleWriter(t, 3)); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mapped := func() bool {
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			t.Skipf("no /proc/self/maps: %v", err)
		}
		return bytes.Contains(maps, []byte(path))
	}
	if runtime.GOOS == "linux" && !mapped() {
		t.Error("file is not mapped after Open")
	}
	for i, st := range sampleTensors {
		ti, _ := f.Tensor(st.name)
		if !bytes.Equal(f.TensorData(ti), patterned(ti.Size, i)) {
			t.Errorf("tensor %q: data differs", st.name)
		}
	}
	ti := &f.Tensors[0]
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && mapped() {
		t.Error("file is still mapped after Close")
	}
	if f.TensorData(ti) != nil {
		t.Error("TensorData after Close is not nil")
	}
	if s, ok := f.String("general.architecture"); !ok || s != "llama" {
		t.Error("metadata lost after Close")
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	checkOpenErrors(t, "Open", gguf.Open)
}

// checkOpenErrors: open (named name) rejects an empty file, a bad magic
// and a missing file, naming the path and the fault.
func checkOpenErrors(t *testing.T, name string, open func(string) (*gguf.File, error)) {
	t.Helper()
	for _, tc := range []struct {
		data []byte
		want string
	}{
		{nil, "file is 0 bytes"},
		{[]byte("GGML\x03\x00\x00\x00"), "bad magic"},
	} {
		p := filepath.Join(t.TempDir(), "bad.gguf")
		os.WriteFile(p, tc.data, 0o644)
		if _, err := open(p); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s(%q) err = %v, want %q and the path", name, tc.data, err, tc.want)
		}
	}
	if _, err := open(filepath.Join(t.TempDir(), "missing.gguf")); err == nil {
		t.Errorf("%s of a missing file succeeded", name)
	}
}

// TestOpenInMemory: the in-memory load gives the mapped load's tensors and
// metadata, holds no mapping of the file, makes the weights read-only
// (on Linux: a write faults), releases them on Close, and rejects bad
// files with Open's errors.
func TestOpenInMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sample.gguf")
	if err := gguf.WriteFile(path, sampleWriter(t, 3)); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.OpenInMemory(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" {
		maps, err := os.ReadFile("/proc/self/maps")
		if err == nil && bytes.Contains(maps, []byte(path)) {
			t.Error("file is mapped after OpenInMemory")
		}
	}
	if s, ok := f.String("general.architecture"); !ok || s != "llama" {
		t.Error("metadata lost")
	}
	for i, st := range sampleTensors {
		ti, _ := f.Tensor(st.name)
		if !bytes.Equal(f.TensorData(ti), patterned(ti.Size, i)) {
			t.Errorf("tensor %q: data differs", st.name)
		}
	}
	if runtime.GOOS == "linux" {
		ti := &f.Tensors[0]
		d := f.TensorData(ti)
		func() {
			old := debug.SetPanicOnFault(true)
			defer debug.SetPanicOnFault(old)
			defer func() {
				if recover() == nil {
					t.Error("writing a loaded weight did not fault")
				}
			}()
			d[0] ^= 1
		}()
	}
	if f.Size() == 0 {
		t.Error("Size is 0 before Close")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.Size() != 0 || f.TensorData(&f.Tensors[0]) != nil {
		t.Error("data still reachable after Close")
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	checkOpenErrors(t, "OpenInMemory", gguf.OpenInMemory)
}

// TestEveryPrefix cuts a valid file at every length: each cut must fail
// cleanly, except cuts after the last tensor's bytes (its padding is not
// required).
func TestEveryPrefix(t *testing.T) {
	data := writeBytes(t, sampleWriter(t, 3))
	f, err := gguf.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	var end uint64
	for _, ti := range f.Tensors {
		end = max(end, f.DataOffset+ti.Offset+ti.Size)
	}
	for n := range len(data) {
		_, err := gguf.Parse(data[:n])
		if uint64(n) >= end {
			if err != nil {
				t.Errorf("prefix %d (data ends at %d): %v", n, end, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("prefix of %d bytes parsed", n)
		}
		if !strings.HasPrefix(err.Error(), "gguf: ") {
			t.Fatalf("prefix %d: error %q lacks the package prefix", n, err)
		}
	}
}

func TestValueFormat(t *testing.T) {
	v := gguf.Int32s([]int32{1, 2, 3, 4})
	for _, tc := range []struct{ format, want string }{
		{"%v", "[1, 2, 3, 4]"},
		{"%.2v", "[1, 2, ... 2 more]"},
		{"%.0v", "[... 4 more]"},
		{"%+v", "[1, 2, 3, 4]"},
	} {
		if got := fmt.Sprintf(tc.format, v); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.format, got, tc.want)
		}
	}
	if got := fmt.Sprint(gguf.String("a\"b")); got != `"a\"b"` {
		t.Errorf("string: %s", got)
	}
	if got := fmt.Sprint(gguf.Float32(0.1)); got != "0.1" {
		t.Errorf("float32: %s", got)
	}
	if got := fmt.Sprint(gguf.Int8(-3), gguf.Bool(true), gguf.Uint64(math.MaxUint64)); got != "-3 true 18446744073709551615" {
		t.Errorf("scalars: %s", got)
	}
	if gguf.Uint32(1).Equal(gguf.Int32(1)) || !gguf.Strings(nil).Equal(gguf.ArrayOf(gguf.TypeString, nil)) {
		t.Error("Equal")
	}
}

// TestRewrite: a file read into memory can be rewritten in place, and
// the change is what later reads of its tensors see; a mapped file, or
// one parsed from the caller's bytes, refuses without calling fn.
func TestRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, writeBytes(t, sampleWriter(t, 3)), 0o644); err != nil {
		t.Fatal(err)
	}
	name := sampleTensors[0].name
	mem, err := gguf.OpenInMemory(path)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	ti, _ := mem.Tensor(name)
	data := mem.TensorData(ti)
	want := ^data[0]
	if err := mem.Rewrite(func() error { data[0] = want; return nil }); err != nil {
		t.Fatal(err)
	}
	if again := mem.TensorData(ti); again[0] != want {
		t.Errorf("after Rewrite: byte %#x, want %#x", again[0], want)
	}
	failed := errors.New("fn failed")
	if err := mem.Rewrite(func() error { return failed }); !errors.Is(err, failed) {
		t.Errorf("Rewrite did not return fn's error: %v", err)
	}
	parsed, err := gguf.Parse(writeBytes(t, sampleWriter(t, 3)))
	if err != nil {
		t.Fatal(err)
	}
	refuse := map[string]*gguf.File{"parsed": parsed}
	if runtime.GOOS != "windows" { // where Open reads the file, not maps it
		mapped, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer mapped.Close()
		refuse["mapped"] = mapped
	}
	for what, f := range refuse {
		called := false
		if err := f.Rewrite(func() error { called = true; return nil }); err == nil || called {
			t.Errorf("%s file: Rewrite = %v, fn called %v; want an error and no call", what, err, called)
		}
	}
}

// TestWriterReplaceRemove: a replaced tensor keeps its place (under its
// new name, with its new bytes), a removed one leaves no gap, and names
// that are missing or taken are refused.
func TestWriterReplaceRemove(t *testing.T) {
	w := gguf.NewWriter(3)
	for i, name := range []string{"a", "b", "c", "d"} {
		if err := w.AddTensor(name, dtype.F32, []uint64{2}, []byte{byte(i), 0, 0, 0, 1, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	put := func(b ...byte) func(io.Writer) error {
		return func(out io.Writer) error { _, err := out.Write(b); return err }
	}
	if err := w.ReplaceTensorFunc("b", "b2", dtype.F16, []uint64{2}, put(9, 9, 9, 9)); err != nil {
		t.Fatal(err)
	}
	if err := w.RemoveTensor("a"); err != nil {
		t.Fatal(err)
	}
	if err := w.ReplaceTensorFunc("d", "d", dtype.F32, []uint64{1}, put(7, 7, 7, 7)); err != nil {
		t.Fatal(err) // found after the removal renumbered the tensors
	}
	for _, err := range []error{
		w.ReplaceTensorFunc("a", "x", dtype.F32, []uint64{1}, put(0, 0, 0, 0)),
		w.ReplaceTensorFunc("c", "d", dtype.F32, []uint64{1}, put(0, 0, 0, 0)),
		w.ReplaceTensorFunc("c", "c", dtype.F32, []uint64{1}, nil),
		w.RemoveTensor("a"),
	} {
		if err == nil {
			t.Error("no error")
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range f.Tensors {
		names = append(names, f.Tensors[i].Name)
	}
	if !slices.Equal(names, []string{"b2", "c", "d"}) {
		t.Fatalf("tensors %v, want [b2 c d]", names)
	}
	if d := f.TensorData(&f.Tensors[0]); f.Tensors[0].Type != dtype.F16 || !bytes.Equal(d, []byte{9, 9, 9, 9}) {
		t.Errorf("b2: %s %v", f.Tensors[0].Type, d)
	}
	if d := f.TensorData(&f.Tensors[1]); !bytes.Equal(d, []byte{2, 0, 0, 0, 1, 0, 0, 0}) {
		t.Errorf("c: %v", d)
	}
	if d := f.TensorData(&f.Tensors[2]); !bytes.Equal(d, []byte{7, 7, 7, 7}) {
		t.Errorf("d: %v", d)
	}
}
