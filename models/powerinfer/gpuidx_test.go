package powerinfer_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/models/powerinfer"
)

// exportSplit writes a split file byte by byte the way PowerInfer's
// export_split.py does (gguf-py's GGUFWriter, then "PWRI" and version 3
// over the first 8 bytes): KVs general.architecture, <arch>.block_count,
// split.vram_capacity; per layer gpu_idx [ffn] and gpu_bucket [k], both
// type 18 (PowerInfer's I32), data aligned to 32. Tensors whose bucket is
// nil are written without one (the MoE variant), and extra adds raw
// tensors (name, type, dims, data) after them.
func exportSplit(arch string, vram uint64, idx [][]int32, buckets [][]int32, extra ...rawTensor) []byte {
	type kv struct {
		key  string
		typ  uint32
		data []byte
	}
	str := func(s string) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(len(s))) }
	kvs := []kv{
		{"general.architecture", 8, append(str(arch), arch...)},
		{arch + ".block_count", 4, binary.LittleEndian.AppendUint32(nil, uint32(len(idx)))},
		{"split.vram_capacity", 10, binary.LittleEndian.AppendUint64(nil, vram)},
	}
	var ts []rawTensor
	i32 := func(v []int32) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, uint32(x))
		}
		return b
	}
	for l := range idx {
		ts = append(ts, rawTensor{"blk." + itoa(l) + ".gpu_idx", 18, []uint64{uint64(len(idx[l]))}, i32(idx[l])})
		if buckets[l] != nil {
			ts = append(ts, rawTensor{"blk." + itoa(l) + ".gpu_bucket", 18, []uint64{uint64(len(buckets[l]))}, i32(buckets[l])})
		}
	}
	ts = append(ts, extra...)
	b := []byte("PWRI")
	b = binary.LittleEndian.AppendUint32(b, 3)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(ts)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(kvs)))
	for _, k := range kvs {
		b = append(append(b, str(k.key)...), k.key...)
		b = binary.LittleEndian.AppendUint32(b, k.typ)
		b = append(b, k.data...)
	}
	var off uint64
	for _, t := range ts {
		b = append(append(b, str(t.name)...), t.name...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t.dims)))
		for _, d := range t.dims {
			b = binary.LittleEndian.AppendUint64(b, d)
		}
		b = binary.LittleEndian.AppendUint32(b, t.typ)
		b = binary.LittleEndian.AppendUint64(b, off)
		off += (uint64(len(t.data)) + 31) &^ 31
	}
	for len(b)%32 != 0 {
		b = append(b, 0)
	}
	for _, t := range ts {
		b = append(b, t.data...)
		for len(b)%32 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

type rawTensor struct {
	name string
	typ  uint32
	dims []uint64
	data []byte
}

func itoa(i int) string { return string(rune('0' + i)) } // layers < 10 here

// masks draws a random placement of layers × ffn neurons, about share on
// the GPU, and returns it as gpu_idx values and sorted buckets.
func masks(layers, ffn int, share float64, seed uint64) ([][]bool, [][]int32, [][]int32) {
	rng := rand.New(rand.NewPCG(seed, 7))
	on := make([][]bool, layers)
	idx := make([][]int32, layers)
	bkt := make([][]int32, layers)
	for l := range on {
		on[l] = make([]bool, ffn)
		idx[l] = make([]int32, ffn)
		bkt[l] = []int32{}
		for i := range ffn {
			if rng.Float64() < share {
				on[l][i], idx[l][i] = true, 1
				bkt[l] = append(bkt[l], int32(i))
			}
		}
	}
	return on, idx, bkt
}

func TestReadPowerInferFile(t *testing.T) {
	on, idx, bkt := masks(3, 100, 0.3, 1)
	s, err := powerinfer.Parse(exportSplit("generic.gpu_index", 1<<30, idx, bkt))
	if err != nil {
		t.Fatal(err)
	}
	if s.VRAMCapacity != 1<<30 || len(s.Layers) != 3 {
		t.Fatalf("vram %d, %d layers", s.VRAMCapacity, len(s.Layers))
	}
	for l := range s.Layers {
		if !reflect.DeepEqual(s.Layers[l].OnGPU, on[l]) || !reflect.DeepEqual(s.Layers[l].Bucket, bkt[l]) {
			t.Errorf("layer %d read wrong", l)
		}
	}
	if err := s.Validate(3, 100); err != nil {
		t.Error(err)
	}
	if err := s.Validate(3, 101); err == nil || !strings.Contains(err.Error(), "layer 0 of the split has 100 neurons, the model 101") {
		t.Errorf("Validate: %v", err)
	}
	if err := s.Validate(4, 100); err == nil {
		t.Error("Validate accepted a layer count mismatch")
	}
	// the MoE variant has no buckets: they are derived
	nob := make([][]int32, 3)
	m, err := powerinfer.Parse(exportSplit("moe.gpu_idx", 5, idx, nob))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Layers, s.Layers) {
		t.Error("derived buckets differ")
	}
}

