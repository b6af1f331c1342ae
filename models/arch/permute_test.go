package arch_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/stokehq/stoke/models/arch"
	"github.com/stokehq/stoke/models/dtype"
	"github.com/stokehq/stoke/models/gguf"
	"github.com/stokehq/stoke/models/synth"
)

// parsed writes w to memory and parses it back.
func parsed(t *testing.T, w *gguf.Writer) *gguf.File {
	t.Helper()
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func randomOrders(seed uint64, layers, ffn int) [][]int32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([][]int32, layers)
	for l := range out {
		for _, v := range rng.Perm(ffn) {
			out[l] = append(out[l], int32(v))
		}
	}
	return out
}

// TestPermuteFFN renumbers the neurons of synthetic models of every
// family and checks every tensor of the result against the source: the
// neuron's rows, columns and bias elements moved to their new numbers,
// everything else, metadata included, byte for byte.
func TestPermuteFFN(t *testing.T) {
	for _, c := range []synth.Config{
		{Arch: "llama", Act: "relu", PowerInfer: true, Type: dtype.Q4_0},
		{Arch: "bamboo", PowerInfer: true, Type: dtype.Q8_0},
		{Arch: "opt", Type: dtype.F16},
		{Arch: "opt", PowerInfer: true, Type: dtype.Q4_0},
		{Arch: "llama", Act: "relu", Type: dtype.F32},
	} {
		c.Params, c.Seed = 2e6, 3
		name := c.Arch + "-" + c.Type.String()
		if c.PowerInfer {
			name += "-powerinfer"
		}
		t.Run(name, func(t *testing.T) {
			sw, sc, err := synth.Build(c)
			if err != nil {
				t.Fatal(err)
			}
			src := parsed(t, sw)
			order := randomOrders(5, sc.Layers, sc.FFN)
			w, dropped, err := arch.PermuteFFN(src, order, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(dropped) != 0 {
				t.Errorf("dropped %v", dropped)
			}
			dst := parsed(t, w)
			if dst.Magic != src.Magic || dst.Version != src.Version || !reflect.DeepEqual(dst.KVs, src.KVs) {
				t.Fatalf("magic, version or metadata changed")
			}
			if len(dst.Tensors) != len(src.Tensors) {
				t.Fatalf("%d tensors, want %d", len(dst.Tensors), len(src.Tensors))
			}
			moved := 0
			for i := range src.Tensors {
				st, dt := &src.Tensors[i], &dst.Tensors[i]
				if st.Name != dt.Name || st.Type != dt.Type || !reflect.DeepEqual(st.Shape, dt.Shape) {
					t.Fatalf("tensor %d: %s %s %v, want %s %s %v", i, dt.Name, dt.Type, dt.Shape, st.Name, st.Type, st.Shape)
				}
				a, b := src.TensorData(st), dst.TensorData(dt)
				var l int
				var kind string
				if n, ok := strings.CutPrefix(st.Name, "blk."); ok {
					var rest string
					num, rest, _ := strings.Cut(n, ".")
					for _, ch := range num {
						l = 10*l + int(ch-'0')
					}
					switch rest {
					case "ffn_gate.weight", "ffn_up.weight", "ffn_down_t.weight", "fc2.weight",
						"ffn_gate.bias", "ffn_up.bias", "fc2.bias":
						kind = "rows"
					case "ffn_down.weight":
						kind = "cols"
					}
				}
				switch kind {
				case "":
					if !bytes.Equal(a, b) {
						t.Errorf("%s changed", st.Name)
					}
					continue
				case "rows":
					rb := len(a) / sc.FFN
					for k, r := range order[l] {
						if !bytes.Equal(b[k*rb:(k+1)*rb], a[int(r)*rb:(int(r)+1)*rb]) {
							t.Fatalf("%s: row %d is not old row %d", st.Name, k, r)
						}
					}
				case "cols":
					es := st.Type.TypeSize()
					rb := es * sc.FFN
					for row := 0; row < len(a); row += rb {
						for k, j := range order[l] {
							if !bytes.Equal(b[row+k*es:row+(k+1)*es], a[row+int(j)*es:row+(int(j)+1)*es]) {
								t.Fatalf("%s: column %d is not old column %d", st.Name, k, j)
							}
						}
					}
				}
				moved++
				if bytes.Equal(a, b) {
					t.Errorf("%s did not move", st.Name)
				}
			}
			if moved < 2*sc.Layers {
				t.Errorf("%d tensors renumbered, want at least %d", moved, 2*sc.Layers)
			}
		})
	}
}

// TestPermuteFFNRefuses checks the orders and files PermuteFFN refuses:
// a quantized ffn_down without ffn_down_t, orders that are not
// permutations, the wrong number of layers.
func TestPermuteFFNRefuses(t *testing.T) {
	sw, sc, err := synth.Build(synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Type: dtype.Q4_0, Params: 2e6, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	f := parsed(t, sw)
	good := randomOrders(1, sc.Layers, sc.FFN)
	dup := randomOrders(1, sc.Layers, sc.FFN)
	dup[1][3] = dup[1][4]
	neg := randomOrders(1, sc.Layers, sc.FFN)
	neg[0][0] = -1
	for name, o := range map[string][][]int32{
		"short layer": append(append([][]int32{}, good[:1]...), good[1][1:]),
		"duplicate":   dup,
		"negative":    neg,
		"layers":      good[1:],
	} {
		if _, _, err := arch.PermuteFFN(f, o, nil); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	sw, sc, err = synth.Build(synth.Config{Arch: "llama", Act: "relu", Type: dtype.Q4_0, Params: 2e6, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = arch.PermuteFFN(parsed(t, sw), randomOrders(1, sc.Layers, sc.FFN), nil)
	if !errors.Is(err, arch.ErrDownNotPermutable) || !strings.Contains(err.Error(), "ffn_down_t") {
		t.Errorf("quantized ffn_down: %v, want ErrDownNotPermutable naming ffn_down_t", err)
	}
}

// TestPermuteFFNDropsQuantizedDown: a file with ffn_down_t and a
// quantized ffn_down loses the ffn_down, which it reports.
func TestPermuteFFNDropsQuantizedDown(t *testing.T) {
	sw, sc, err := synth.Build(synth.Config{Arch: "llama", Act: "relu", PowerInfer: true, Type: dtype.Q4_0, Params: 2e6, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	src := parsed(t, sw)
	w, err := gguf.NewWriterFrom(src)
	if err != nil {
		t.Fatal(err)
	}
	shape := []uint64{uint64(sc.FFN), uint64(sc.Dim)}
	rb, _ := dtype.Q4_0.RowBytes(uint64(sc.FFN))
	var want []string
	for l := range sc.Layers {
		name := "blk." + string(rune('0'+l)) + ".ffn_down.weight"
		if err := w.AddTensor(name, dtype.Q4_0, shape, make([]byte, int(rb)*sc.Dim)); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	both := parsed(t, w)
	pw, dropped, err := arch.PermuteFFN(both, randomOrders(2, sc.Layers, sc.FFN), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dropped, want) {
		t.Errorf("dropped %v, want %v", dropped, want)
	}
	out := parsed(t, pw)
	if len(out.Tensors) != len(src.Tensors) {
		t.Errorf("%d tensors, want the %d without ffn_down", len(out.Tensors), len(src.Tensors))
	}
	for _, name := range want {
		if _, ok := out.Tensor(name); ok {
			t.Errorf("%s kept", name)
		}
	}
}

// TestPermuteFFNWritesGivenDownT: a quantized standard-layout file with
// neuron-major downs supplied gets them, renumbered, as ffn_down_t in
// ffn_down's place.
func TestPermuteFFNWritesGivenDownT(t *testing.T) {
	sw, sc, err := synth.Build(synth.Config{Arch: "llama", Act: "relu", Type: dtype.Q4_0, Params: 2e6, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	src := parsed(t, sw)
	rb, _ := dtype.Q8_0.RowBytes(uint64(sc.Dim))
	rng := rand.New(rand.NewPCG(8, 8))
	downT := make([]*arch.Tensor, sc.Layers)
	for l := range downT {
		data := make([]byte, int(rb)*sc.FFN)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		downT[l] = &arch.Tensor{Type: dtype.Q8_0, Shape: []uint64{uint64(sc.Dim), uint64(sc.FFN)}, Data: data}
	}
	order := randomOrders(4, sc.Layers, sc.FFN)
	bad := []*arch.Tensor{downT[0]}
	if _, _, err := arch.PermuteFFN(src, order, bad); err == nil {
		t.Error("one neuron-major down for two layers: no error")
	}
	w, dropped, err := arch.PermuteFFN(src, order, downT)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != sc.Layers {
		t.Errorf("dropped %v", dropped)
	}
	out := parsed(t, w)
	if len(out.Tensors) != len(src.Tensors) {
		t.Fatalf("%d tensors, want %d", len(out.Tensors), len(src.Tensors))
	}
	for l := range sc.Layers {
		p := "blk." + string(rune('0'+l)) + "."
		if _, ok := out.Tensor(p + "ffn_down.weight"); ok {
			t.Errorf("%sffn_down.weight kept", p)
		}
		ti, ok := out.Tensor(p + "ffn_down_t.weight")
		if !ok || ti.Type != dtype.Q8_0 {
			t.Fatalf("%sffn_down_t.weight: %v %+v", p, ok, ti)
		}
		got := out.TensorData(ti)
		for k, r := range order[l] {
			if !bytes.Equal(got[k*int(rb):(k+1)*int(rb)], downT[l].Data[int(r)*int(rb):(int(r)+1)*int(rb)]) {
				t.Fatalf("layer %d: ffn_down_t row %d is not given row %d", l, k, r)
			}
		}
	}
	for i := range src.Tensors { // same order, ffn_down's place taken
		a, b := src.Tensors[i].Name, out.Tensors[i].Name
		if a != b && strings.Replace(a, "ffn_down.", "ffn_down_t.", 1) != b {
			t.Fatalf("tensor %d is %s, want %s in its place", i, b, a)
		}
	}
}
