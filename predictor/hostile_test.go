package predictor_test

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/predictor"
)

// fileSpec is a GGUF file's contents, to be edited and written back.
type fileSpec struct {
	kvs     []gguf.KV
	tensors []specTensor
}

type specTensor struct {
	name  string
	typ   dtype.Type
	shape []uint64
	data  []byte
}

func loadSpec(t *testing.T, path string) *fileSpec {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &fileSpec{kvs: slices.Clone(f.KVs)}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		s.tensors = append(s.tensors, specTensor{ti.Name, ti.Type, slices.Clone(ti.Shape), bytes.Clone(f.TensorData(ti))})
	}
	return s
}

func (s *fileSpec) setKV(key string, v gguf.Value) {
	for i := range s.kvs {
		if s.kvs[i].Key == key {
			s.kvs[i].Value = v
			return
		}
	}
	s.kvs = append(s.kvs, gguf.KV{Key: key, Value: v})
}

func (s *fileSpec) delKV(key string) {
	s.kvs = slices.DeleteFunc(s.kvs, func(kv gguf.KV) bool { return kv.Key == key })
}

func (s *fileSpec) delTensor(name string) {
	s.tensors = slices.DeleteFunc(s.tensors, func(t specTensor) bool { return t.name == name })
}

func (s *fileSpec) setTensor(name string, typ dtype.Type, shape []uint64, data []byte) {
	s.delTensor(name)
	s.tensors = append(s.tensors, specTensor{name, typ, shape, data})
}

func (s *fileSpec) write(t *testing.T, path string) {
	t.Helper()
	w := gguf.NewWriter(3)
	for _, kv := range s.kvs {
		w.AddKV(kv.Key, kv.Value)
	}
	for _, ti := range s.tensors {
		if err := w.AddTensor(ti.name, ti.typ, ti.shape, ti.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := gguf.WriteFile(path, w); err != nil {
		t.Fatal(err)
	}
}

func u64s(x ...uint64) gguf.Value {
	v := make([]gguf.Value, len(x))
	for i, n := range x {
		v[i] = gguf.Uint64(n)
	}
	return gguf.ArrayOf(gguf.TypeUint64, v)
}

func TestHostileProfile(t *testing.T) {
	dir := t.TempDir()
	p := predictor.NewProfile(2, 4, 8, 5, 1)
	for j := range 9 {
		for l := range 2 {
			x, a := token(l, j, 4, 8)
			p.Record(l, x, a)
		}
	}
	good := filepath.Join(dir, "good.gguf")
	if err := p.WriteGGUF(good); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(s *fileSpec)
		want string
	}{
		{"not a profile", func(s *fileSpec) { s.delKV("stoke.profile.version") }, "not a Stoke profile"},
		{"future version", func(s *fileSpec) { s.setKV("stoke.profile.version", gguf.Uint32(9)) }, "version"},
		{"missing x", func(s *fileSpec) { s.delTensor("blk.1.profile_x") }, "missing"},
		{"missing a", func(s *fileSpec) { s.delTensor("blk.0.profile_a") }, "missing"},
		{"x too short", func(s *fileSpec) {
			s.setTensor("blk.0.profile_x", dtype.F32, []uint64{4, 4}, make([]byte, 4*4*4))
		}, "shape"},
		{"a wrong type", func(s *fileSpec) {
			s.setTensor("blk.0.profile_a", dtype.F32, []uint64{8, 5}, make([]byte, 8*5*4))
		}, "want F16"},
		{"count wrong type", func(s *fileSpec) {
			s.setTensor("blk.1.profile_count", dtype.F32, []uint64{8}, make([]byte, 32))
		}, "want I32"},
		{"more samples than kept", func(s *fileSpec) { s.setKV("stoke.profile.samples", u64s(6, 5)) }, "stoke.profile.samples"},
		{"more samples than seen", func(s *fileSpec) { s.setKV("stoke.profile.seen", u64s(9, 4)) }, "tokens seen"},
		{"layer count mismatch", func(s *fileSpec) { s.setKV("stoke.profile.layer_count", gguf.Uint32(3)) }, "want an array of 3"},
		{"huge layer count", func(s *fileSpec) { s.setKV("stoke.profile.layer_count", gguf.Uint64(1<<40)) }, "over the limit"},
		{"huge dim", func(s *fileSpec) { s.setKV("stoke.profile.dim", u64s(1<<40, 4)) }, "stoke.profile.dim"},
		{"zero ffn", func(s *fileSpec) { s.setKV("stoke.profile.ffn", u64s(8, 0)) }, "ffn 0"},
		{"dims as strings", func(s *fileSpec) { s.setKV("stoke.profile.dim", gguf.Strings([]string{"4", "4"})) }, "stoke.profile.dim"},
		{"NaN threshold", func(s *fileSpec) {
			s.setKV("stoke.profile.threshold", gguf.Float32s([]float32{0, float32(nan())}))
		}, "NaN"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := loadSpec(t, good)
			c.edit(s)
			path := filepath.Join(dir, "bad"+string(rune('a'+i))+".gguf")
			s.write(t, path)
			_, err := predictor.ReadProfile(path)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
	if _, err := predictor.ReadProfile(filepath.Join(dir, "absent.gguf")); err == nil {
		t.Error("absent file: no error")
	}
}