// TestWriteLikePowerInfer checks that Stoke writes the very bytes
// PowerInfer's exporter writes, and reads them back.
func TestWriteLikePowerInfer(t *testing.T) {
	for _, share := range []float64{0, 0.25, 1} {
		on, idx, bkt := masks(4, 64, share, 2)
		s, err := powerinfer.New(123456789, on)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := s.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if want := exportSplit("generic.gpu_index", 123456789, idx, bkt); !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("share %g: written bytes differ from export_split.py's (%d vs %d bytes)", share, buf.Len(), len(want))
		}
		back, err := powerinfer.Parse(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, s) {
			t.Errorf("share %g: round trip changed the split", share)
		}
	}
	on, _, _ := masks(2, 48, 0.5, 3)
	s, _ := powerinfer.New(1, on)
	path := powerinfer.SplitPath(filepath.Join(t.TempDir(), "model.gguf"))
	if !strings.HasSuffix(path, "model.gguf.generated.gpuidx") {
		t.Errorf("split path %s", path)
	}
	if err := powerinfer.Write(path, s); err != nil {
		t.Fatal(err)
	}
	back, err := powerinfer.Read(path)
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("file round trip: %v", err)
	}
}

func TestBadSplits(t *testing.T) {
	_, idx, bkt := masks(2, 40, 0.3, 4)
	clone := func() ([][]int32, [][]int32) {
		i, b := make([][]int32, 2), make([][]int32, 2)
		for l := range 2 {
			i[l], b[l] = append([]int32(nil), idx[l]...), append([]int32(nil), bkt[l]...)
		}
		return i, b
	}
	cases := []struct {
		name string
		file func() []byte
		want string
	}{
		{"not 0/1", func() []byte { i, b := clone(); i[1][3] = 2; return exportSplit("generic.gpu_index", 1, i, b) }, "blk.1.gpu_idx[3] = 2"},
		{"bucket unsorted", func() []byte {
			i, b := clone()
			b[0][0], b[0][1] = b[0][1], b[0][0]
			return exportSplit("generic.gpu_index", 1, i, b)
		}, "gpu_bucket is not strictly increasing"},
		{"bucket short", func() []byte { i, b := clone(); b[1] = b[1][1:]; return exportSplit("generic.gpu_index", 1, i, b) }, "layer 1: gpu_bucket has"},
		{"bucket off the GPU", func() []byte {
			i, b := clone()
			cpu := 0
			for i[0][cpu] == 1 {
				cpu++
			}
			i[0][b[0][0]], i[0][cpu] = 0, 1 // same count, one neuron moved
			return exportSplit("generic.gpu_index", 1, i, b)
		}, "which gpu_idx places on the CPU"},
		{"bucket out of range", func() []byte {
			i, b := clone()
			b[0][len(b[0])-1] = 40
			return exportSplit("generic.gpu_index", 1, i, b)
		}, "outside [0, 40)"},
		{"wrong arch", func() []byte { i, b := clone(); return exportSplit("llama", 1, i, b) }, `general.architecture is "llama"`},
		{"extra tensor", func() []byte {
			i, b := clone()
			return exportSplit("generic.gpu_index", 1, i, b, rawTensor{"blk.2.gpu_idx", 18, []uint64{8}, make([]byte, 32)})
		}, "the file has 5 tensors, 4 of them"},
		{"missing layer", func() []byte {
			i, b := clone()
			return exportSplit("generic.gpu_index", 1, i[:1], b[:1], rawTensor{"blk.9.x", 18, []uint64{1}, make([]byte, 4)})
		}, "the file has 3 tensors"},
		{"float tensor", func() []byte {
			i, b := clone()
			f := exportSplit("generic.gpu_index", 1, i[:1], b[:1])
			return bytes.Replace(f, []byte("blk.0.gpu_bucket"), []byte("blk.0.gpu_bucke_"), 1)
		}, "the file has 2 tensors, 1 of them"},
		{"truncated", func() []byte { i, b := clone(); return exportSplit("generic.gpu_index", 1, i, b)[:200] }, "powerinfer:"},
		{"empty", func() []byte { return nil }, "powerinfer:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := powerinfer.Parse(c.file())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want it to mention %q", err, c.want)
			}
		})
	}
	// a split file Stoke wrote with today's type ids (GGUF magic, I32 26) reads too
	w := gguf.NewWriter(3)
	w.AddKV("general.architecture", gguf.String("generic.gpu_index"))
	w.AddKV("generic.gpu_index.block_count", gguf.Uint32(1))
	w.AddKV("split.vram_capacity", gguf.Uint64(0))
	if err := w.AddTensor("blk.0.gpu_idx", 26, []uint64{2}, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	s, err := powerinfer.Parse(buf.Bytes())
	if err != nil || !reflect.DeepEqual(s.Layers[0].Bucket, []int32{0}) {
		t.Errorf("modern file: %v %+v", err, s)
	}
	if _, err := powerinfer.New(0, nil); err == nil {
		t.Error("New accepted no layers")
	}
}
